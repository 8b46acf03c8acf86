"""Repair malformed metric JSON exactly, or say why it cannot be repaired. Never guess, never eval.

Two paths. The fast one rewrites only tokens outside strings with one regular expression (single
quoted strings, True/False/None, nan/inf, trailing commas) and lets the C JSON parser check the
result. Anything it cannot settle goes to a small tolerant parser that reads JSON and the Python
literal dialect legacy writers produced, builds the value and reports what it changed; truncated,
trailing or unknown input is reported with its position and left alone.
"""

import dataclasses
import json
import math
import re
from typing import List, Optional

MAX_DEPTH = 64
MAX_CHARS = 16 * 1024 * 1024  # bigger values are reported, not parsed in Python
NUMERIC_WRAPPERS = re.compile(r"^(?:np|numpy|torch|jnp)\.(?:float(?:16|32|64|128)?|int(?:8|16|32|64)?|"
                              r"uint(?:8|16|32|64)|double|single|half|bool_|array|asarray|tensor)$|"
                              r"^(?:float|int|array|tensor|Decimal)$")
NONFINITE = {"nan", "NaN", "inf", "Infinity", "-inf", "-Infinity", "+inf", "-nan"}


@dataclasses.dataclass
class RepairResult:
    """`value` is strict JSON text when `fixed`; else `reason` and `position` say why not."""

    value: Optional[str]
    category: str  # valid | repaired | unrepairable
    changes: List[str]
    reason: str = ""
    position: int = -1

    @property
    def fixed(self):
        return self.category == "repaired"


class Unrepairable(Exception):
    def __init__(self, reason, position):
        super().__init__(reason)
        self.reason, self.position = reason, position


class NonFiniteConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, RFC 8259 and MySQL's JSON type do not."""


def _reject_constant(name):
    raise NonFiniteConstant(name)


def _finite_float(text):
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range: %s" % text)
    return value


def strict_loads(text):
    """RFC 8259 only, as MySQL's JSON type reads it: no NaN/Infinity, no number past a double's range."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def _refuse_if_cut_off(text, exc):
    """The C decoder stopped at the very end of the text (or in a string that never closes): the value was
    cut off, which no repair may complete. Saying so here keeps a huge truncated value from the slow parser."""
    if not isinstance(exc, json.JSONDecodeError):
        return
    if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
        raise Unrepairable("truncated: the value ends before it is complete", exc.pos)


def dump(value):
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# -- the fast path ---------------------------------------------------------------------------------

FAST = re.compile(r"""
    "(?:[^"\\]|\\.)*"                       # a double-quoted string: left alone
  | '(?P<sq>[^'\\"]*)'                      # a single-quoted string without escapes or double quotes
  | (?P<kpre>[{,]\s*)(?!(?:True|False|None)\b)(?P<key>[A-Za-z_]\w*)(?=\s*:)   # an unquoted key
  | (?<![\w.])(?P<lit>True|False|None)\b
  | (?<![\w.])(?P<nf>-?(?:nan|NaN|inf|Infinity))\b
  | (?P<comma>,)(?=\s*[}\]])
