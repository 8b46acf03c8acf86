"""emfix transform-metrics: per-label rules applied to every metric's per_label_val, each original kept.

The rules file is the old tool's (a JSON object label -> rule; keys starting with `_` are comments;
`normalize` divides by 100, `round` keeps 2 decimals) plus `{"scale": F}`, `{"round": N}`,
`{"rename": "NEW"}` and `"drop"`, a list of them applied in order, and `*` for every label without a
rule of its own. Pages of METRIC go by key; each page's originals are committed to a quarantine file
before the page's UPDATE commits, so `emfix undo` puts them back. A rerun after a kill skips the
rows whose value is no longer the quarantined original (already transformed): a rule is never
applied twice. Metrics whose JSON is malformed are skipped and counted (run fix-json first); a
label value a rule cannot compute with (an integer past a double's range, a result that would be)
is left as it is and counted. A rules file is strict JSON: NaN, Infinity, a number past a double's
range and a label (or key) given twice are refused, never guessed.
"""

import dataclasses
import hashlib
import json
import math
import time
from typing import Dict, List, Optional

from . import quarantine as q
from .backends import open_database
from .errors import OperationInterrupted, UsageError
from .guarded import GuardedChange, Rewrite, Safeguards, ValueRewrites, key_pages, preflight
from .hierarchy import reach_subtree
from .inputfile import read_input_text
from .jsonrepair import NonFiniteConstant
from .outputguard import write_output_text
from .progress import NoProgress

COMMAND = "transform-metrics"
TABLE, KEY, COLUMN = "METRIC", "id", "per_label_val"
EXAMPLES = 5
SCOPE_TABLE = "emfix_transform_scope"


def _not_json(name):
    raise NonFiniteConstant(name)


# Made once: json.loads/dumps with any keyword build a new decoder/encoder for every value.
READER = json.JSONDecoder(parse_constant=_not_json)
WRITER = json.JSONEncoder(allow_nan=False)

TEMPLATE = """{
  "_about": "emfix transform-metrics rules: label -> rule. Keys starting with _ are comments.",
  "_rules": "normalize (divide by 100), round (2 decimals), drop, {\\"round\\": N}, {\\"scale\\": F}",
  "_rules_more": "{\\"rename\\": \\"new\\"}, or a list of them applied in order",
  "_star": "* is every label without a rule of its own",
  "_example_accuracy": "normalize",
  "_example_loss": {"round": 4},
  "_example_old_label": {"rename": "new_label"},
  "_example_debug": "drop",
  "_example_*": [{"scale": 0.01}, {"round": 4}]
}
"""


@dataclasses.dataclass
class TransformResult:
    dry_run: bool
    rules: Dict[str, object]
    scanned: int = 0
    changed: int = 0
    unchanged: int = 0
    already_done: int = 0  # a rerun: transformed by the interrupted run
    malformed: int = 0  # not JSON, or not an object: skipped (fix-json first)
    not_numbers: int = 0  # label values a numeric rule could not apply to: left as they are
    too_large: int = 0  # label values past a double's range (or a result that would be): left as they are
    too_large_ids: List[object] = dataclasses.field(default_factory=list)  # the first few metrics holding one
    rename_conflicts: int = 0  # metrics left alone: the new label was already there
    examples: List[dict] = dataclasses.field(default_factory=list)
    left_alone_count: int = 0  # values another process changed after emfix read them: left as it wrote them
    left_alone: List[object] = dataclasses.field(default_factory=list)  # their keys (the first 1,000)
    quarantine: Optional[str] = None
    snapshot_id: Optional[str] = None
    seconds: float = 0.0


# -- the rules ----------------------------------------------------------------------------------

