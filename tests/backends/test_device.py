"""Trainer works only through its Device: a device whose memory is not the Trainer's (here its
blob lives behind copies, as a GPU's or an emulated DSP's would, and every call is logged)
trains exactly like the in-process one, and parameters / load_parameters / save go through it."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine import Program
from pockengine.backends import get_target
from pockengine.backends.c.device import HostDevice
from pockengine.backends.runtime import Trainer
from pockengine.pipeline import Recipe, compile, run
from programs import MLP_SCHEME, batches, mlp


class RemoteDevice(HostDevice):
    """A HostDevice that never hands out its own buffers: every read is a copy, every write
    replaces its blob with a copy, and the calls are logged."""

    def __init__(self, names):
        super().__init__(names)
        self.log = []

    def write_params(self, blob):
        self.log.append("write_params")
        super().write_params(np.array(blob, copy=True))

    def read_params(self):
        self.log.append("read_params")
        return super().read_params().copy()

    def run(self, function, inputs):
        self.log.append(f"run {function}")
        return [o.copy() for o in super().run(function, [i.copy() for i in inputs])]

    def sync(self):
        self.log.append("sync")


def test_trainer_drives_a_device_whose_memory_is_not_its_own(tmp_path):
    prog = mlp()
    r = run(prog, Recipe("cross_entropy", "sgd", MLP_SCHEME, {"lr": 0.05, "momentum": 0.9}), stop="build")
    device = RemoteDevice(r.target.language.function_names)
    device.open(r.kernels, r.artifact)
    remote = Trainer(r.program, r.kernels, device)
    local = compile(prog, loss="cross_entropy", optimizer="sgd", scheme=MLP_SCHEME, lr=0.05, momentum=0.9)
    for x, y in batches(prog, 5):
        assert remote.step(x, y) == local.step(x, y)
    assert device.log.count("run train_step") == 5 and device.log[0] == "write_params"
    got, want = remote.parameters(), local.parameters()
    assert device.log[-2:] == ["sync", "read_params"]
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
    # the parameters handed out are copies: changing them changes nothing on the device
    name = next(iter(got))
    got[name][...] = 7
    assert not np.array_equal(remote.parameters()[name], got[name])
    remote.load_parameters({name: got[name]})
    assert np.array_equal(remote.parameters()[name], got[name])
    remote.save(tmp_path / "saved")
    assert np.array_equal(Program.load(tmp_path / "saved").weights[name].reshape(got[name].shape), got[name])


def test_a_target_that_cannot_run_here_says_so():
    arm = get_target("arm64")
    if arm.can_load:
        pytest.skip("arm64 host: the arm64 target runs in process")
    with pytest.raises(ValueError, match="does not run in this process"):
        compile(mlp(), loss="cross_entropy", optimizer="sgd", target="arm64")