""", re.VERBOSE)
LITERALS = {"True": "true", "False": "false", "None": "null"}
FAST_CHANGES = {"sq": "single quotes", "key": "unquoted keys", "lit": "Python True/False/None",
                "nf": "NaN/Infinity -> null", "comma": "trailing comma"}


NEEDS_SUB = re.compile(r"(?<![\w.])(?:True|False|None|-?(?:nan|NaN|inf|Infinity))\b|,\s*[}\]]")


def _fast(text):
    """(value, changes, JSON text) or (None, None, None) when the slow path must decide."""
    changes = set()
    if '"' not in text and "\\" not in text and "'" in text:
        # No double quote and no backslash anywhere: every ' is a string delimiter (a repr would have
        # used double quotes around a string holding one), so swapping them is exact.
        text = text.replace("'", '"')
        changes.add("single quotes")
        if not NEEDS_SUB.search(text):
            try:
                return strict_loads(text), changes, text
            except ValueError as exc:  # the swap was exact, so a cut in its result is a cut in the original
                _refuse_if_cut_off(text, exc)
                return None, None, None
            except RecursionError:
                return None, None, None

    def swap(m):
        kind = m.lastgroup  # which alternative matched (None: a double-quoted string, kept as it is)
        if kind is None:
            return m.group(0)
        changes.add(FAST_CHANGES[kind])
        if kind == "sq":
            return json.dumps(m.group("sq"), ensure_ascii=False)
        if kind == "key":
            return '%s"%s"' % (m.group("kpre"), m.group("key"))
        if kind == "lit":
            return LITERALS[m.group("lit")]
        return "null" if kind == "nf" else ""

    candidate = FAST.sub(swap, text)
    try:
        return strict_loads(candidate), changes, candidate
    except (ValueError, RecursionError):
        return None, None, None


# -- the tolerant parser ---------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>(?P<prefix>[rRuUbB]{0,2})(?P<q>'''|\"\"\"|'|"))
  | (?P<num>[+-]?(?:\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?|\.\d[\d_]*(?:[eE][+-]?\d+)?))
  | (?P<nf>[+-]?(?:nan|NaN|inf|Infinity))\b
  | (?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)
  | (?P<punct>[{}\[\](),:=])
""", re.VERBOSE)
BLANKS = re.compile(r"\s*")
NUMBER_CHARS = re.compile(r"[-+0-9.eE,\s]*")
PYTHON_ONLY_ESCAPES = frozenset("xUav0'")
CONTROL = re.compile("[\x00-\x1f]")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", "'": "'", '"': '"',
           "0": "\0", "a": "\a", "v": "\v"}


