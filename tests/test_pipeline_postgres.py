"""Many pipeline processes on one PostgreSQL store behave as one pipeline
(issue 14): the stream sharded by entity hash over 4 processes stores what
one process stores; a worker killed with SIGKILL mid-stream and its shard
replayed changes nothing; feedback given to one worker moves every worker's
threshold (SQLite too: the rule is the store's ``shared`` flag).  Every
workload runs in subprocesses, so a crash fails the test instead of killing
the run.  Needs a server: ``eval "$(.ci/postgres start DIR)"``."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import _pipeline_stress as stress  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))


def _worker(spec, shard, n, mode):
    return subprocess.Popen(
        [sys.executable, str(TESTS / "_pipeline_stress.py"), spec, str(shard), str(n), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def spec(new_postgres_store):
    """A fresh store schema, as the workers' command-line spec, and the store."""
    store = new_postgres_store()
    return f"{store.url}?schema={store.schema}", store


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    return stress.expected_alerts(tmp_path_factory.mktemp("one"))


def test_one_postgres_process_stores_what_one_sqlite_process_stores(new_postgres_store, expected):
    assert stress.canonical(stress.one_process_alerts(new_postgres_store())) == stress.canonical(expected)


def test_four_processes_sharded_by_entity_hash_store_what_one_process_stores(spec, expected):
    url, store = spec
    results = [_finish(p) for p in [_worker(url, k, 4, "entity") for k in range(4)]]
    assert stress.canonical(store.alerts()) == stress.canonical(expected)
    returned = [i for r in results for i in r["ids"]]
    assert sorted(returned) == sorted(a["alert_id"] for a in expected)  # each alert returned once, by its worker
    assert all(r["stats"]["duplicates"] == 0 for r in results)


def test_a_worker_killed_mid_stream_then_its_shard_replayed_stores_exactly_the_alerts(spec, expected):
    url, store = spec
    victim_shard = max(range(4), key=lambda k: sum(stress.shard_of(a["entity_id"], 4) == k for a in expected))
    victim = _worker(url, victim_shard, 4, "entity-live")
    others = [_worker(url, k, 4, "entity") for k in range(4) if k != victim_shard]
    emitted = []
    for line in victim.stdout:  # blocks on the victim's output: no sleeps
        emitted.append(line.strip())
        if len(emitted) == 5:
            break
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    victim.stdout.close()
    victim.stderr.close()
    shard_alerts = [a for a in expected if stress.shard_of(a["entity_id"], 4) == victim_shard]
    assert len(shard_alerts) > len(emitted)
    results = [_finish(p) for p in others]
    stored_before = {a["alert_id"] for a in store.alerts()}
    assert set(emitted) <= stored_before  # what it returned was committed
    replayed = _finish(_worker(url, victim_shard, 4, "entity"))  # the shard from its start
    assert stress.canonical(store.alerts()) == stress.canonical(expected)
    # the replay re-returned nothing the killed worker had committed: those events were duplicates
    assert not set(replayed["ids"]) & stored_before
    assert replayed["stats"]["duplicates"] >= len(emitted)
    assert sum(len(r["ids"]) for r in results) + len(stored_before & {a["alert_id"] for a in shard_alerts}) + len(
        replayed["ids"]
    ) == len(expected)


class _Server:
    """A pipeline worker process taking commands (see ``serve_main``)."""

    def __init__(self, spec):
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "_pipeline_stress.py"), "serve", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.threshold = self._answer()["threshold"]

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker died: {self.proc.stderr.read()[-2000:]}")
        return json.loads(line)

    def send(self, *command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self._answer()
        self.threshold = answer["threshold"]
        return answer["alert"]

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr.read()[-2000:]
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_feedback_to_one_worker_moves_every_workers_threshold(backend, request, tmp_path):
    if backend == "postgres":
        store = request.getfixturevalue("new_postgres_store")()
        spec = f"{store.url}?schema={store.schema}"
    else:
        spec = str(tmp_path / "shared.db")
    workers = [_Server(spec) for _ in range(4)]
    try:
        assert [w.threshold for w in workers] == [0.7] * 4
        near = [2.5, 2.5]  # scores 0.711: above 0.7, below 0.72
        far = [40.0, -40.0]
        ids = [workers[0].send("process", far, {"entity_id": f"e{i}", "timestamp": 100.0 + i}) for i in range(3)]
        assert None not in ids
        for alert_id in ids:  # three false positives: precision 0 < 0.9 -> threshold + 0.02
            workers[0].send("feedback", alert_id, False)
        assert workers[0].threshold == pytest.approx(0.72)
        # every other worker judges its next event with the new threshold
        for k, w in enumerate(workers[1:], start=1):
            assert w.send("process", near, {"entity_id": f"n{k}", "timestamp": 200.0 + k}) is None
            assert w.threshold == pytest.approx(0.72)
        # an event of before the change (event time) meets the old threshold, as a replay would judge it
        assert workers[2].send("process", near, {"entity_id": "late", "timestamp": 50.0}) is not None
    finally:
        for w in workers:
            w.close()


def test_stream_workers_cli_stores_what_one_process_stores(spec, tmp_path, rng):
    """``anomaly-fast stream --workers 3`` on Postgres: the alerts (and the
    summary's counts) of ``--workers 1`` on SQLite; malformed lines reported
    as by one process."""
    from anomaly_fast.pipeline.cli import stream_main

    url, store = spec
    lines = stress.cli_model_and_events(tmp_path, rng, 1000, 1500)
    lines[10:10] = ["not json", "[1, 2]", json.dumps({"entity_id": "h1", "features": {"a": 1.0}})]
    text = "\n".join(lines) + "\n"

    def run(store_arg, workers):
        out, err = io.StringIO(), io.StringIO()
        argv = [
            "--model",
            str(tmp_path / "models"),
            "--store",
            store_arg,
            "--workers",
            str(workers),
            "--suppression-window",
            "20",
            "--progress-every",
            "0",
        ]
        code = stream_main(argv, stdin=io.StringIO(text), stdout=out, stderr=err)
        skipped = sorted(line for line in err.getvalue().splitlines() if "skipped" in line)
        summary = json.loads(err.getvalue().splitlines()[-1])["summary"]
        return code, sorted(out.getvalue().splitlines()), skipped, summary

    code1, alerts1, skipped1, summary1 = run(str(tmp_path / "one.db"), 1)
    code3, alerts3, skipped3, summary3 = run(url, 3)
    assert code1 == code3 == 0
    assert len(alerts1) > 20 and alerts3 == alerts1
    assert skipped3 == skipped1 and len(skipped1) == 3
    assert summary3 == summary1
    assert stress.canonical(store.alerts()) == stress.canonical([json.loads(a) for a in alerts1])
