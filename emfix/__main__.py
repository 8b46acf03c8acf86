"""`python -m emfix`. A Ctrl-C while Python is still importing the command line (the first tenth of a
second) is exit 130 with one line too, as it is later (cli.main), not a traceback."""

try:
    from .cli import main
except KeyboardInterrupt:
    import sys

    sys.stderr.write("error: interrupted\n")
    raise SystemExit(130) from None

raise SystemExit(main())
