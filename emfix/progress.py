"""Progress on stderr, and the memory and time figures it shows.

A self-overwriting line on a terminal, or (forced, for logs) a line every few seconds.

Commands report "done/total" through `rows`, which adds %, rows/s and an ETA computed from the
rows moved since the first report, so the ETA is a number as soon as rows are moving. With psutil
installed the line also shows the process's resident memory.
"""

import datetime
import sys
import time

DEFAULT_BATCH = 2000  # rows per migrate transaction unless told otherwise
BASE_MB = 30  # the interpreter, a driver and the schema: what a migration holds before its first batch


def format_mb(n):
    """Bytes for people: 12.3 MB, 456 MB, 7.8 GB."""
    if n < 10e6:
        return "%.1f MB" % (n / 1e6)
    return "%.0f MB" % (n / 1e6) if n < 10e9 else "%.1f GB" % (n / 1e9)


def utc_now():
    """Now, as the ISO text manifests and journals carry (the history keeps whole seconds of its own)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def resident_mb():
    """This process's RSS in MB, or None without psutil (the `monitor` extra)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / (1024.0 * 1024.0)


class Progress:
    def __init__(self, label, stream=None, enabled=None, min_interval=0.2, log_interval=5.0):
        self.label = label
        self.stream = stream or sys.stderr
        tty = self.stream.isatty()
        self.enabled = tty if enabled is None else enabled
        self.log = self.enabled and not tty  # forced on for a log: whole lines, no carriage returns
        self.min_interval = log_interval if self.log else min_interval
        self._last = 0.0
        self._width = 0
        self._since = None

    def update(self, text, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        rss = resident_mb()
        line = "%s: %s%s" % (self.label, text, "" if rss is None else ", RSS %.0f MB" % rss)
        if self.log:
            self.stream.write(line + "\n")
        else:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        self.stream.flush()

    def rows(self, done, total, unit="rows"):
        """done/total with %, rate and ETA; the rate counts from the first call, so resumed work is not 'fast'."""
        now = time.monotonic()
        if self._since is None:
            self._since = (now, done)
            self._last = now - self.min_interval  # the first report shows at once
        start, base = self._since
        elapsed = now - start
        rate = (done - base) / elapsed if elapsed > 0 else 0.0
        text = "%s/%s %s (%.0f%%)" % ("{:,}".format(done), "{:,}".format(total), unit, 100.0 * done / max(total, 1))
        if rate > 0:
            text += ", %s %s/s, ETA %s" % ("{:,.0f}".format(rate), unit, _duration(max(total - done, 0) / rate))
        self.update(text)

    def done(self):
        if self.enabled and self._width and not self.log:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


class NoProgress(Progress):
    def __init__(self):
        super().__init__("", enabled=False)
