"""One self-overwriting status line on stderr, shown only when stderr is a terminal."""

import sys
import time


class Progress:
    def __init__(self, label, stream=None, enabled=None, min_interval=0.2):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.min_interval = min_interval
        self._last = 0.0
        self._width = 0

    def update(self, text, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        line = "%s: %s" % (self.label, text)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def done(self):
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


class NoProgress(Progress):
    def __init__(self):
        super().__init__("", enabled=False)