def _step(rule, where):
    if rule == "normalize":
        return ("divide", 100.0)  # divided, not scaled by 0.01: 0.8032 -> 0.008032, not 0.008032000000000001
    if rule == "round":
        return ("round", 2)
    if rule == "drop":
        return ("drop", None)
    if isinstance(rule, dict) and len(rule) == 1:
        (name, value), = rule.items()
        if name == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return ("scale", _finite(value, where))
        if name == "round" and isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 17:
            return ("round", value)
        if name == "rename" and isinstance(value, str) and value:
            return ("rename", value)
        if name == "drop" and value is True:
            return ("drop", None)
    raise UsageError("%s: unknown rule %s" % (where, json.dumps(rule)),
                     hint='rules are "normalize", "round", "drop", {"scale": F}, {"round": N}, {"rename": "NEW"} '
                          "or a list of them (emfix transform-metrics --template FILE writes an example)")


def parse_rules(data, origin="the rules"):
    """{label: [steps]} from the rules object; comments (`_` keys) left out."""
    if not isinstance(data, dict):
        raise UsageError("%s must be a JSON object of label -> rule" % origin)
    rules = {}
    for label, rule in data.items():
        if label.startswith("_"):
            continue
        steps = rule if isinstance(rule, list) else [rule]
        rules[label] = [_step(s, "%s, label %r" % (origin, label)) for s in steps]
        if not rules[label]:
            raise UsageError("%s, label %r: an empty list of rules" % (origin, label))
    if not rules:
        raise UsageError("%s holds no rules (only comments)" % origin,
                         hint="write label -> rule pairs; emfix transform-metrics --template FILE writes an example")
    return rules


def _finite(value, where):
    try:
        number = float(value)
    except OverflowError:  # an integer of more than 308 digits
        raise UsageError("%s: the integer is past a double's range" % where, hint=FINITE_HINT) from None
    if not math.isfinite(number):
        raise UsageError("%s: %s is not a finite number" % (where, value), hint=FINITE_HINT)
    return number


FINITE_HINT = "give a number a double holds (about 1e-308 to 1e308)"


class RulesFileError(ValueError):
    """What makes a rules file unusable although Python's json would read it."""


def _refuse_constant(name):
    raise RulesFileError("%s is not a number (JSON has no NaN or Infinity)" % name)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise RulesFileError("%s is past a double's range" % text)
    return value


def _double_int(text):
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise RulesFileError("an integer of %d digits is past a double's range" % len(text.lstrip("-"))) from None
    return value


def _refuse_duplicates(pairs):
    found = {}
    for key, value in pairs:
        if key in found:
            raise RulesFileError("%r is given twice (which one was meant cannot be told)" % key)
        found[key] = value
    return found


# Strict JSON as RFC 8259 reads it: Python's own json takes NaN, Infinity and 1e400 (as inf) and keeps the
# last of two equal keys; a rules file doing that is refused instead.
RULES_READER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_double_int,
                                object_pairs_hook=_refuse_duplicates)


def read_rules_text(text, origin="the rules"):
    """The rules from a rules file's text: {label: [steps]}; UsageError (exit 2) for anything else."""
    try:
        data = RULES_READER.decode(text)
    except RulesFileError as exc:
        raise UsageError("%s: %s; nothing was changed" % (origin, exc),
                         hint="fix the file: each label once, every number finite") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError("the rules file %s is not JSON: %s" % (origin, exc)) from None
    return parse_rules(data, origin)


def load_rules(path):
    return read_rules_text(read_input_text(path, "the rules file"), path)


def write_template(path, force=False):
    """The template's text for `-` (stdout), else None once it is written to `path` through the output guard:
    an existing file (an edited rules file) is replaced only with `force`, or when it is the template as is."""
    if path == "-":
        return TEMPLATE
    write_output_text(path, TEMPLATE, force=force, replaceable=_is_template)
    return None