class _Parser:
    def __init__(self, text):
        self.text, self.pos, self.changes = text, 0, set()

    def fail(self, reason, position=None):
        raise Unrepairable(reason, self.pos if position is None else position)

    def skip_ws(self):
        self.pos = BLANKS.match(self.text, self.pos).end()

    def peek(self):
        self.pos = BLANKS.match(self.text, self.pos).end()
        return self.text[self.pos:self.pos + 1]

    def expect(self, char):
        if self.peek() != char:
            if not self.peek():
                self.fail("truncated: ends where %r was expected" % char)
            self.fail("expected %r, found %r" % (char, self.peek()))
        self.pos += 1

    def parse_document(self):
        value = self.value(0)
        self.skip_ws()
        if self.pos < len(self.text):
            self.fail("text after the value (several values, or trailing garbage)")
        return value

    def value(self, depth):
        if depth > MAX_DEPTH:
            self.fail("nested more than %d levels deep" % MAX_DEPTH)
        char = self.peek()
        if not char:
            self.fail("truncated: a value was expected")
        if char == "{":
            return self.obj(depth)
        if char in "[(":
            if char == "(":
                self.changes.add("tuple -> array")
            return self.seq(depth, "]" if char == "[" else ")")
        match = TOKEN.match(self.text, self.pos)
        if not match or match.group("punct"):
            self.fail("unexpected %r" % char)
        if match.group("str") is not None:
            return self.string(match)
        if match.group("nf"):
            self.pos = match.end()
            self.changes.add("NaN/Infinity -> null")
            return None
        if match.group("num"):
            return self.number(match)
        return self.name(match, depth)

    def obj(self, depth):
        start = self.pos
        self.pos += 1
        result = {}
        while True:
            if self.peek() == "}":
                self.pos += 1
                return result
            key = self.key(depth)
            if self.peek() in (",", "}"):
                self.fail("a set, not a mapping", start)
            if self.peek() == "=":
                self.fail("unexpected '='")
            self.expect(":")
            result[key] = self.value(depth + 1)
            if self.peek() == ",":
                self.pos += 1
                if self.peek() == "}":
                    self.changes.add("trailing comma")
                continue
            self.expect("}")
            return result

    def key(self, depth):
        char = self.peek()
        if not char:
            self.fail("truncated inside an object")
        match = TOKEN.match(self.text, self.pos)
        if match and match.group("name") and match.group("name") not in ("True", "False", "None", "true", "false",
                                                                          "null"):
            after = match.end()
            while after < len(self.text) and self.text[after].isspace():
                after += 1
            if after < len(self.text) and self.text[after] == ":":
                self.pos = match.end()
                self.changes.add("unquoted keys")
                return match.group("name")
        value = self.value(depth + 1)
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or value is None:
            self.changes.add("non-string keys")
            return json.dumps(value)
        if isinstance(value, (int, float)):
            self.changes.add("non-string keys")
            return dump(value)
        self.fail("a key that is not a string or a number")

    def seq(self, depth, close):
        self.pos += 1
        result = []
        while True:
            end = NUMBER_CHARS.match(self.text, self.pos).end()  # a long run of numbers: the C decoder reads it
            last = self.text.rfind(",", self.pos, end) if end > self.pos + 64 else -1
            if last > self.pos:  # one long number and no comma (-1): nothing to take in bulk
                try:
                    result.extend(strict_loads("[%s]" % self.text[self.pos:last]))
                    self.pos = last + 1
                except ValueError:
                    pass  # a number JSON has no form for, say: the careful way below tells what it is
            if self.peek() == close:
                self.pos += 1
                return result
            result.append(self.value(depth + 1))
            if self.peek() == ",":
                self.pos += 1
                if self.peek() == close:
                    self.changes.add("trailing comma")
                continue
            self.expect(close)
            return result

    def number(self, match):
        text = match.group("num").replace("_", "")
        self.pos = match.end()
        try:
            if text.lstrip("+-").isdigit() and text.isascii():
                return int(text)
            value = float(text)
        except ValueError:
            self.fail("not a number: %s" % text, match.start())
        if math.isinf(value):
            self.fail("number out of range: %s" % text, match.start())
        if text.startswith("+") or text.endswith(".") or text.lstrip("+-").startswith("."):
            self.changes.add("Python number forms")
        return value

    def name(self, match, depth):
        word = match.group("name")
        self.pos = match.end()
        if word in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[word]
        if word in LITERALS:
            self.changes.add("Python True/False/None")
            return {"True": True, "False": False, "None": None}[word]
        if self.peek() != "(":
            self.fail("unknown word %r" % word, match.start())
        if not NUMERIC_WRAPPERS.match(word):
            self.fail("a call to %s(...) (never evaluated)" % word, match.start())
        self.pos += 1
        self.changes.add("numeric-library wrappers")
        inner = self.value(depth + 1)
        while self.peek() == ",":  # dtype=..., device=...: keyword arguments are dropped
            self.pos += 1
            if self.peek() == ")":
                break
            kw = TOKEN.match(self.text, self.pos)
            if not kw or not kw.group("name"):
                self.fail("unexpected argument")
            self.pos = kw.end()
            self.expect("=")
            self.skip_ws()
            setting = TOKEN.match(self.text, self.pos)
            if setting and setting.group("name"):  # dtype=float32, dtype=np.float32: a name, never looked up
                self.pos = setting.end()
            else:
                self.value(depth + 1)
        self.expect(")")
        if isinstance(inner, str):
            try:
                return float(inner) if "." in inner or "e" in inner.lower() else int(inner)
            except ValueError:
                self.fail("a wrapper around a non-number", match.start())
        return inner

    def string(self, match):
        prefix, quote = match.group("prefix").lower(), match.group("q")
        if "b" in prefix:
            self.fail("a bytes literal (binary, not text)", match.start())
        raw = "r" in prefix
        self.pos = match.end()
        if quote == "'" or len(quote) == 3:
            self.changes.add("single quotes" if quote == "'" else "triple quotes")
        parts = []
        text = self.text
        while True:
            end = text.find(quote, self.pos)
            slash = text.find("\\", self.pos)
            if end < 0:
                self.fail("truncated: a string never ends", match.start())
            stop = end if slash < 0 or slash > end else slash
            if CONTROL.search(text, self.pos, stop):
                self.changes.add("control characters escaped")  # JSON allows them only escaped
            if stop == end:
                parts.append(text[self.pos:end])
                self.pos = end + len(quote)
                return "".join(parts)
            parts.append(text[self.pos:slash])
            self.pos = slash + 1
            if self.pos >= len(text):
                self.fail("truncated after a backslash", slash)
            char = text[self.pos]
            if not raw and char in PYTHON_ONLY_ESCAPES:
                self.changes.add("Python string escapes")  # read exactly, but JSON has no such escape
            if raw:
                parts.append("\\" + char)
                self.pos += 1
            elif char == "u" and re.match(r"[0-9a-fA-F]{4}", text[self.pos + 1:self.pos + 5]):
                parts.append(chr(int(text[self.pos + 1:self.pos + 5], 16)))
                self.pos += 5
            elif char == "U" and re.match(r"[0-9a-fA-F]{8}", text[self.pos + 1:self.pos + 9]) \
                    and int(text[self.pos + 1:self.pos + 9], 16) <= 0x10FFFF:
                parts.append(chr(int(text[self.pos + 1:self.pos + 9], 16)))
                self.pos += 9
            elif char == "x" and re.match(r"[0-9a-fA-F]{2}", text[self.pos + 1:self.pos + 3]):
                parts.append(chr(int(text[self.pos + 1:self.pos + 3], 16)))
                self.pos += 3
            elif char in ESCAPES:
                parts.append(ESCAPES[char])
                self.pos += 1
            else:  # \d in "C:\data": not an escape; the backslash is kept as written
                self.changes.add("unescaped backslash kept")
                parts.append("\\")


