"""Crash-proof runner for fuzz cases: each case runs in a worker subprocess.

A *target* is a module-level function ``target(case) -> str`` named as
``"package.module:function"``.  It builds one mutated input from the integer
``case`` (deterministically: the case number seeds it), exercises the code under
test and returns a short outcome label (``"ok"``, ``"ValueError"``, ...).  It
must raise nothing but the errors the code under test is allowed to raise, and
catch those itself; anything else it raises is reported as ``"error: ..."``.

The runner starts ``n_workers`` worker processes, each of which imports the
target once and then takes many cases (an import costs about a second, so one
process per case would be far too slow).  A worker that dies (segfault, abort,
``os._exit``) or takes longer than ``time_limit`` seconds on one case is
killed and restarted, and that case is recorded as ``"crash: <signal/exit>"``
or ``"hang"``.  The parent process never runs a case, so a crash fails the
test that called :func:`run_cases` instead of killing the test run.

Used by ``tests/`` (a few hundred cases) and ``benchmarks/fuzz_state.py``
(>= 10,000 cases per target).
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter

__all__ = ["FuzzReport", "run_cases"]


class FuzzReport:
    """Outcomes of a fuzz run: ``counts`` (label -> number of cases) and
    ``failures`` (list of ``(case, label)`` for crashes, hangs and errors)."""

    def __init__(self):
        self.counts = Counter()
        self.failures = []

    def add(self, case, label):
        self.counts[label] += 1
        if label == "hang" or label.startswith(("crash", "error")):
            self.failures.append((case, label))

    @property
    def n_cases(self):
        return sum(self.counts.values())

    def __repr__(self):
        return f"FuzzReport({dict(self.counts)}, failures={self.failures[:10]})"


def _describe_exit(code):
    if code is None:
        return "crash: unknown"
    if code < 0:
        try:
            return f"crash: {signal.Signals(-code).name}"
        except ValueError:
            return f"crash: signal {-code}"
    return f"crash: exit {code}"


class _Worker:
    def __init__(self, target, env):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "anomaly_fast._fuzz", target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            bufsize=1,
        )
        self.case = None
        self.started = None
        self.ready = False  # set once the worker has imported the target

    def send(self, case):
        self.case = case
        self.started = time.monotonic()
        self.proc.stdin.write(f"{case}\n")
        self.proc.stdin.flush()

    def kill(self):
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except (BrokenPipeError, OSError):
                pass


def run_cases(target, cases, n_workers=2, time_limit=10.0, startup_limit=120.0, env=None):
    """Run ``target`` on every case number in ``cases`` in worker subprocesses.

    Returns a :class:`FuzzReport`.  ``time_limit`` bounds one case (a hang is
    killed and reported), ``startup_limit`` bounds a worker's import.
    """
    cases = list(cases)
    report = FuzzReport()
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONFAULTHANDLER", "0")
    pending = list(reversed(cases))
    selector = selectors.DefaultSelector()
    workers = []

    def start():
        worker = _Worker(target, env)
        worker.started = time.monotonic()
        selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        workers.append(worker)
        return worker

    def retire(worker):
        selector.unregister(worker.proc.stdout)
        worker.kill()
        workers.remove(worker)

    def feed(worker):
        if pending:
            worker.send(pending.pop())
        else:
            worker.case = None

    for _ in range(max(1, min(n_workers, len(cases)))):
        start()
    try:
        while workers:
            now = time.monotonic()
            for worker in list(workers):  # time limits
                limit = time_limit if worker.ready else startup_limit
                if worker.started is not None and now - worker.started > limit:
                    case = worker.case
                    retire(worker)
                    if not worker.ready:
                        raise RuntimeError(f"fuzz worker for {target} did not start in {startup_limit} s")
                    report.add(case, "hang")
                    if pending:
                        start()
            events = selector.select(timeout=0.2)
            for key, _ in events:
                worker = key.data
                line = worker.proc.stdout.readline()
                if not line:  # the worker died
                    case = worker.case
                    code = worker.proc.wait()
                    retire(worker)
                    if not worker.ready:
                        raise RuntimeError(f"fuzz worker for {target} failed to start ({_describe_exit(code)})")
                    report.add(case, _describe_exit(code))
                    if pending:
                        start()
                    continue
                message = json.loads(line)
                if message.get("ready"):
                    worker.ready = True
                else:
                    report.add(message["case"], message["outcome"])
                feed(worker)
                if worker.case is None:
                    retire(worker)
    finally:
        for worker in list(workers):
            retire(worker)
        selector.close()
    return report


def _selftest(case):
    """A target for testing the runner itself: case % 5 picks an outcome."""
    kind = case % 5
    if kind == 0:
        return "ok"
    if kind == 1:
        raise ValueError("bad")
    if kind == 2:
        os.abort()
    if kind == 3:
        time.sleep(3600)
    os._exit(3)


def _resolve(target):
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(target):
    func = _resolve(target)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        case = int(line)
        try:
            outcome = str(func(case))
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the parent decides
            outcome = f"error: {type(exc).__name__}: {exc}"[:300]
        out.write(json.dumps({"case": case, "outcome": outcome}) + "\n")
        out.flush()


if __name__ == "__main__":
    _worker_main(sys.argv[1])
