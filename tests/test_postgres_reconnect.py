"""The PostgreSQL alert store across broken connections (issue 14): a
backend terminated at random moments mid-stream, inside a decision
transaction, or around its COMMIT (the answer lost after the server
committed, or before), stores and returns the alerts of an uninterrupted
run, each once; a server that stays away raises a clear error after
``reconnect_timeout`` and keeps nothing of the call, which can be fed
again; data errors and lock timeouts are not retried.  The connections are
broken for real, with ``pg_terminate_backend`` from a second connection.
Needs a server: ``eval "$(.ci/postgres start DIR)"``."""

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import _pipeline_stress as stress  # noqa: E402

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install '.[postgres]')")

from anomaly_fast.pipeline.alert_store import StoreBusyError, StoreConnectionError  # noqa: E402


@pytest.fixture
def admin(postgres_url):
    """A second connection, to terminate the store's backend."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def _terminate(admin, store):
    """Terminate the store's server process and wait until it is gone (so
    nothing the store sends afterwards reaches it)."""
    pid = store._conn.info.backend_pid
    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
        time.sleep(0.005)


@pytest.fixture(scope="module")
def stream():
    return stress.make_stream(7, 1200, 16)


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    return stress.expected_alerts(tmp_path_factory.mktemp("one"))


def _batch(stream, rows):
    X, entities, ts = stream
    return X[rows], {"entity_id": [entities[r] for r in rows], "timestamp": ts[rows]}


def test_backends_terminated_at_random_mid_stream_store_and_return_each_alert_once(
    new_postgres_store, admin, stream, expected
):
    store = new_postgres_store()
    pipe = stress.pipeline(store)
    stop, kills = threading.Event(), []

    def killer():
        rng = random.Random(1)
        while len(kills) < 25 and not stop.wait(rng.uniform(0.005, 0.04)):  # 25 breaks, then the rest runs
            pid = store._conn.info.backend_pid  # 0 while the store reconnects
            if pid and admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                kills.append(pid)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        returned = stress.feed(pipe, *stream, list(range(len(stream[0]))), random.Random(0))
    finally:
        stop.set()
        thread.join()
    assert len(kills) >= 3, "the stream ended before the connection was broken: nothing was tested"
    assert store.reconnects >= len(kills) - 1  # (a kill between two calls may meet the next call's reconnect)
    assert stress.canonical(store.alerts()) == stress.canonical(expected)
    assert sorted(a.alert_id for a in returned) == sorted(a["alert_id"] for a in expected)  # none lost or doubled
    assert pipe.stats["duplicates"] == 0
    pipe.close()


@pytest.mark.parametrize(
    "where",
    [
        "inside the decision transaction",
        "before the COMMIT reached the server",
        "after the server committed, before its answer",
    ],
)
def test_a_broken_write_transaction_decides_as_an_uninterrupted_one(new_postgres_store, admin, stream, where):
    head, batch = list(range(300)), list(range(300, 420))
    reference = stress.pipeline(new_postgres_store(), monitor=False)
    reference.process_batch(*_batch(stream, head))
    want = reference.process_batch(*_batch(stream, batch))
    assert len(want) >= 3

    store = new_postgres_store()
    pipe = stress.pipeline(store, monitor=False)
    pipe.process_batch(*_batch(stream, head))
    broken = []
    if where == "inside the decision transaction":
        latest_alert = store.latest_alert

        def hooked(*args):
            if not broken and store._depth:
                broken.append(1)
                _terminate(admin, store)
            return latest_alert(*args)

        store.latest_alert = hooked
    else:
        commit = store._commit

        def hooked():
            if not broken:
                broken.append(1)
                if where.startswith("after"):
                    store._conn.execute("COMMIT")  # committed; then the answer is lost with the connection
                _terminate(admin, store)
            commit()

        store._commit = hooked
    got = pipe.process_batch(*_batch(stream, batch))
    assert broken and store.reconnects == 1
    assert [a.to_dict() for a in got] == [a.to_dict() for a in want]  # returned once, nothing lost
    assert stress.canonical(store.alerts()) == stress.canonical(reference.alerts())
    assert pipe.stats == reference.stats  # no duplicates counted for the committed attempt
    pipe.close()
    reference.close()


def test_a_server_that_stays_away_raises_a_clear_error_and_the_call_can_be_fed_again(new_postgres_store, admin, stream):
    head, batch = list(range(300)), list(range(300, 420))
    reference = stress.pipeline(new_postgres_store(), monitor=False)
    reference.process_batch(*_batch(stream, head))
    want = reference.process_batch(*_batch(stream, batch))

    store = new_postgres_store(reconnect_timeout=0.3)
    pipe = stress.pipeline(store, monitor=False)
    pipe.process_batch(*_batch(stream, head))
    stored, stats = store.count_alerts(), dict(pipe.stats)
    url = store.url
    store.url = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens there: the server "stays down"
    _terminate(admin, store)
    with pytest.raises(StoreConnectionError, match=r"could not restore it within reconnect_timeout=0\.3 s") as error:
        pipe.process_batch(*_batch(stream, batch))
    assert error.value.committed is False
    assert pipe.stats == stats  # the pipeline kept nothing of the failed call
    store.url = url  # the server is back
    assert store.count_alerts() == stored
    got = pipe.process_batch(*_batch(stream, batch))
    assert [a.to_dict() for a in got] == [a.to_dict() for a in want]
    assert stress.canonical(store.alerts()) == stress.canonical(reference.alerts())
    pipe.close()
    reference.close()


def test_a_lost_commit_answer_the_server_cannot_be_asked_about_is_reported_as_unknown(
    new_postgres_store, admin, stream
):
    head, batch = list(range(300)), list(range(300, 420))
    reference = stress.pipeline(new_postgres_store(), monitor=False)
    reference.process_batch(*_batch(stream, head))
    reference.process_batch(*_batch(stream, batch))
    store = new_postgres_store(reconnect_timeout=0.3)
    pipe = stress.pipeline(store, monitor=False)
    pipe.process_batch(*_batch(stream, head))
    url, commit = store.url, store._commit

    def hooked():
        store._conn.execute("COMMIT")  # committed; the answer is lost and the server stays away
        store.url = "postgresql://postgres@127.0.0.1:1/postgres"
        _terminate(admin, store)
        commit()

    store._commit = hooked
    with pytest.raises(StoreConnectionError, match="whether the last transaction committed is unknown") as error:
        pipe.process_batch(*_batch(stream, batch))
    assert error.value.committed is None
    store._commit, store.url = commit, url
    pipe.process_batch(*_batch(stream, batch))  # fed again: it had committed, so nothing is stored twice
    assert stress.canonical(store.alerts()) == stress.canonical(reference.alerts())
    pipe.close()
    reference.close()


def test_data_errors_and_lock_timeouts_are_not_retried(new_postgres_store, admin, stream):
    store = new_postgres_store(busy_timeout=0.2)
    pipe = stress.pipeline(store, monitor=False)
    alerts = pipe.process_batch(*_batch(stream, list(range(100))))
    with pytest.raises(ValueError, match="duplicate alert"):
        store.add_alerts([alerts[0]])
    admin.execute("BEGIN")
    admin.execute("SELECT pg_advisory_xact_lock(%s)", (store._lock_key,))
    try:
        with pytest.raises(StoreBusyError):
            store.add_feedback(alerts[0].alert_id, True, 1.0)
    finally:
        admin.execute("ROLLBACK")
    assert store.reconnects == 0
    store.close()
    with pytest.raises(psycopg.OperationalError):  # a closed store stays closed
        store.count_alerts()
    assert store.reconnects == 0


class _Restarting:
    """stdin of ``anomaly-fast stream``: ``lines``, the server restarted
    (stopped, then started) when the reader reaches each line of ``at``."""

    def __init__(self, lines, at, data_dir, admin, n_connections):
        self.lines, self.at, self.data_dir, self.restarts = lines, set(at), data_dir, 0
        self.admin, self.n_connections = admin, n_connections

    def __iter__(self):
        # the first restart once every worker is connected (a worker that cannot make its first connection
        # fails at once: a wrong URL is reported, not retried)
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'anomaly_fast'"
        while self.admin.execute(sql).fetchone()[0] < self.n_connections:
            time.sleep(0.01)
        for i, line in enumerate(self.lines):
            if i in self.at:
                subprocess.run(["bash", str(TESTS.parent / ".ci" / "postgres"), "restart", self.data_dir], check=True)
                self.restarts += 1
            yield line


def test_stream_workers_across_server_restarts_store_what_one_process_stores(new_postgres_store, tmp_path, rng):
    """``anomaly-fast stream --workers 2`` on PostgreSQL, the server
    restarted twice mid-stream: the alerts and the summary of an
    uninterrupted ``--workers 1`` run on SQLite."""
    from anomaly_fast.pipeline.cli import stream_main

    data_dir = os.environ.get("ANOMALY_FAST_TEST_POSTGRES_DIR")
    if not data_dir:
        pytest.skip("the server's folder is unknown: ANOMALY_FAST_TEST_POSTGRES_DIR (.ci/postgres start sets it)")
    store = new_postgres_store()
    lines = [line + "\n" for line in stress.cli_model_and_events(tmp_path, rng, 500, 900)]

    def run(store_arg, workers, stdin):
        out, err = io.StringIO(), io.StringIO()
        argv = ["--model", str(tmp_path / "models"), "--store", store_arg, "--workers", str(workers)]
        argv += ["--suppression-window", "20", "--progress-every", "0"]
        code = stream_main(argv, stdin=stdin, stdout=out, stderr=err)
        assert code == 0, err.getvalue()[-2000:]
        return sorted(out.getvalue().splitlines()), json.loads(err.getvalue().splitlines()[-1])["summary"]

    alerts1, summary1 = run(str(tmp_path / "one.db"), 1, io.StringIO("".join(lines)))
    with psycopg.connect(store.url, autocommit=True) as admin:
        restarting = _Restarting(lines, [300, 600], data_dir, admin, 3)  # this test's store and 2 workers
        alerts2, summary2 = run(f"{store.url}?schema={store.schema}", 2, restarting)
    assert restarting.restarts == 2
    assert len(alerts1) > 20 and alerts2 == alerts1  # none lost, none doubled
    assert summary2 == summary1
    assert stress.canonical(store.alerts()) == stress.canonical([json.loads(a) for a in alerts1])
