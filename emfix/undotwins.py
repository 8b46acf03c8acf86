"""undo into a table without a primary key: identical rows there are told apart by their number only.

A quarantined copy goes back while the table holds fewer rows like it than the quarantine holds copies (round 20).
The rows like each content of a batch are counted at once: the batch's contents go into a scratch table typed like
the table (so each value compares as the table's own column compares it), joined to the table once. A count per
copy read the whole table once per copy: 40,000 copies took 35 s, a million would have taken hours.
"""

import collections

from .backends.sqlite import placeholder

PROBE = "emfix_undo_alike"
NUMBER = "emfix_n"


class TwinCounter:
    """Counts, inside the caller's write transaction, the rows of `table` like each of a batch's contents."""

    def __init__(self, db, table, columns):
        self.db, self.table, self.columns = db, table, list(columns)
        names = ", ".join("t.%s" % db.quote(c) for c in columns)
        # SQLite: indexed on every column, so the table is read once and each of its rows looks its content up
        db.create_temp_table(PROBE, "SELECT %s, 0 AS %s FROM %s t WHERE 1 = 0" % (names, NUMBER, db.quote(table)),
                             indexes=[self.columns] if db.dialect == "sqlite" else ())
        same = "IS" if db.dialect == "sqlite" else "<=>"
        self.count_sql = "SELECT p.%s, count(*) FROM %s p JOIN %s t ON %s GROUP BY p.%s%s" % (
            NUMBER, db.quote(PROBE), db.quote(table), " AND ".join(
                "t.%s %s p.%s" % (db.quote(c), same, db.quote(c)) for c in columns), NUMBER,
            # MySQL: a locking read, as the INSERT ... SELECT it replaces: what the application committed counts
            "" if db.dialect == "sqlite" else " LOCK IN SHARE MODE")

    def alike_now(self, contents):
        """[how many rows of the table are like each of `contents` now], in their order."""
        db = self.db
        db.execute("DELETE FROM %s" % db.quote(PROBE))
        names = db.quote_columns(self.columns + [NUMBER])
        grouped = collections.defaultdict(list)  # one statement but where text is not UTF-8 (placeholder)
        for n, content in enumerate(contents):
            grouped[", ".join(placeholder(v) for v in content)].append(tuple(content) + (n,))
        for marks, rows in grouped.items():
            db.executemany("INSERT INTO %s (%s) VALUES (%s, ?)" % (db.quote(PROBE), names, marks), rows,
                           batch_size=len(rows))
        found = {int(n): int(count) for n, count in db.query(self.count_sql)}
        return [found.get(n, 0) for n in range(len(contents))]

    def to_put_back(self, rows, wanted):
        """The copies of `rows` (a batch, in order) that go back: of each content as many as the quarantine holds
        (`wanted`) less the rows like it the table holds now, at most the batch's own copies of it."""
        contents = list(dict.fromkeys(rows))
        room = {content: max(0, wanted[content] - there) for content, there in zip(contents, self.alike_now(contents))}
        chosen = []
        for row in rows:
            if room[row] > 0:
                room[row] -= 1
                chosen.append(row)
        return chosen

