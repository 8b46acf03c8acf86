"""emfix transform-metrics: per-label rules applied to every metric's per_label_val, each original kept.

The rules file is the old tool's (a JSON object label -> rule; keys starting with `_` are comments;
`normalize` divides by 100, `round` keeps 2 decimals) plus `{"scale": F}`, `{"round": N}`,
`{"rename": "NEW"}` and `"drop"`, a list of them applied in order, and `*` for every label without a
rule of its own. Pages of METRIC go by key; each page's originals are committed to a quarantine file
before the page's UPDATE commits, so `emfix undo` puts them back. A rerun after a kill skips the
rows whose value is no longer the quarantined original (already transformed): a rule is never
applied twice. Metrics whose JSON is malformed are skipped and counted (run fix-json first).
"""

import dataclasses
import hashlib
import json
import time
from typing import Dict, List, Optional

from . import quarantine as q
from .backends import open_database
from .errors import Cancelled, NotFoundError, OperationInterrupted, UsageError
from .fileutil import atomic_write_text
from .hierarchy import reach_subtree
from .jsonrepair import NonFiniteConstant
from .progress import NoProgress
from .schema import discover_graph, require_experiment_manager

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
    rename_conflicts: int = 0  # metrics left alone: the new label was already there
    examples: List[dict] = dataclasses.field(default_factory=list)
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
            return ("scale", float(value))
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


