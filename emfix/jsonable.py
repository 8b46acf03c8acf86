"""Results as plain JSON data: one conversion for --json, report files and the HTML pages' data."""

import dataclasses
import math


def to_jsonable(value):
    """Data classes through their to_dict (or field by field), bytes as text (0x and their hex digits where they
    are not UTF-8), a float JSON has no word
    for by its name ("NaN", "Infinity"): what json.dumps(allow_nan=False) writes without failing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:  # not text: its bytes whole, as MySQL writes them (round 33: backslashreplace
            return "0x" + value.hex()  # wrote 0x80 as the text \x80 beside a real NUL for 0x00)
    if isinstance(value, float) and not math.isfinite(value):  # strict JSON has no NaN: named, not a crash
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return value
