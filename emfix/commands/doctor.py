"""emfix doctor: what is wrong around a database, and the command that fixes each thing."""

import sys

from ..address import hide_secrets
from ..errors import EXIT_OK, EXIT_PROBLEMS
from . import common

SUMMARY = ("what is wrong around a database and what to run: connection, locks, journal, engines, disk, memory, "
           "large metrics, unindexed keys, replication and Galera, last results (exit 0 OK/WARN, 1 FAIL)")


def register(sub):
    p = common.command(sub, "doctor", SUMMARY,
                       "emfix doctor experiment.db   |   emfix doctor mysql://em@db1/experiments --json")
    common.add_database_options(p)
    p.add_argument("--snapshot-dir", metavar="DIR", help="where this database's snapshots live")
    common.finish(p, run)


def run(args, out):
    from .. import doctor
    address = common.resolve_address(args)
    report = doctor.doctor(address, retry_policy=common.retry_policy(args), snapshot_dir=args.snapshot_dir,
                    command_target=address.target())
    if report.error is not None:  # what to run for the error that kept it from connecting
        for finding in report.findings:
            if finding.check == "connect":
                finding.fix = common.hint_for(report.error) or ""
    if out.json:
        common.emit_json({"database": report.database, "status": report.status, "connected": report.connected,
                   "findings": report.findings, "seconds": round(report.seconds, 3)})
    else:
        out.lines(doctor_lines(report))
    if not report.connected:
        if out.quiet:  # -q prints only errors: not reaching the database is one
            failed = next((f for f in report.findings if f.level == "FAIL"), None)
            sys.stderr.write("error: %s\n" % hide_secrets(failed.message if failed else "cannot open the database"))
        return report.exit_code
    return EXIT_PROBLEMS if report.status == "FAIL" else EXIT_OK


def doctor_lines(report):
    yield "emfix doctor: %s" % report.database
    for f in report.findings:
        yield "  %-4s  %-18s %s" % (f.level, f.check, f.message)
        if f.fix and f.level != "OK":
            yield "        %-18s fix: %s" % ("", f.fix)
    counts = {level: sum(1 for f in report.findings if f.level == level) for level in ("FAIL", "WARN")}
    yield "status: %s (%d FAIL, %d WARN; %.1f s)" % (report.status, counts["FAIL"], counts["WARN"], report.seconds)


