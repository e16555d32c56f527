"""``anomaly-fast stream --workers N``: one stream, N pipeline processes
sharing one alert store, behaving as one pipeline.

The parent reads the JSON lines, sends each event to worker
``crc32(str(entity_id)) % N`` (``"default"`` when the line has none: the
pipeline's own default entity), in chunks, and writes what the workers
return: alerts on stdout, malformed lines, drift events, progress and the
summary on stderr.  A worker validates each line of a chunk as one process
would (a malformed line is reported and skipped), then processes the valid
ones with one ``process_batch`` call: one store transaction per chunk, with
the same decisions as event by event.  Routing by entity keeps each entity's events in order in
one worker, which is all that suppression and idempotency need (they are
per entity and decided inside the store's write transaction); feedback
given through any pipeline of the store moves every worker's threshold from
its next event on (see ``AlertStore.shared``).  So the stored alerts are
those of one process reading the whole stream; only their order on stdout
across workers is not fixed.

The workers run on this machine (``multiprocessing``: forked where the
platform can, else spawned).  Pipelines
on other machines share a PostgreSQL store the same way: route the stream by
the same hash (:func:`worker_of`) and run ``anomaly-fast stream --store
postgresql://...`` on each shard.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import sys
import threading
import zlib
from collections.abc import Hashable
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import argparse

__all__ = ["run_workers", "worker_of"]

CHUNK = 256  # lines per message to a worker
IDLE_FLUSH = 0.05  # seconds without input after which partial chunks are sent (live streams)


def worker_of(entity_id: Hashable, n_workers: int) -> int:
    """The worker of an entity: ``crc32(str(entity_id)) % n_workers``
    (stable across runs, processes and machines, unlike ``hash``)."""
    return zlib.crc32(str(entity_id).encode()) % n_workers


def _route(line, n_workers):
    """The worker of one JSON line (worker 0 for a line that is not a JSON
    object: it reports it as malformed, as one process would)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return 0
    if not isinstance(obj, dict):
        return 0
    entity = obj.get("entity_id", "default")
    if isinstance(entity, (dict, list)):  # refused by the pipeline anyway: any worker says so
        entity = "default"
    return worker_of(entity, n_workers)


def _worker_main(k, args, model_version, inbox, outbox):
    """One pipeline process: (number, line) chunks in; ("out", k, [(kind,
    text)], stats, threshold) messages back; ("done", ...) at the end, or
    ("failed", k, message) when the store fails or the pipeline cannot start."""
    from .cli import _event, store_errors, stream_pipeline

    drift = []
    try:
        pipe, names = stream_pipeline(args, model_version, lambda events: drift.extend(events))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        outbox.put(("failed", k, f"worker {k} could not start: {exc}"))
        return
    errors = store_errors()
    malformed = 0
    try:
        while True:
            chunk = inbox.get()
            if chunk is None:
                break
            out, rows, metadata, numbers = [], [], [], []
            for number, line in chunk:  # validated line by line, as one process would
                try:
                    point, md = _event(line, names)
                    x = pipe._point(point)
                    pipe._event_time(md.get("timestamp"), 0.0)
                    pipe._ids(md)
                except (ValueError, TypeError, OverflowError) as exc:
                    malformed += 1
                    out.append(("err", f"anomaly-fast stream: line {number}: skipped: {exc}"))
                    continue
                rows.append(x)
                metadata.append(md)
                numbers.append(number)
            if rows:
                try:  # one store transaction per chunk (the pipeline decides row by row inside it)
                    alerts = pipe.process_batch(np.vstack(rows), metadata)
                except errors as exc:
                    out.append(
                        (
                            "err",
                            f"anomaly-fast stream: lines {numbers[0]}-{numbers[-1]}: stopped: "
                            f"alert store error ({_kept(exc)}): {exc}",
                        )
                    )
                    outbox.put(("out", k, out, dict(pipe.stats, malformed=malformed), pipe.threshold))
                    outbox.put(("failed", k, None))
                    return
                out += [("err", json.dumps({"drift_event": e.to_dict()})) for e in drift]
                drift.clear()
                out += [("alert", json.dumps(a.to_dict(), default=str)) for a in alerts]
            outbox.put(("out", k, out, dict(pipe.stats, malformed=malformed), pipe.threshold))
        outbox.put(("done", k, dict(pipe.stats, malformed=malformed), pipe.threshold))
    finally:
        pipe.close()


def _kept(exc):
    """What a failed chunk left in the store."""
    if getattr(exc, "committed", False) is None:  # StoreConnectionError: a COMMIT whose answer was lost
        return "whether these lines were kept is unknown: feed them again, their event keys make that safe"
    return "none of these lines was kept"


