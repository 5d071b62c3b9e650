"""The search's progress line: runs done/total, running, failed — the same for the local pool
and a Ray cluster.

    bar = Progress(total=64, desc="contribution analysis")
    bar.update(done=3, running=2, failed=0, note="weight-L3-r1_2: 0.875")
    bar.close()

On a terminal it is one line redrawn in place (`\\r`, at most 10 times a second). When stderr is
not a terminal (a log file, CI, a pipe) nothing is redrawn: a plain line is written when a tenth
more of the runs is done, when a run fails, and at least every 30 s, so a log reads as a record
of what happened. Needs nothing beyond the standard library.
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, desc: str = "contribution analysis", enabled: bool = True, stream=None,
                 log_every: float = 30.0):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.log_every = log_every
        self.start = time.monotonic()
        self.done = self.running = self.failed = 0
        self.note = ""
        self._drawn = 0.0  # when the line was last written
        self._logged_tenth = -1
        self._width = 0

    def line(self) -> str:
        """done/total, running, failed, the rate and what was measured last."""
        elapsed = time.monotonic() - self.start
        parts = [f"{self.desc}: {self.done}/{self.total} done", f"{self.running} running", f"{self.failed} failed"]
        if self.done:
            per = elapsed / self.done
            parts.append(f"{per:.1f} s/run")
            left = self.total - self.done - self.failed
            if left > 0:
                parts.append(f"eta {_clock(per * left)}")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.note:
            parts.append(f"last {self.note}")
        text = ", ".join(parts)
        if self.tty:
            filled = int(20 * (self.done + self.failed) / max(self.total, 1))
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {text}"
        return text

    def update(self, done: int | None = None, running: int | None = None, failed: int | None = None,
               note: str | None = None) -> None:
        before = self.failed
        self.done = self.done if done is None else done
        self.running = self.running if running is None else running
        self.failed = self.failed if failed is None else failed
        self.note = self.note if note is None else note
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._drawn >= 0.1 or self.done + self.failed >= self.total:
                self._draw(now)
            return
        tenth = 10 * (self.done + self.failed) // max(self.total, 1)
        if tenth > self._logged_tenth or self.failed > before or now - self._drawn >= self.log_every:
            self._logged_tenth = tenth
            self._write(self.line() + "\n", now)

    def _draw(self, now: float) -> None:
        text = self.line()
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        self._write("\r" + text + " " * pad, now)

    def _write(self, text: str, now: float) -> None:
        self._drawn = now
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream never stops the search
            self.enabled = False

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._draw(time.monotonic())
            self._write("\n", time.monotonic())
        elif self._logged_tenth < 10:
            self._write(self.line() + "\n", time.monotonic())
        self.enabled = False