def _unwrap(value, changes):
    """A JSON string holding the JSON object: decode it once more."""
    if isinstance(value, str):
        inner = value.strip()
        if inner.startswith("{"):
            try:
                decoded = strict_loads(inner)
            except (ValueError, RecursionError):
                decoded = None
            if isinstance(decoded, dict):
                changes.add("double-encoded")
                return decoded
    return value


def deeper_than(value, limit):
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (list, dict)):
            if depth >= limit:
                return True
            pending.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
                           if isinstance(v, (list, dict)))
    return False


def repair(raw):
    """Repair one stored value (str or bytes). Never raises for any input."""
    try:
        return _repair(raw)
    except Unrepairable as exc:
        return RepairResult(None, "unrepairable", [], exc.reason, exc.position)
    except (RecursionError, MemoryError):
        return RepairResult(None, "unrepairable", [], "too deeply nested or too large to read", -1)


def _repair(raw):
    changes = set()
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unrepairable("bytes that are not UTF-8 text (byte %d)" % exc.start, exc.start) from None
        changes.add("stored as bytes -> text")
    if not isinstance(raw, str):
        raise Unrepairable("a %s, not text" % type(raw).__name__, -1)
    if len(raw) > MAX_CHARS:
        raise Unrepairable("larger than %d MB: not read" % (MAX_CHARS >> 20), -1)
    text = raw
    if text.startswith("\ufeff"):
        changes.add("byte-order mark removed")
        text = text[1:]
    if not text.strip():
        changes.add("empty -> {}")
        return RepairResult("{}", "repaired", sorted(changes))
    if text != text.strip():
        text = text.strip()
    serialized = None
    try:
        value = strict_loads(text)
    except ValueError as exc:
        value = None
        _refuse_if_cut_off(text, exc)
        fast, fast_changes, serialized = _fast(text)
        if fast is not None:
            value = fast
            changes |= fast_changes
        else:
            parser = _Parser(text)
            value = parser.parse_document()
            changes |= parser.changes or {"rewritten as strict JSON"}  # strict parsing failed: never "valid"
    except RecursionError:
        raise Unrepairable("nested too deeply to read", -1) from None
    if text.count("[") + text.count("{") > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        # Python 3.13's decoder reads any depth; MySQL refuses over 100 levels: the same answer everywhere.
        raise Unrepairable("nested more than %d levels deep" % MAX_DEPTH, -1)
    if isinstance(value, str):
        value = _unwrap(value, changes)
        serialized = None
    if not changes:
        return RepairResult(raw, "valid", [])
    if serialized is not None:  # already strict JSON (the C parser said so): keep its exact text
        return RepairResult(serialized, "repaired", sorted(changes))
    try:
        result = dump(value)
    except ValueError as exc:
        raise Unrepairable(str(exc), -1) from None
    return RepairResult(result, "repaired", sorted(changes))