class _Reader(threading.Thread):
    """Reads stdin into a queue (None at its end), so that the parent can
    send partial chunks while the input is idle."""

    def __init__(self, stdin):
        super().__init__(daemon=True)
        self.stdin = stdin
        self.lines = queue.Queue(maxsize=64 * CHUNK)

    def run(self):
        try:
            for line in self.stdin:
                self.lines.put(line)
        finally:
            self.lines.put(None)


def run_workers(args: argparse.Namespace, stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    """Run ``anomaly-fast stream`` with ``args.workers`` pipeline processes;
    returns the exit status (0 done, 1 a worker or the store failed, 2 could
    not start)."""
    from .cli import _clock, _summary, model_version_arg
    from .orchestration import STAT_KEYS

    n = args.workers
    model_version = model_version_arg(args, "stream", stderr)
    # fork where there is one (no re-import: workers start in milliseconds); the parent has
    # opened no store and started no thread yet (the reader starts after the workers)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    outbox = context.Queue()
    inboxes = [context.Queue(maxsize=8) for _ in range(n)]
    procs = [
        context.Process(target=_worker_main, args=(k, args, model_version, inboxes[k], outbox), daemon=True)
        for k in range(n)
    ]
    for p in procs:
        p.start()
    stats = [dict.fromkeys(STAT_KEYS, 0) for _ in range(n)]
    threshold = args.threshold
    live = set(range(n))
    failed = []
    could_not_start = False

    def total():
        summed = {key: sum(s.get(key, 0) for s in stats) for key in (*STAT_KEYS, "malformed")}
        return {k: v for k, v in summed.items() if k != "malformed"}, summed["malformed"]

    def handle(message):
        nonlocal threshold, could_not_start
        kind, k = message[0], message[1]
        if kind == "out":
            for what, text in message[2]:
                if what == "alert":
                    stdout.write(text + "\n")
                else:
                    print(text, file=stderr)
            stdout.flush()
            stderr.flush()
            stats[k], threshold = message[3], message[4]
        elif kind == "done":
            stats[k], threshold = message[2], message[3]
            live.discard(k)
        elif kind == "failed":
            if message[2] is not None:
                print(f"anomaly-fast stream: error: {message[2]}", file=stderr, flush=True)
                could_not_start = True
            failed.append(k)
            live.discard(k)

    def drain(block_for=0.0):
        try:
            handle(outbox.get(timeout=block_for) if block_for else outbox.get_nowait())
            while True:
                handle(outbox.get_nowait())
        except queue.Empty:
            pass

    def dead():
        """Workers that died without a word (killed, crashed)."""
        return [k for k in live if not procs[k].is_alive() and procs[k].exitcode not in (0, None)]

    def _report_dead():
        gone = dead()
        for k in gone:
            print(
                f"anomaly-fast stream: error: worker {k} died (exit code {procs[k].exitcode})", file=stderr, flush=True
            )
            failed.append(k)
            live.discard(k)
        return bool(gone)

    def send(k, chunk):
        while not failed:
            try:
                inboxes[k].put(chunk, timeout=0.1)
                return
            except queue.Full:
                drain()
                if dead():
                    return

    reader = _Reader(stdin)
    reader.start()
    chunks = [[] for _ in range(n)]
    next_progress = _clock() + args.progress_every if args.progress_every > 0 else float("inf")
    number = 0
    while not failed:
        try:
            line = reader.lines.get(timeout=IDLE_FLUSH)
        except queue.Empty:
            line = ""  # idle: flush partial chunks
            for k in range(n):
                if chunks[k]:
                    send(k, chunks[k])
                    chunks[k] = []
            drain()
            if _report_dead():
                break
            continue
        if line is None:
            break
        number += 1
        if _clock() >= next_progress:
            drain()
            counts, malformed = total()
            _summary(counts, malformed, threshold, stderr, key="progress")
            next_progress = _clock() + args.progress_every
        if not line.strip():
            continue
        k = _route(line, n)
        chunks[k].append((number, line))
        if len(chunks[k]) >= CHUNK:
            send(k, chunks[k])
            chunks[k] = []
            drain()
            if _report_dead():
                break
    for k in range(n):
        if chunks[k] and not failed:
            send(k, chunks[k])
        try:
            inboxes[k].put(None, timeout=1.0)
        except queue.Full:
            pass
    while live:  # the others finish what they were sent (a failure cuts the stream short, not their work)
        drain(0.1)
        _report_dead()
    for p in procs:
        p.join(timeout=30)
    drain()
    counts, malformed = total()
    _summary(counts, malformed, threshold, stderr)
    if could_not_start:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover - run through anomaly-fast stream
    sys.exit("run it as: anomaly-fast stream --workers N ...")
