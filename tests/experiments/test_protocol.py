"""The protocol's job claims (experiments/protocol.py): several processes share one output
directory, each job is done once, and the claim of a process that died is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pockengine.experiments import protocol


def test_claim_is_exclusive_and_a_dead_claim_is_taken_over(tmp_path):
    path = tmp_path / "r.json"
    assert protocol._claim(path)
    assert not protocol._claim(path)  # held by a live process (this one)
    claim = tmp_path / "r.json.claim"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim.write_text(str(dead.pid))
    assert protocol._claim(path) and claim.read_text() == str(os.getpid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exited, not yet reaped
    try:
        while open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            pass
        claim.write_text(str(zombie.pid))
        assert protocol._claim(path)
    finally:
        zombie.wait()


def test_do_all_skips_done_and_waits_for_held_jobs(tmp_path):
    done, held, free = (tmp_path / f"{n}.json" for n in ("done", "held", "free"))
    done.write_text("{}")
    (tmp_path / "held.json.claim").write_text(str(os.getppid()))  # a live process holds it
    calls = []

    def job(name):
        def fn():
            calls.append(name)
            if name == "free":  # meanwhile, the holder finishes its job
                held.write_text(json.dumps({"by": "other"}))
            return {"by": name}
        return fn

    protocol._do_all([(done, job("done")), (held, job("held")), (free, job("free"))], poll=0.01)
    assert calls == ["free"]
    assert json.loads(held.read_text()) == {"by": "other"} and json.loads(free.read_text()) == {"by": "free"}
    assert not (tmp_path / "free.json.claim").exists()
