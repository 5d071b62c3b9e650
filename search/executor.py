"""Where the candidates are fine-tuned: a local process pool (the default) or a Ray cluster.

    failed = run_jobs(jobs, program, train, val, recipe, on_result, executor="ray", address=None)

A job is one (candidate, seed) whose result is not cached yet; each is compiled, trained and
evaluated on a worker (`measure_one`), and its result comes back to this process, where
`on_result` writes it to the measurement cache at once (contribution.py): a search stopped
anywhere resumes with what is missing, on this machine or another. Both executors share that
loop, the progress line (progress.py: done/total, running, failed) and the fault rules:

- a worker that dies mid-candidate (killed, out of memory, its node lost) costs that job an
  attempt; after `retries` more attempts the job is reported failed (`Failed`), the other jobs
  go on, and the search says which failed;
- a candidate whose compile or fine-tuning *raises* fails the same way every time: the search
  stops with a `CandidateError` naming it (what was already measured stays cached).

**Ray** (`executor="ray"`, the extra `pockengine[ray]`): the program (IR text and weights), the
data and the recipe go into the object store once; each job is a Ray task named
`pockengine-search:<candidate>-s<seed>` that receives references to them and the scheme text,
and a worker process keeps what it fetched for the next task of the same search. At most as
many tasks are in flight as the cluster has CPUs (read again as nodes join), so "running" is
what the cluster runs. `address` is a Ray address (`"auto"`, `"HOST:6379"`, `"ray://..."`); by
default a connected Ray is used as it is, else `ray.init()` finds one ($RAY_ADDRESS, or the
cluster `ray start` last started on this machine) or starts a private one here (loopback only),
which is stopped at the end. Every worker reports its compiler's fingerprint: a
node with a different pockengine would measure something else, so that is an error.

**Local** (`executor="local"`): `workers` processes (fork where available: a calling script
needs no `__main__` guard), each loading the program once. A dead worker breaks Python's pool;
the jobs running then are charged an attempt and the pool is started again for the rest.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass

from ..errors import UserError
from .progress import Progress

EXECUTORS = ("local", "ray")
RAY_EXTRA = "pip install 'pockengine[ray]'"
DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class Job:
    key: str  # the candidate's key (contribution.Candidate.key)
    seed: int
    scheme: str  # the candidate's scheme text

    @property
    def name(self) -> str:
        return f"{self.key}-s{self.seed}"


@dataclass(frozen=True)
class Failed:
    """A job given up on: its worker died on every attempt."""

    key: str
    seed: int
    attempts: int
    reason: str

    def __str__(self) -> str:
        return f"{self.key} (seed {self.seed}): {self.reason} ({self.attempts} attempts)"


class ExecutorError(UserError):
    """The executor cannot be used as asked: an unknown name, Ray not installed, no cluster at
    the address."""


class CandidateError(RuntimeError):
    """A candidate's compile or fine-tuning raised (the same would happen on every retry)."""

    def __init__(self, job: Job, error: BaseException):
        self.job, self.error = job, error
        first = (str(error).strip().splitlines() or [""])[0]
        super().__init__(f"candidate {job.key} (seed {job.seed}) failed: {type(error).__name__}: {first}")


# --- what a worker does --------------------------------------------------------------------


def measure_one(program, train, val, recipe, scheme: str, seed: int) -> dict:
    """Compile, fine-tune and evaluate one candidate: the fields the cache keeps."""
    import time

    from .finetune import finetune

    started, clock = time.time(), time.perf_counter()
    run = finetune(program, scheme, train, [val], recipe, seed)
    return {"accuracy": run.accuracies[0], "memory": run.memory, "backward_flops": run.backward_flops,
            "saved_bytes": run.plan.saved_bytes, "state_bytes": run.plan.state_bytes,
            "final_loss": run.losses[-1] if run.losses else None,
            "started_at": started, "seconds": time.perf_counter() - clock}  # where the time went


_WORKER: dict = {}  # what this worker process loaded: program, data, recipe (one search at a time)