def _is_template(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(len(TEMPLATE) + 1) == TEMPLATE
    except (OSError, ValueError):
        return False


def apply_rules(rules, values, result):
    """The transformed object, or None when nothing changes (or a rename would overwrite a label)."""
    out, changed = {}, False
    for label, value in values.items():
        steps = rules.get(label, rules.get("*"))
        if not steps:
            if label in out:
                result.rename_conflicts += 1
                return None
            out[label] = value
            continue
        name, too_large = label, False
        for kind, arg in steps:
            if kind == "drop":
                name = None
                break
            if kind == "rename":
                name = arg
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                result.not_numbers += 1
                continue
            if too_large:
                continue
            computed = _compute(kind, arg, value)
            if computed is None:  # left as it is: no step of this label applies to it
                too_large, value = True, values[label]
                result.too_large += 1
                continue
            value = computed
        if name is None:
            changed = True
            continue
        if name in out:
            result.rename_conflicts += 1
            return None
        changed = changed or name != label or value != values[label] or type(value) is not type(values[label])
        out[name] = value
    return out if changed else None


def _compute(kind, arg, value):
    """One numeric step, or None when the value or the result is past a double's range (a huge integer
    cannot be divided as a float; a finite value scaled to infinity is no JSON number)."""
    try:
        out = value * arg if kind == "scale" else value / arg if kind == "divide" else round(value, arg)
    except OverflowError:
        return None
    if isinstance(out, float) and math.isinf(out) and not (isinstance(value, float) and math.isinf(value)):
        return None
    return out


# -- the run -------------------------------------------------------------------------------------

def transform_metrics(address, rules, *, experiment_ids=(), dry_run=False, batch_size=10000, snapshot=True,
                      snapshot_dir=None, quarantine_dir=None, retry_policy=None, progress=None, confirm=None,
                      interrupted=None, force=False, raw_rules=None, metric_ids=None):
    """metric_ids: only these metrics (the ones a copy just made), instead of experiments' or all."""
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    result = TransformResult(dry_run, raw_rules if raw_rules is not None else
                             {k: [list(s) for s in v] for k, v in rules.items()})
    rules_sha256 = hashlib.sha256(json.dumps(result.rules, sort_keys=True).encode()).hexdigest()
    # The same rules over the same metrics are the same change: a second run would apply them on top.
    scoped = [rules_sha256, sorted(experiment_ids)] + ([sorted(metric_ids)] if metric_ids is not None else [])
    fingerprint = hashlib.sha256(json.dumps(scoped).encode()).hexdigest()
    safeguards = Safeguards(snapshot, snapshot_dir, quarantine_dir, retry_policy, force)
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = preflight(db, address, force, writing=not dry_run)
        if TABLE not in graph.tables or COLUMN not in graph.columns[TABLE]:
            raise UsageError("%s has no %s.%s column" % (address.display(), TABLE, COLUMN))
        scope = _scope(db, graph, experiment_ids, metric_ids)
        with GuardedChange(address, COMMAND, "metric values rewritten by transform-metrics", safeguards, progress,
                           fingerprint=fingerprint) as change:
            rewrites = None
            if not dry_run:
                change.confirm(confirm, address)
                change.prepare(table=TABLE, column=COLUMN, key=KEY, tables=[TABLE], rules=result.rules,
                               rules_sha256=rules_sha256, experiments=sorted(experiment_ids))
                if change.resuming:
                    _check_same_rules(change.quarantine_path, rules_sha256)
                rewrites = ValueRewrites(change, TABLE, KEY, COLUMN)
            _run_pages(db, rules, scope, batch_size, rewrites, result, progress, interrupted)
            change.finish(changed=result.changed, left_alone=result.left_alone_count)
            result.snapshot_id, result.quarantine = change.snapshot_id, change.kept_in
    progress.done()
    result.seconds = time.perf_counter() - started
    return result


def _scope(db, graph, experiment_ids, metric_ids=None):
    """None (every metric), or the name of a temporary table of the metric ids the experiments link to
    (or of the metric ids given)."""
    if not experiment_ids and metric_ids is None:
        return None
    cast = "CAST(NULL AS SIGNED)" if db.dialect == "mysql" else "NULL"
    db.create_temp_table(SCOPE_TABLE, "SELECT %s AS %s FROM %s WHERE 1 = 0" % (cast, db.quote(KEY), db.quote(TABLE)))
    if metric_ids is not None:
        db.executemany("INSERT INTO %s (%s) VALUES (?)" % (db.quote(SCOPE_TABLE), db.quote(KEY)),
                       ((i,) for i in metric_ids))
    for experiment_id in experiment_ids:
        tree = reach_subtree(db, graph, experiment_id)
        if not tree.exists:
            raise UsageError("experiment %d does not exist in %s" % (experiment_id, db.address.display()))
        where = tree.referenced_where(db, graph, TABLE)
        if where:
            db.execute("INSERT INTO %s SELECT t.%s FROM %s t WHERE %s" % (
                db.quote(SCOPE_TABLE), db.quote(KEY), db.quote(TABLE), where))
    db.create_temp_index(SCOPE_TABLE, [KEY])
    return SCOPE_TABLE


def _check_same_rules(path, rules_sha256):
    qcon = q.open_quarantine(path)
    try:
        theirs = q.read_meta(qcon).get("rules_sha256")
    finally:
        qcon.close()
    if theirs != rules_sha256:
        raise UsageError("an interrupted transform-metrics with other rules has not finished (%s); nothing was "
                         "changed" % path, hint="run it again with its own rules to finish it, or `emfix undo %s` "
                                                "first" % path)


def _pages(db, scope, batch_size):
    k, v = db.quote(KEY), db.quote(COLUMN)
    inside = " AND t.%s IN (SELECT %s FROM %s)" % (k, k, db.quote(scope)) if scope else ""
    sql = "SELECT t.%s, t.%s FROM %s t WHERE t.%s {after}%s ORDER BY t.%s LIMIT %d" % (
        k, v, db.quote(TABLE), k, inside, k, batch_size)
    return key_pages(db, sql, batch_size)


def _run_pages(db, rules, scope, batch_size, rewrites, result, progress, interrupted):
    for rows in _pages(db, scope, batch_size):
        if interrupted():
            raise OperationInterrupted("interrupted after %d values; every original is in the quarantine"
                                       % result.changed, hint="run the same command again to finish")
        kept = rewrites.kept(rows[0][0], rows[-1][0]) if rewrites is not None else {}
        updates = []
        for ident, raw in rows:
            result.scanned += 1
            if ident in kept and kept[ident][0] != raw:  # changed since it was kept: never transformed twice
                result.already_done += 1
                continue
            if raw is None:
                result.unchanged += 1
                continue
            try:  # NaN/Infinity refused here, a number past a double's range by allow_nan=False below
                values = READER.decode(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
            except (ValueError, UnicodeDecodeError, TypeError):
                values = None
            if not isinstance(values, dict):
                result.malformed += 1
                continue
            too_large = result.too_large
            new = apply_rules(rules, values, result)
            if result.too_large > too_large and len(result.too_large_ids) < EXAMPLES:
                result.too_large_ids.append(ident)
            if new is None:
                result.unchanged += 1
                continue
            try:
                text = WRITER.encode(new)
            except ValueError:  # 1e999 read as inf, or a scale that overflowed: not JSON any more
                result.malformed += 1
                continue
            updates.append((ident, raw, text))
            result.changed += 1
            if len(result.examples) < EXAMPLES:
                result.examples.append({"id": ident, "before": raw, "after": text})
        progress.update("%s.%s: %d changed of %d" % (TABLE, COLUMN, result.changed, result.scanned))
        if rewrites is None or not updates:
            continue
        left = rewrites.apply(db, [Rewrite(ident, raw, "text", new) for ident, raw, new in updates])
        result.changed -= len(left)
        result.left_alone_count += len(left)
        result.left_alone.extend(left[:max(0, 1000 - len(result.left_alone))])