def load_rules(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_rules(json.load(handle), path)
    except OSError as exc:
        raise NotFoundError("cannot read the rules file %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise UsageError("the rules file %s is not JSON: %s" % (path, exc)) from None


def write_template(path):
    if path == "-":
        return TEMPLATE
    atomic_write_text(path, TEMPLATE)
    return None


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
        name = label
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
            value = value * arg if kind == "scale" else value / arg if kind == "divide" else round(value, arg)
        if name is None:
            changed = True
            continue
        if name in out:
            result.rename_conflicts += 1
            return None
        changed = changed or name != label or value != values[label] or type(value) is not type(values[label])
        out[name] = value
    return out if changed else None


# -- the run -------------------------------------------------------------------------------------

def transform_metrics(address, rules, *, experiment_ids=(), dry_run=False, batch_size=10000, snapshot=True,
                      snapshot_dir=None, quarantine_dir=None, retry_policy=None, progress=None, confirm=None,
                      interrupted=None, force=False, raw_rules=None):
    progress = progress or NoProgress()
    interrupted = interrupted or (lambda: False)
    started = time.perf_counter()
    result = TransformResult(dry_run, raw_rules if raw_rules is not None else
                             {k: [list(s) for s in v] for k, v in rules.items()})
    fingerprint = hashlib.sha256(json.dumps(result.rules, sort_keys=True).encode()).hexdigest()
    quarantine_dir = quarantine_dir or q.default_quarantine_dir(address)
    with open_database(address, readonly=dry_run and address.is_sqlite, retry_policy=retry_policy) as db:
        graph = discover_graph(db)
        require_experiment_manager(graph, address, force)
        if TABLE not in graph.tables or COLUMN not in graph.columns[TABLE]:
            raise UsageError("%s has no %s.%s column" % (address.display(), TABLE, COLUMN))
        scope = _scope(db, graph, experiment_ids)
        opened = []
        if not dry_run:
            if confirm is not None and not confirm(address):
                raise Cancelled("cancelled; nothing was changed")
            q.writable_dir(quarantine_dir)
            unfinished = q.find_unfinished(quarantine_dir, COMMAND, address)
            if unfinished:
                _resume_quarantine(unfinished, fingerprint, opened, result)

        def quarantine():
            if not opened:
                if snapshot:
                    from .snapshot import create_snapshot, default_snapshot_dir
                    progress.update("snapshot before transform-metrics", force=True)
                    result.snapshot_id = create_snapshot(address, snapshot_dir or default_snapshot_dir(address),
                                                         description="before %s" % COMMAND, verify=True,
                                                         retry_policy=retry_policy).id
                opened.append(_new_quarantine(address, quarantine_dir, result, fingerprint))
            return opened[0]
        try:
            _run_pages(db, rules, scope, batch_size, None if dry_run else quarantine, opened, result, progress,
                       interrupted)
            if opened:
                q.write_meta(opened[0], status="done", changed=result.changed)
        finally:
            if opened:
                opened[0].close()
    progress.done()
    result.seconds = time.perf_counter() - started
    return result


def _scope(db, graph, experiment_ids):
    """None (every metric), or the name of a temporary table of the metric ids the experiments link to."""
    if not experiment_ids:
        return None
    cast = "CAST(NULL AS SIGNED)" if db.dialect == "mysql" else "NULL"
    db.create_temp_table(SCOPE_TABLE, "SELECT %s AS %s FROM %s WHERE 1 = 0" % (cast, db.quote(KEY), db.quote(TABLE)))
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


def _new_quarantine(address, directory, result, fingerprint):
    result.quarantine = q.quarantine_path(directory, COMMAND)
    qcon = q.open_quarantine(result.quarantine, create=True)
    q.start(qcon, COMMAND, address, "metric values rewritten by transform-metrics")
    q.write_meta(qcon, table=TABLE, column=COLUMN, key=KEY, tables=[TABLE], rules=result.rules,
                 rules_sha256=fingerprint)
    qcon.execute("CREATE TABLE IF NOT EXISTS %s (%s PRIMARY KEY, %s, %s)" % (q.qi(TABLE), q.qi(KEY), q.qi(COLUMN),
                                                                             q.qi(q.TYPE_COLUMN)))
    return qcon


def _resume_quarantine(path, fingerprint, opened, result):
    qcon = q.open_quarantine(path)
    if q.read_meta(qcon).get("rules_sha256") != fingerprint:
        qcon.close()
        raise UsageError("an interrupted transform-metrics with other rules has not finished (%s); nothing was "
                         "changed" % path, hint="run it again with its own rules to finish it, or `emfix undo %s` "
                                                "first" % path)
    result.quarantine = path
    opened.append(qcon)


def _pages(db, scope, batch_size):
    k, v = db.quote(KEY), db.quote(COLUMN)
    inside = " AND t.%s IN (SELECT %s FROM %s)" % (k, k, db.quote(scope)) if scope else ""
    sql = "SELECT t.%s, t.%s FROM %s t WHERE t.%s > ?%s ORDER BY t.%s LIMIT %d" % (
        k, v, db.quote(TABLE), k, inside, k, batch_size)
    last = -(1 << 62)
    while True:
        rows = db.query(sql, (last,))
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def _run_pages(db, rules, scope, batch_size, quarantine, opened, result, progress, interrupted):
    update = "UPDATE %s SET %s = ? WHERE %s = ?" % (db.quote(TABLE), db.quote(COLUMN), db.quote(KEY))
    for rows in _pages(db, scope, batch_size):
        if interrupted():
            raise OperationInterrupted("interrupted after %d values; every original is in the quarantine"
                                       % result.changed, hint="run the same command again to finish")
        kept = _quarantined(opened, rows)
        updates = []
        for ident, raw in rows:
            result.scanned += 1
            if ident in kept and kept[ident] != raw:
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
            new = apply_rules(rules, values, result)
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
        if quarantine is None or not updates:
            continue
        q.keep_values(quarantine(), TABLE, [(ident, raw, "text") for ident, raw, _new in updates], result.quarantine)
        with db.transaction():
            db.executemany(update, [(new, ident) for ident, _raw, new in updates], batch_size=len(updates))


def _quarantined(opened, rows):
    """{id: original} for this page's rows already in the quarantine (a rerun after a kill)."""
    if not opened or not rows:
        return {}
    return dict(opened[0].execute("SELECT %s, %s FROM %s WHERE %s BETWEEN ? AND ?" % (
        q.qi(KEY), q.qi(COLUMN), q.qi(TABLE), q.qi(KEY)), (rows[0][0], rows[-1][0])).fetchall())
