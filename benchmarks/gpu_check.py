"""The cuda target on a lent NVIDIA GPU (issue 15), prepared here and run there in one command.

    python benchmarks/gpu_check.py prepare [--out gpu_check] [--only mlp,W1,...]   # here, on the CPU
    python3 benchmarks/gpu_check.py run [--dir gpu_check] [--out $OUT] [--budget 440]  # on the GPU
    python benchmarks/gpu_check.py pocl [--programs mlp,cnn,attention,W2]   # opencl on PoCL vs c, here

On a lent machine (the `device` tool), after `prepare` here: run with command
`python3 benchmarks/gpu_check.py run --out $OUT`, carry ["gpu_check"] (ignored by git, ~20 MB)
and timeout_s 540; gpu_check.json and gpu_check.md come back from $OUT.

`prepare` compiles every case here (the GPU machine has no pockengine dependencies, and the
models' weights are too large to carry): per case a CUDA project and, for the reference, a
host C project (backends' `write_project`), the data batches, and a spec.json (inputs, the
loss, the scheme's per-parameter decisions, the planned device bytes, for the test programs
their weights and the host C build's 20 losses). `run` needs only python3 with torch,
numpy, transformers, nvcc, gcc (and compute-sanitizer); in at most --budget seconds it

  1. builds every project (make -j, sm_90) and checks 20-step losses of the CUDA build
     against the host C build within 1e-4 relative, TF32 off: MLP, CNN and attention block
     full and sparse, W1-W4 sparse (weights from the torch builders of benchmarks/workloads.py
     with their seeds, so both builds start alike); the CNN once under compute-sanitizer;
  2. times ms/step in one process, interleaved round by round: ours (sparse, and full on
     W1-W4) against PyTorch CUDA eager (full BP and the same scheme) and torch.compile of the
     same scheme (default and mode="reduce-overhead"), on W1-W4 and W5 (Llama: 8 layers,
     hidden 768, 12 heads, SwiGLU 2048, seq 512, batch 8, vocabulary 32000);
  3. planned device memory (parameter blob + device arena) against
     torch.cuda.max_memory_allocated of PyTorch full BP;

and writes gpu_check.json and gpu_check.md (the table) to --out. Argument and file checks
run first and fail with exit 2 before any GPU work.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SGD = {"lr": 0.01, "momentum": 0.9}
STEPS = 20
W5_SCHEME = ("default frozen; model.layers.6.*norm*, model.layers.7.*norm*, model.norm.*: full; "
             "model.layers.7.mlp.*: full; lm_head.*: full")
TARGETS = {"eager_vs_ours": 3.0, "compile_vs_ours": 1.2, "w5_eager_vs_ours": 1.3, "memory_ratio": 1 / 3}


class UserError(Exception):
    """Bad arguments or files: a message, exit 2."""


def w5():
    """W5: Llama, 8 layers, hidden 768, 12 heads, SwiGLU 2048, seq 512, batch 8, vocab 32000."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests" / "frontends"))
    from models import returning

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=8,
                      num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=512, use_cache=False)
    m = returning(LlamaForCausalLM(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (8, 512))
    return m, (ids,), ids.clone(), "next_token"


def builders() -> dict:
    sys.path.insert(0, str(HERE))
    import workloads as W

    return {**W.WORKLOADS, "W5": w5}


def scheme_of(name: str) -> str:
    if name == "W5":
        return W5_SCHEME
    sys.path.insert(0, str(HERE))
    import workloads as W

    return W.scheme(name)


# --- prepare (here) -------------------------------------------------------------------------

def prepare(out: Path, only: list[str] | None) -> None:
    sys.path[:0] = [str(ROOT.parent)]
    out.mkdir(parents=True, exist_ok=True)
    cases = ["mlp", "cnn", "attention", "mlp-sparse", "cnn-sparse", "attention-sparse",
             "W1", "W2", "W3", "W4", "W1-full", "W2-full", "W3-full", "W4-full", "W5"]
    for name in cases:
        if only and name not in only and name.split("-")[0] not in only:
            continue
        t0 = time.time()
        (_program_case if name.split("-")[0] in ("mlp", "cnn", "attention") else _torch_case)(out / name, name)
        print(f"prepared {name} in {time.time() - t0:.1f} s", flush=True)
    (out / "README").write_text("Cases for benchmarks/gpu_check.py run (written by its prepare step).\n")


def _projects(folder: Path, prog, cuda_only=False, weights=True):
    from pockengine.backends import get_target
    from pockengine.backends.gpu.schedule import build_schedule
    from pockengine.backends.lower_to_kernels import lower_program
    from pockengine.backends.project import write_project

    kps = {}
    for target in ("cuda",) if cuda_only else ("cuda", "c"):
        tgt = get_target(target)
        kp = lower_program(prog, library=tgt.library)
        write_project(folder / target, kp, tgt, prog.weights if weights else None)
        kps[target] = kp
    sched = build_schedule(kps["cuda"])
    return kps, sched.device_bytes + sched.params_bytes


def _write_data(folder: Path, kp, batches):
    from pockengine.backends.project import write_data

    dtypes = [v.dtype for v in kp.functions["train_step"].inputs]
    write_data(folder / "cuda" / "data.bin", batches, dtypes)  # the C reference reads the same file


def _program_case(folder: Path, name: str) -> None:
    sys.path[:0] = [str(ROOT / "tests" / "backends"), str(ROOT / "tests" / "passes")]
    import programs as P
    from pockengine.backends import get_target
    from pockengine.backends.runtime import Trainer
    from pockengine.passes import run_pipeline

    base, sparse = name.split("-")[0], name.endswith("-sparse")
    schemes = {"mlp": f'{P.ADAMW},sparse-backprop{{scheme="{P.MLP_SCHEME}"}},dead-gradient-elimination',
               "cnn": f'{P.SGD},sparse-backprop{{scheme="{P.CNN_SCHEME}"}},dead-gradient-elimination',
               "attention": f'{P.SGD},sparse-backprop{{scheme="default frozen; ffn.*: full; classifier.*: full"}},'
                            "dead-gradient-elimination"}
    prog = getattr(P, base)()
    trained = P.trained(prog, schemes[base] if sparse else P.SGD)
    run_pipeline(trained, "operator-reordering,fusion")
    kps, planned = _projects(folder, trained)
    batches = [list(b) for b in P.batches(prog, 3)]
    _write_data(folder, kps["c"], batches)
    kp = kps["c"]
    host = Trainer(trained.copy(), kp, get_target("c").load(kp))
    ref = [host.step(*batches[i % 3]) for i in range(STEPS)]
    _spec(folder, kind="program", ref_losses=ref, planned_bytes=planned)


def _torch_case(folder: Path, name: str) -> None:
    import numpy as np
    import torch
    from pockengine.frontends import from_torch
    from pockengine.passes.scheme import Scheme
    from pockengine.pipeline import Recipe, run

    workload, full = name.split("-")[0], name.endswith("-full")
    model, inputs, labels, loss = builders()[workload]()
    program = from_torch(model, inputs)
    text = scheme_of(workload)
    r = run(program, Recipe(loss, "sgd", None if full else text, dict(SGD), True, "cuda"), "memory-plan")
    prog = r.program
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    missing = [k for k, p in r.kernels.params.items() if p.category != "optimizer_state" and k not in state]
    differ = [k for k in program.weights if k in state and not np.array_equal(
        program.weights[k], state[k].detach().numpy().reshape(program.weights[k].shape))]
    if missing or differ:  # the GPU machine rebuilds the weights from the torch state dict by name
        raise SystemExit(f"{name}: parameters not in the torch state dict {missing[:5]} or different {differ[:5]}")
    timing_only = workload == "W5" or full
    kps, planned = _projects(folder, prog, cuda_only=timing_only, weights=False)
    rng = np.random.default_rng(0)
    batches = []
    for i in range(3):
        if workload in ("W3", "W4", "W5"):
            ids = torch.randint(0, int(inputs[0].max()) + 1, inputs[0].shape, generator=torch.Generator().manual_seed(i))
            xs = [ids.numpy()] + [a.numpy() for a in inputs[1:]]
            y = ids.numpy() if loss == "next_token" else rng.integers(0, 2, labels.shape)
        else:
            xs = [rng.standard_normal(tuple(inputs[0].shape)).astype(np.float32)]
            y = rng.integers(0, 1000, labels.shape)
        batches.append([*xs, y])
    _write_data(folder, kps["cuda"], batches)
    decisions = {} if full else {k: {"mode": d.mode, "axis": getattr(d, "axis", 0), "channels": getattr(d, "channels", 0)}
                                 for k, d in Scheme.parse(text).resolve(program).items()}
    _spec(folder, kind="torch", workload=workload, loss=loss, full=full, decisions=decisions, planned_bytes=planned,
          check=not timing_only, scheme=None if full else text)


def _spec(folder: Path, **spec) -> None:
    (folder / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")


# --- run (on the GPU machine) -----------------------------------------------------------------

class Lib:
    """A built libmodel.so (C or CUDA) driven through ctypes: pock_train_step(P, A, in, out)."""

    def __init__(self, folder: Path, blob):
        import numpy as np

        self.layout = json.loads((folder / "layout.json").read_text())
        self.lib = ctypes.CDLL(str(folder / "libmodel.so"))
        self.blob = np.array(blob, np.uint8)
        self.arena = np.zeros(max(self.layout["arena_bytes"], 64), np.uint8)
        self.device = hasattr(self.lib, "pock_device_open")
        if self.device:
            self.lib.pock_device_error.restype = ctypes.c_char_p
            self.lib.pock_device_write_params(ctypes.c_void_p(self.blob.ctypes.data))
            self._check()
        self.fn = self.lib.pock_train_step
        self.fn.argtypes = [ctypes.c_void_p] * 4
        self.loss = np.zeros(1, np.float32)

    def _check(self):
        if self.device and self.lib.pock_device_error():
            raise RuntimeError(self.lib.pock_device_error().decode())

    def step(self, batch) -> float:
        ins = (ctypes.c_void_p * len(batch))(*[a.ctypes.data for a in batch])
        outs = (ctypes.c_void_p * 1)(self.loss.ctypes.data)
        self.fn(self.blob.ctypes.data, self.arena.ctypes.data, ins, outs)
        self._check()
        return float(self.loss[0])


def read_data(path: Path, dtypes):
    import numpy as np

    raw = path.read_bytes()
    nb, ni = struct.unpack("<QQ", raw[8:24])
    sizes = struct.unpack(f"<{ni}Q", raw[24:24 + 8 * ni])
    at, out = 24 + 8 * ni, []
    for _ in range(nb):
        b = []
        for s, (dt, shape) in zip(sizes, dtypes):
            b.append(np.frombuffer(raw[at:at + s], dt).reshape(shape).copy())
            at += s
        out.append(b)
    return out


def blob_of(layout: dict, weights: dict | None, folder: Path):
    """The parameter blob: weights.bin when the case has one, else torch's state dict laid out."""
    import numpy as np

    if (folder / "weights.bin").is_file():
        return np.frombuffer((folder / "weights.bin").read_bytes()[16:], np.uint8).copy()
    blob = np.zeros(layout["params_bytes"], np.uint8)
    for name, p in layout["params"].items():
        if name in weights:
            raw = np.ascontiguousarray(weights[name].detach().cpu().numpy().astype(NP[p["dtype"]])).view(np.uint8)
            blob[p["offset"]:p["offset"] + raw.size] = raw.reshape(-1)
    return blob


NP = {"f32": "float32", "i64": "int64", "i32": "int32", "i1": "bool"}


def run(folder: Path, out: Path, budget: float, rounds: int) -> dict:
    t_start = time.time()
    cases = sorted(p for p in folder.iterdir() if (p / "spec.json").is_file())
    if not cases:
        raise UserError(f"{folder}: no prepared cases (run `python benchmarks/gpu_check.py prepare` here first)")
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA device visible to torch")
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "checks": {}, "timing": {},
              "memory": {}, "skipped": []}
    # 1. build everything at once
    jobs = [(p / t) for p in cases for t in ("cuda", "c") if (p / t / "Makefile").is_file()]
    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 4))) as ex:
        built = dict(zip(jobs, ex.map(_make, jobs)))
    result["builds"] = {str(k.relative_to(folder)): v for k, v in built.items()}
    specs = {p.name: json.loads((p / "spec.json").read_text()) for p in cases}
    # 2. correctness
    for p in cases:
        spec = specs[p.name]
        if spec["kind"] == "torch" and not spec.get("check"):
            continue
        result["checks"][p.name] = _check_case(p, spec, built)
    cnn = folder / "cnn" / "cuda"
    if cnn.is_dir():
        result["checks"]["cnn (compute-sanitizer)"] = _sanitize(cnn)
    # 3. timing and memory
    for w in ("W1", "W2", "W3", "W4", "W5"):
        if (folder / w).is_dir():
            if time.time() - t_start > budget:
                result["skipped"].append(f"{w}: time budget of {budget:.0f} s spent")
                continue
            result["timing"][w], result["memory"][w] = _time_workload(folder, w, specs, built, rounds,
                                                                      t_start + budget)
    result["seconds"] = time.time() - t_start
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "gpu_check.md").write_text(table(result))
    print(table(result))
    return result


