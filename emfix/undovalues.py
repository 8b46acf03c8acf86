"""undo's second half: the values fix-json, transform-metrics or repair rewrote in place, put back byte for byte
with their storage class where the row still holds what the repair wrote (compare-and-swap); a value written since
is named, never overwritten. Apart from undo.py so that each file stays readable."""

from . import quarantine as q
from .guarded import AFTER, LEFT_ALONE, STATE, current_values, kill_point, same_value, swap_params, swap_sql

UNDO_BATCH = 1000


def put_values_back(db, qcon, values, result, batch_size=None, stop=None):
    """Put each original back, byte for byte and with its storage class, only where the row still holds
    the value the repair wrote (compare-and-swap): a value changed since is named, never overwritten.
    `values` says which column ({table, column, key}) and the quarantine table that keeps it (kept_as).
    Batches of UNDO_BATCH commit on their own, so a large undo is many short transactions (replicas,
    Galera's write-set limits); killed, a rerun finishes it (a value already back is counted as back)."""
    table, col, key, kept = values["table"], values["column"], values["key"], values.get("kept_as") or values["table"]
    present = {r[1] for r in qcon.execute("PRAGMA table_info(%s)" % q.qi(kept))}
    if not present:
        return  # the repair stopped before it kept any value
    has_after = AFTER in present
    columns = [q.qi(c) for c in (key, col, q.TYPE_COLUMN)] + ([q.qi(AFTER)] if has_after else ["NULL"])
    where = " WHERE %s IS NOT %s" % (q.qi(STATE), q.sql_text(LEFT_ALONE)) if STATE in present else ""
    cursor = qcon.execute("SELECT %s FROM %s%s ORDER BY %s" % (", ".join(columns), q.qi(kept), where, q.qi(key)))
    restored = 0
    while True:
        rows = cursor.fetchmany(batch_size or UNDO_BATCH)
        if not rows:
            break
        if stop is not None:
            stop()
        def batch(rows=rows):
            done = 0
            for ident, original, kind, after in rows:
                back = "text-bytes" if kind == "text-bytes" else "plain"
                if has_after:
                    done += db.execute(swap_sql(db, table, key, col, "plain", back),
                                       swap_params(db, original, ident, after))
                else:  # a quarantine of an older emfix: it did not keep what it wrote
                    value = "CAST(? AS TEXT)" if back == "text-bytes" and db.dialect == "sqlite" else "?"
                    done += db.execute("UPDATE %s SET %s = %s WHERE %s = ?" % (
                        db.quote(table), db.quote(col), value, db.quote(key)), (original, ident))
            return done
        restored += db.write_batch(batch)  # compare-and-swap: safe to run again after a conflict
        kill_point("undone")
        if has_after:
            _name_changed_values(db, table, key, col, rows, result)
    name = table if kept == table else "%s.%s" % (table, col)
    result.restored[name] = result.restored.get(name, 0) + restored


def _name_changed_values(db, table, key, col, rows, result):
    """Rows of this batch that hold neither the repair's value nor the original: written since."""
    now = current_values(db, table, key, col, [r[0] for r in rows])
    for ident, original, _kind, after in rows:
        value = now[ident] if ident in now else _GONE
        if value is not _GONE and same_value(value, original):
            continue  # put back (now, or by an earlier run of undo)
        result.not_restored[table] = result.not_restored.get(table, 0) + 1
        if len(result.conflicts) < 20:
            result.conflicts.append({"table": table, "key": ident, "original": _shown(original),
                                     "repair_wrote": _shown(after),
                                     "now": None if value is _GONE else _shown(value)})


_GONE = object()


def _shown(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value