def _local_init(program_dir: str, train, val, recipe) -> None:
    from pockengine.ir.program import Program

    _WORKER.clear()
    _WORKER.update(program=Program.load(program_dir), train=train, val=val, recipe=recipe)


def _local_task(scheme: str, seed: int) -> dict:
    w = _WORKER
    return measure_one(w["program"], w["train"], w["val"], w["recipe"], scheme, seed) | {"pid": os.getpid()}


def _ray_task(shipped: list, scheme: str, seed: int) -> dict:
    """Runs on a Ray worker. `shipped` = [program, data, recipe] as object references, inside a
    list so that Ray does not fetch them for every task: this worker fetches them once."""
    import ray

    from .contribution import compiler_fingerprint

    key = tuple(ref.hex() for ref in shipped)
    fetched = _WORKER.get("key") != key
    if fetched:
        import numpy as np
        from pockengine.ir.program import Program

        shipped_program, (train, val), recipe = ray.get(shipped)
        weights = {k: np.array(v) for k, v in shipped_program["weights"].items()}  # writable, as loaded
        program = Program.parse(shipped_program["mlir"], weights, "<shipped program>")
        _WORKER.clear()
        _WORKER.update(key=key, program=program, train=train, val=val, recipe=recipe,
                       compiler=compiler_fingerprint())
    w = _WORKER
    doc = measure_one(w["program"], w["train"], w["val"], w["recipe"], scheme, seed)
    return doc | {"compiler": w["compiler"], "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                  "fetched_shipment": fetched}


# --- the driver's side ---------------------------------------------------------------------


def run_jobs(jobs: list[Job], program, train, val, recipe, on_result, *, executor: str = "local",
             address: str | None = None, workers: int | None = None, retries: int = DEFAULT_RETRIES,
             progress: bool = True, program_dir: str | None = None) -> list[Failed]:
    """Measure every job; `on_result(job, doc)` gets each result as it arrives. Returns the jobs
    that failed (their workers died `retries + 1` times); raises CandidateError when one raised."""
    check_executor(executor, address, workers, retries)
    bar = Progress(len(jobs), enabled=progress)
    try:
        if executor == "ray":
            return _RayRun(jobs, program, train, val, recipe, on_result, bar, address, workers, retries).run()
        if program_dir is None:
            raise ValueError("the local pool loads the program from a directory (program_dir)")
        return _local(jobs, program_dir, train, val, recipe, on_result, bar, workers or 2, retries)
    finally:
        bar.close()


def check_executor(executor: str, address: str | None = None, workers: int | None = None,
                   retries: int = DEFAULT_RETRIES) -> None:
    """ExecutorError for an unknown executor, bad counts, or Ray asked for but not installed
    (checked without importing it)."""
    import importlib.util

    if executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if retries < 0:
        raise ExecutorError(f"retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise ExecutorError(f"workers must be at least 1, got {workers}")
    if executor == "local" and address is not None:
        raise ExecutorError("an address is for executor='ray' (the local pool runs on this machine)")
    if executor == "ray" and (sys.modules["ray"] is None if "ray" in sys.modules
                              else importlib.util.find_spec("ray") is None):
        raise ExecutorError(f"executor 'ray' needs Ray, which is not installed: {RAY_EXTRA}")


def _note(job: Job, doc: dict) -> str:
    return f"{job.name}: {doc['accuracy']:.3f}"


def _local(jobs, program_dir, train, val, recipe, on_result, bar: Progress, workers: int, retries: int):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # fork where there is one: no re-import of the caller's __main__; the workers start before
    # any thread of this process does
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    attempts = {job: 0 for job in jobs}
    left, failed, done = list(jobs), [], 0
    while left:
        broken = False
        with ProcessPoolExecutor(max(1, workers), ctx, _local_init, (program_dir, train, val, recipe)) as pool:
            futures = {pool.submit(_local_task, job.scheme, job.seed): job for job in left}
            started: set = set()  # futures seen running: the suspects when a worker dies
            try:
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    started |= {f for f in pending if f.running()}
                    # the pool marks one call more than it has workers as running (its call queue)
                    running = min(workers, sum(1 for f in pending if f.running()))
                    for fut in finished:
                        job = futures[fut]
                        try:
                            doc = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        except Exception as e:
                            raise CandidateError(job, e) from e
                        on_result(job, doc)
                        left.remove(job)
                        done += 1
                        bar.update(done=done, running=running, note=_note(job, doc))
                    if broken:
                        break
                    bar.update(running=running)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        if broken:  # charge the jobs that were running; start the pool again for the rest
            suspects = [futures[f] for f in started if futures[f] in left] or list(left)
            for job in suspects:
                attempts[job] += 1
                if attempts[job] > retries:
                    left.remove(job)
                    failed.append(Failed(job.key, job.seed, attempts[job], "a worker process died"))
            bar.update(failed=len(failed), running=0)
    return failed


def import_ray(start_local: bool):
    """Ray, or an ExecutorError naming the extra. A private local instance stays on loopback."""
    if start_local:  # a Ray this search may start itself: it reports no usage statistics (opt in: =1)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if start_local and "ray" not in sys.modules:
        # Ray reads this when imported: node address 127.0.0.1 instead of the machine's address
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"executor 'ray' needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


class _RayRun:
    def __init__(self, jobs, program, train, val, recipe, on_result, bar, address, workers, retries):
        self.jobs, self.on_result, self.bar = jobs, on_result, bar
        self.workers, self.retries, self.address = workers, retries, address
        self.program, self.data, self.recipe = program, (train, val), recipe

    def run(self) -> list[Failed]:
        from .contribution import compiler_fingerprint

        ray = self.ray = import_ray(start_local=self.address is None)
        started = self._connect()
        try:
            self.compiler = compiler_fingerprint()
            return self._loop()
        finally:
            if started:
                ray.shutdown()

    def _connect(self) -> bool:
        ray = self.ray
        if ray.is_initialized():
            return False
        try:  # address None: $RAY_ADDRESS, else the cluster `ray start` last started here, else a new one
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"at {self.address}" if self.address else "on this machine"
            raise ExecutorError(f"cannot start or reach a Ray cluster {where}: {(str(e).splitlines() or [''])[0]}") \
                from None
        return True

    def _slots(self) -> int:
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        return max(1, min(cpus, self.workers) if self.workers else cpus)

    def _loop(self) -> list[Failed]:
        ray = self.ray
        from ray.exceptions import RayError, RayTaskError

        program = {"mlir": str(self.program.module), "weights": self.program.weights}
        shipped = [ray.put(program), ray.put(self.data), ray.put(self.recipe)]
        task = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(_ray_task)
        queue, pending, failed, done = deque(self.jobs), {}, [], 0
        try:
            while queue or pending:
                slots = self._slots()
                while queue and len(pending) < slots:
                    job = queue.popleft()
                    ref = task.options(name=f"pockengine-search:{job.name}").remote(shipped, job.scheme, job.seed)
                    pending[ref] = job
                self.bar.update(running=len(pending))
                finished, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in finished:
                    job = pending.pop(ref)
                    try:
                        doc = ray.get(ref)
                    except RayTaskError as e:  # the candidate itself raised: not retried
                        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
                        raise CandidateError(job, cause) from e
                    except RayError as e:  # the worker or its node died on every attempt
                        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                        failed.append(Failed(job.key, job.seed, self.retries + 1, f"{type(e).__name__}: {reason}"))
                        self.bar.update(failed=len(failed), running=len(pending))
                        continue
                    if doc.get("compiler") != self.compiler:
                        raise ExecutorError(f"a Ray worker (node {doc.get('node')}) runs another pockengine "
                                            f"(compiler-{doc.get('compiler')}, this one compiler-{self.compiler}): "
                                            "install the same version on every node (or the sources changed "
                                            "while the search ran)")
                    self.on_result(job, {k: v for k, v in doc.items() if k not in ("compiler", "node")})
                    done += 1
                    self.bar.update(done=done, running=len(pending), note=_note(job, doc))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return failed