def _make(project: Path) -> str:
    target = ["libmodel.so", "model"] if (project / "weights.bin").is_file() else ["libmodel.so"]
    cmd = ["make", "-s", "-C", str(project), *target] + (["ARCH=90"] if (project / "model.cu").is_file() else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return "ok" if res.returncode == 0 else "FAILED: " + res.stderr[-1500:]


def _dtypes(layout):
    return [(NP[v["dtype"]], tuple(v["shape"])) for v in layout["functions"]["train_step"]["inputs"]]


def _torch_weights(workload: str):
    model, _, _, _ = builders()[workload]()
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _check_case(p: Path, spec: dict, built: dict) -> dict:
    if built.get(p / "cuda") != "ok":
        return {"ok": False, "error": built.get(p / "cuda")}
    layout = json.loads((p / "cuda" / "layout.json").read_text())
    batches = read_data(p / "cuda" / "data.bin", _dtypes(layout))
    weights = None if spec["kind"] == "program" else _torch_weights(spec["workload"])
    try:
        gpu = Lib(p / "cuda", blob_of(layout, weights, p / "cuda"))
        got = [gpu.step(batches[i % len(batches)]) for i in range(STEPS)]
        if spec["kind"] == "program":
            want = spec["ref_losses"]
        else:
            if built.get(p / "c") != "ok":
                return {"ok": False, "error": built.get(p / "c")}
            host = Lib(p / "c", blob_of(json.loads((p / "c" / "layout.json").read_text()), weights, p / "c"))
            want = [host.step(batches[i % len(batches)]) for i in range(STEPS)]
    except Exception as e:  # noqa: BLE001  (a failing case is reported, the others still run)
        return {"ok": False, "error": str(e)[:500]}
    rel = max(abs(g - w) / max(abs(w), 1e-12) for g, w in zip(got, want))
    return {"ok": rel <= 1e-4, "max_rel": rel, "losses": got[:3] + got[-2:], "host": want[:3] + want[-2:]}


def _sanitize(project: Path) -> dict:
    res = subprocess.run(["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "3", "./model", "2", "data.bin"],
                         cwd=project, capture_output=True, text=True, check=False, timeout=240)
    tail = (res.stdout + res.stderr)[-600:]
    return {"ok": res.returncode == 0 and "ERROR SUMMARY: 0 errors" in tail, "tail": tail}


def _torch_step_fn(workload, decisions, compiled=None, full=False):
    import torch

    sys.path.insert(0, str(HERE))
    from train_benchmark import torch_loss

    model, inputs, labels, kind = builders()[workload]()
    model = model.cuda()
    inputs = [a.cuda() for a in inputs]
    labels = labels.cuda()
    params = []
    for name, p in model.named_parameters():
        d = None if full else decisions.get(name)
        if not full and (d is None or d["mode"] == "frozen"):
            p.requires_grad_(False)
            continue
        params.append(p)
        if d is not None and d["mode"] == "ratio":
            m = torch.zeros_like(p)
            m.narrow(d["axis"], 0, d["channels"]).fill_(1)
            p.register_hook(lambda g, m=m: g * m)
    opt = torch.optim.SGD(params, **SGD)
    fn = torch.compile(model, mode=compiled) if compiled else model

    def step():
        if compiled == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        opt.zero_grad(set_to_none=True)
        loss = torch_loss(fn(*inputs), labels, kind)
        loss.backward()
        opt.step()
        return loss

    return step


def _time_workload(folder: Path, w: str, specs: dict, built: dict, rounds: int, deadline: float):
    import torch

    runs, info = {}, {}
    for label, case in (("ours sparse", w), ("ours full", f"{w}-full")):
        p = folder / case
        if not (p / "cuda").is_dir() or built.get(p / "cuda") != "ok":
            continue
        layout = json.loads((p / "cuda" / "layout.json").read_text())
        lib = Lib(p / "cuda", blob_of(layout, _torch_weights(w), p / "cuda"))
        batch = read_data(p / "cuda" / "data.bin", _dtypes(layout))[0]
        runs[label] = (lambda lib=lib, batch=batch: lib.step(batch))
        info[label] = specs[case]["planned_bytes"]
    decisions = specs[w]["decisions"]
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    full_step = _torch_step_fn(w, decisions, full=True)
    for _ in range(3):
        full_step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    runs["eager full"] = full_step
    runs["eager scheme"] = _torch_step_fn(w, decisions)
    for mode in ("default", "reduce-overhead"):
        if time.time() > deadline - 90:  # torch.compile of a large model takes minutes
            info[f"compile {mode}"] = "skipped: time budget"
            continue
        try:
            f = _torch_step_fn(w, decisions, compiled=mode)
            for _ in range(3):
                f()
            runs[f"compile {mode}"] = f
        except Exception as e:  # noqa: BLE001  (report and go on)
            info[f"compile {mode}"] = f"unavailable: {str(e).splitlines()[0][:120]}"
    for f in runs.values():
        f()
    torch.cuda.synchronize()
    times = {k: [] for k in runs}
    reps = 10 if w != "W5" else 3
    for _ in range(rounds):
        for k, f in runs.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            torch.cuda.synchronize()
            times[k].append((time.perf_counter() - t0) * 1e3 / reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {"planned_bytes": info.get("ours sparse"), "planned_full_bytes": info.get("ours full"),
           "torch_full_peak_bytes": peak}
    return {"ms_per_step": med, "notes": {k: v for k, v in info.items() if isinstance(v, str)}}, mem


def table(r: dict) -> str:
    lines = [f"# gpu_check on {r.get('device')} (torch {r.get('torch')}), {r.get('seconds', 0):.0f} s", "",
             "| check | ok | max rel. diff |", "|---|---|---|"]
    for k, v in r["checks"].items():
        lines.append(f"| {k} | {'yes' if v.get('ok') else 'NO'} | {v.get('max_rel', v.get('error', '')) if 'max_rel' in v or 'error' in v else ''} |")
    cols = ["ours sparse", "ours full", "eager full", "eager scheme", "compile default", "compile reduce-overhead"]
    lines += ["", "| workload | " + " | ".join(cols) + " | eager scheme / ours | best compile / ours | memory ours / torch full |",
              "|---" * (len(cols) + 4) + "|"]
    for w, t in r["timing"].items():
        ms = t["ms_per_step"]
        ours = ms.get("ours sparse")
        comp = min([ms[k] for k in ("compile default", "compile reduce-overhead") if k in ms] or [float("nan")])
        m = r["memory"].get(w, {})
        mem = (m["planned_bytes"] / m["torch_full_peak_bytes"]) if m.get("planned_bytes") and m.get("torch_full_peak_bytes") else float("nan")
        cells = [f"{ms[c]:.2f}" if c in ms else "-" for c in cols]
        lines.append(f"| {w} | " + " | ".join(cells) + f" | {ms.get('eager scheme', float('nan')) / ours if ours else float('nan'):.2f}x"
                     f" | {comp / ours if ours else float('nan'):.2f}x | {mem:.3f} |")
    lines += ["", (f"targets: eager scheme / ours >= {TARGETS['eager_vs_ours']} (W1-W4), >= {TARGETS['w5_eager_vs_ours']}"
                   f" (W5); best compile / ours >= {TARGETS['compile_vs_ours']}; memory <= {TARGETS['memory_ratio']:.3f}")]
    notes = [f"{w} {k}: {v}" for w, t in r["timing"].items() for k, v in t.get("notes", {}).items()]
    if notes or r.get("skipped"):
        lines += ["", "notes: " + "; ".join(notes + r.get("skipped", []))]
    return "\n".join(lines) + "\n"


def pocl(names: list[str], rounds: int) -> str:
    """ms/step of the opencl target on PoCL against the c target, same CPU, one process,
    interleaved (for the record: PoCL proves correctness, not GPU speed)."""
    import numpy as np

    sys.path[:0] = [str(ROOT / "tests" / "backends"), str(ROOT / "tests" / "passes")]
    import programs as P
    from pockengine.pipeline import compile as pk_compile

    rows = ["| program | c ms/step | opencl (PoCL) ms/step | ratio |", "|---|---|---|---|"]
    for name in names:
        if name in ("mlp", "cnn", "attention"):
            prog = getattr(P, name)()
            x, y = P.batches(prog, 1)[0]
            args, loss = (x, y), "cross_entropy"
        else:
            from pockengine.frontends import from_torch

            model, inputs, labels, loss = builders()[name]()
            prog = from_torch(model, inputs)
            args = (*(a.numpy() for a in inputs), labels.numpy())
        scheme = None if name in ("mlp", "cnn", "attention") else scheme_of(name)
        trainers = {t: pk_compile(prog, loss=loss, optimizer="sgd", scheme=scheme, target=t, **SGD)
                    for t in ("c", "opencl")}
        times = {t: [] for t in trainers}
        for tr in trainers.values():
            tr.step(*args)
        for _ in range(rounds):
            for t, tr in trainers.items():
                t0 = time.perf_counter()
                for _ in range(5):
                    tr.step(*args)
                times[t].append((time.perf_counter() - t0) * 200)
        c, cl = (float(np.median(times[t])) for t in ("c", "opencl"))
        rows.append(f"| {name} | {c:.3f} | {cl:.3f} | {cl / c:.1f}x |")
        print(rows[-1], flush=True)
    load = os.getloadavg()
    return "\n".join(rows + ["", f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} CPUs"]) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="compile the cases here (CPU)")
    p.add_argument("--out", type=Path, default=ROOT / "gpu_check")
    p.add_argument("--only", default="", help="comma-separated cases or workloads (default: all)")
    r = sub.add_parser("run", help="build, check and time on the GPU machine")
    r.add_argument("--dir", type=Path, default=ROOT / "gpu_check")
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    r.add_argument("--budget", type=float, default=440.0, help="seconds before the remaining timings are skipped")
    r.add_argument("--rounds", type=int, default=5)
    q = sub.add_parser("pocl", help="ms/step of the opencl target on PoCL against the c target (here)")
    q.add_argument("--programs", default="mlp,cnn,attention")
    q.add_argument("--rounds", type=int, default=5)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if args.cmd == "prepare":
            prepare(args.out, [s for s in args.only.split(",") if s] or None)
        elif args.cmd == "pocl":
            print(pocl([s for s in args.programs.split(",") if s], max(1, args.rounds)))
        else:
            if not args.dir.is_dir():
                raise UserError(f"{args.dir}: no such folder (run `prepare` first)")
            if args.budget <= 0 or args.rounds < 1:
                raise UserError("--budget must be positive and --rounds at least 1")
            result = run(args.dir, args.out, args.budget, args.rounds)
            return 0 if all(c.get("ok") for c in result["checks"].values()) else 1
    except UserError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
