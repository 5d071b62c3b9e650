"""The search's progress line: redrawn in place only on a terminal; a log gets plain lines."""

from __future__ import annotations

import io

from pockengine.search.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run(stream, total=20, fail_at=(7,)):
    bar = Progress(total, stream=stream)
    done = failed = 0
    for i in range(total):
        if i in fail_at:
            failed += 1
        else:
            done += 1
        bar.update(done=done, running=min(2, total - i - 1), failed=failed, note=f"run{i}: 0.5")
    bar.close()
    return stream.getvalue()


def test_a_log_gets_lines_without_carriage_returns():
    text = run(io.StringIO())
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # a line per tenth of the runs (and one when a run failed), not one per update
    assert 5 <= len(lines) <= 12
    assert lines[-1].startswith("contribution analysis: 19/20 done, 0 running, 1 failed")
    assert any("1 failed" in line and "run7" in line for line in lines)


def test_a_terminal_gets_one_line_redrawn():
    text = run(Terminal())
    assert text.count("\n") == 1 and text.endswith("\n") and "\r[" in text
    assert "19/20 done, 0 running, 1 failed" in text.split("\r")[-1]


def test_disabled_writes_nothing():
    stream = io.StringIO()
    bar = Progress(3, enabled=False, stream=stream)
    bar.update(done=3)
    bar.close()
    assert stream.getvalue() == ""
