import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomaly_fast.cli import COMMANDS
from anomaly_fast.cli import main as cli_main
from anomaly_fast.pipeline.alert_store import SQLiteAlertStore
from anomaly_fast.pipeline.cli import fit_main, score_main, stream_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(tmp_path, rng):
    df = pd.DataFrame(rng.normal(size=(1000, 3)), columns=["a", "b", "c"])
    df["entity_id"] = "train"
    df.to_csv(tmp_path / "train.csv", index=False)
    assert fit_main([str(tmp_path / "train.csv"), "-o", str(tmp_path / "models"), "--n-estimators", "50"]) == 0
    return tmp_path / "models"


def events(rng, n, n_entities=4, malformed=()):
    lines = []
    for i in range(n):
        x = rng.normal(size=3)
        if rng.rand() < 0.04:
            x = x * rng.choice([2.0, 4.0, 8.0])
        lines.append(
            json.dumps(
                {"entity_id": f"h{i % n_entities}", "timestamp": 1.7e9 + i, "features": dict(zip("abc", x.tolist()))}
            )
        )
    for at, bad in malformed:
        lines.insert(at, bad)
    return "".join(line + "\n" for line in lines)


def run_stream(argv, text):
    out, err = io.StringIO(), io.StringIO()
    code = stream_main(argv, stdin=io.StringIO(text), stdout=out, stderr=err)
    alerts = [json.loads(line) for line in out.getvalue().splitlines()]
    summary = json.loads(err.getvalue().splitlines()[-1])["summary"]
    return code, alerts, summary, err.getvalue()


def test_commands_registered():
    for name in ("fit", "score", "stream", "bench-pipeline"):
        assert name in COMMANDS


def test_fit_and_score(registry, tmp_path, capsys):
    capsys.readouterr()
    code = cli_main(["score", str(registry), str(tmp_path / "train.csv"), "-o", str(tmp_path / "scores.csv")])
    assert code == 0
    scores = pd.read_csv(tmp_path / "scores.csv", float_precision="round_trip")  # exact on pandas 2.0 too
    assert list(scores.columns) == ["entity_id", "anomaly_score", "is_outlier"]
    assert len(scores) == 1000 and scores["anomaly_score"].between(0, 1).all()
    from anomaly_fast.pipeline.registry import ModelRegistry

    reg = ModelRegistry(registry)
    meta = reg.metadata()
    assert meta["feature_names"] == ["a", "b", "c"] and meta["params"]["n_estimators"] == 50
    X = pd.read_csv(tmp_path / "train.csv")[["a", "b", "c"]]
    np.testing.assert_array_equal(scores["anomaly_score"].to_numpy(), reg.load().anomaly_score(X))


def test_fit_parquet(tmp_path, rng):
    pytest.importorskip("pyarrow")
    pd.DataFrame(rng.normal(size=(200, 2)), columns=["u", "v"]).to_parquet(tmp_path / "t.parquet")
    assert (
        fit_main([str(tmp_path / "t.parquet"), "-o", str(tmp_path / "m"), "--model", "eif", "--n-estimators", "10"])
        == 0
    )


def test_fit_errors(tmp_path, capsys):
    pd.DataFrame({"a": [1.0, None, 3.0], "s": ["x", "y", "z"]}).to_csv(tmp_path / "bad.csv", index=False)
    assert fit_main([str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m")]) == 2
    assert "non-numeric feature columns ['s']" in capsys.readouterr().err
    assert fit_main([str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m"), "--columns", "a"]) == 2
    assert "--dropna" in capsys.readouterr().err
    assert fit_main([str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m"), "--columns", "a", "--dropna"]) == 0
    assert fit_main([str(tmp_path / "missing.csv"), "-o", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert score_main([str(tmp_path / "nothing"), str(tmp_path / "bad.csv")]) == 2


def test_stream_malformed_lines_are_counted_and_skipped(registry, rng):
    bad = [
        (3, "not json"),
        (5, "[1, 2, 3]"),
        (7, json.dumps({"entity_id": "x", "features": {"a": 1.0}})),  # missing b, c
        (9, json.dumps({"entity_id": "x", "features": {"a": "1", "b": 0, "c": 0}})),
        (11, json.dumps({"entity_id": "x", "timestamp": "soon", "features": [0, 0, 0]})),
        (13, json.dumps({"entity_id": "x", "features": [0, 0]})),
        (15, json.dumps({"entity_id": "x", "features": "abc"})),
        (17, json.dumps({"entity_id": "x", "a": 0, "b": 0, "c": 0, "zz": 1})),
        (19, ""),  # blank lines are ignored, not malformed
    ]
    text = events(rng, 400, malformed=bad)
    code, alerts, summary, err = run_stream(["--model", str(registry), "--threshold", "0.6"], text)
    assert code == 0
    assert summary["malformed"] == 8
    assert summary["events"] == 400
    assert "line 4: skipped: invalid JSON" in err
    assert "line 8: skipped: missing features ['b', 'c']" in err
    assert "line 18: skipped: unknown feature 'zz'" in err
    assert len(alerts) == summary["alerts"] > 0
    # top-level feature columns and null (missing) values are accepted; the
    # model (an IsolationForest) scores missing values, so the event is scored
    line = json.dumps({"entity_id": "y", "timestamp": 5, "a": 9.0, "b": None, "c": 9.0})
    _, _, summary, _ = run_stream(["--model", str(registry)], line + "\n")
    assert summary["events"] == 1 and summary["unscorable"] == 0 and summary["malformed"] == 0


def test_stream_is_idempotent_on_redelivery(registry, rng, tmp_path):
    text = events(rng, 500)
    argv = [
        "--model",
        str(registry),
        "--store",
        str(tmp_path / "a.db"),
        "--threshold",
        "0.6",
        "--suppression-window",
        "20",
    ]
    _, first, _, _ = run_stream(argv, text)
    _, second, summary, _ = run_stream(argv, text)
    assert len(first) > 5 and second == []
    assert summary["duplicates"] + summary["suppressed"] >= len(first)


def _stream_cmd(registry, store):
    return [
        sys.executable,
        "-m",
        "anomaly_fast.cli",
        "stream",
        "--model",
        str(registry),
        "--store",
        str(store),
        "--threshold",
        "0.6",
        "--suppression-window",
        "20",
    ]


def test_sigkill_mid_stream_then_redelivery_gives_exactly_the_alerts(registry, rng, tmp_path):
    text = events(rng, 3000, n_entities=5, malformed=[(100, "garbage"), (2000, "{")])
    lines = text.splitlines(keepends=True)
    # reference: one uninterrupted run
    code, reference, _, _ = run_stream(
        [
            "--model",
            str(registry),
            "--store",
            str(tmp_path / "ref.db"),
            "--threshold",
            "0.6",
            "--suppression-window",
            "20",
        ],
        text,
    )
    assert code == 0 and len(reference) > 40
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    # crash run: feed the first 60% of the input, kill -9 once half the alerts were emitted
    store = tmp_path / "crash.db"
    proc = subprocess.Popen(
        _stream_cmd(registry, store),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    def feed():
        try:
            proc.stdin.write("".join(lines[: len(lines) * 6 // 10]))
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    emitted = []
    target = len(reference) // 2
    for line in proc.stdout:  # blocks on the child's output, no sleeps
        emitted.append(json.loads(line))
        if len(emitted) == target:
            break
    assert len(emitted) == target
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    emitted += [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]
    proc.stdout.close()
    writer.join(timeout=60)
    crashed = SQLiteAlertStore(store)
    n_before = crashed.count_alerts()
    crashed.close()
    assert target <= n_before < len(reference)

    # restart on the same store; the upstream redelivers everything
    rerun = subprocess.run(
        _stream_cmd(registry, store), input=text, capture_output=True, text=True, env=env, timeout=300
    )
    assert rerun.returncode == 0
    emitted += [json.loads(line) for line in rerun.stdout.splitlines()]
    summary = json.loads(rerun.stderr.strip().splitlines()[-1])["summary"]
    assert summary["malformed"] == 2 and summary["duplicates"] == n_before

    final = SQLiteAlertStore(store)
    stored = final.alerts()
    final.close()
    assert stored == reference  # exactly the uninterrupted run's alerts, in order
    ids = [a["alert_id"] for a in emitted]
    assert len(ids) == len(set(ids))  # nothing emitted twice
    assert set(ids) <= {a["alert_id"] for a in reference}
    # at most the alert committed just before the kill may miss stdout
    assert len(ids) >= len(reference) - 1


def test_stream_keeps_going_past_numbers_too_large_for_a_float(registry, rng):
    huge = "1" + "0" * 400
    bad = [
        (2, '{"entity_id": "x", "timestamp": 1, "features": {"a": ' + huge + ', "b": 0, "c": 0}}'),
        (4, '{"entity_id": "x", "timestamp": 1, "features": [' + huge + ", 0, 0]}"),
        (6, '{"entity_id": "x", "timestamp": ' + huge + ', "features": [0, 0, 0]}'),
        (8, '{"entity_id": "x", "timestamp": 1, "features": [' + "9" * 5000 + ", 0, 0]}"),  # beyond int digits
    ]
    code, alerts, summary, err = run_stream(["--model", str(registry)], events(rng, 50, malformed=bad))
    assert code == 0 and summary["events"] == 50 and summary["malformed"] == 4
    assert "line 3: skipped: feature 'a' is too large for a float" in err
    assert "line 7: skipped: timestamp" in err and "too large" in err
    assert "Traceback" not in err


def test_stream_on_a_corrupted_store_exits_with_one_line_and_a_summary(registry, tmp_path):
    (tmp_path / "bad.db").write_bytes(b"garbage" * 1000)
    code, alerts, summary, err = run_stream(["--model", str(registry), "--store", str(tmp_path / "bad.db")], "{}\n")
    assert code == 2 and alerts == [] and summary["events"] == 0
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("anomaly-fast stream: error: cannot open alert store")
    assert "Traceback" not in err


def test_stream_threshold_defaults_to_the_stores(registry, rng, tmp_path):
    store = ["--store", str(tmp_path / "a.db")]
    _, _, summary, _ = run_stream(["--model", str(registry), "--threshold", "0.65", *store], events(rng, 10))
    assert summary["threshold"] == 0.65
    _, _, summary, _ = run_stream(["--model", str(registry), *store], events(rng, 10))
    assert summary["threshold"] == 0.65  # kept, not reset to 0.7
    history = SQLiteAlertStore(tmp_path / "a.db").threshold_history()
    assert [h["new"] for h in history] == [0.65]


def test_stream_millisecond_timestamps(registry):
    lines = [
        json.dumps({"entity_id": "h", "timestamp": 1_700_000_000_000 + 1000 * i, "features": [9.0, 9.0, 9.0]})
        for i in range(5)
    ]
    _, alerts, summary, _ = run_stream(["--model", str(registry), "--timestamp-unit", "ms"], "\n".join(lines) + "\n")
    assert [a["timestamp"] for a in alerts] == [1_700_000_000.0] and summary["suppressed"] == 4


class _SlowLines:
    """stdin whose lines arrive with a (monkeypatched) clock moving 1 s per line."""

    def __init__(self, text, clock):
        self.lines, self.clock = text.splitlines(keepends=True), clock

    def __iter__(self):
        for line in self.lines:
            self.clock[0] += 1.0
            yield line


def test_stream_reports_its_counters_on_stderr_every_progress_interval(registry, rng, monkeypatch):
    import anomaly_fast.pipeline.cli as cli_module

    clock = [0.0]
    monkeypatch.setattr(cli_module, "_clock", lambda: clock[0])
    err = io.StringIO()
    code = stream_main(
        ["--model", str(registry), "--progress-every", "10"],
        stdin=_SlowLines(events(rng, 35), clock),
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 0
    progress = [json.loads(line)["progress"] for line in err.getvalue().splitlines() if line.startswith('{"progress"')]
    assert [p["events"] for p in progress] == [9, 19, 29]  # one line per 10 s, counting the events before it
    assert json.loads(err.getvalue().splitlines()[-1])["summary"]["events"] == 35
    err = io.StringIO()
    stream_main(
        ["--model", str(registry), "--progress-every", "0"],
        stdin=_SlowLines(events(rng, 35), clock),
        stdout=io.StringIO(),
        stderr=err,
    )
    assert '"progress"' not in err.getvalue()


def test_stream_workers_need_a_shared_store_and_report_a_store_that_cannot_open(registry, rng, tmp_path):
    with pytest.raises(SystemExit):  # in-memory stores cannot be shared by processes
        stream_main(["--model", str(registry), "--workers", "2"], stdin=io.StringIO(""))
    code, alerts, summary, err = run_stream(
        ["--model", str(registry), "--workers", "2", "--store", str(tmp_path / "no" / "such" / "a.db")], events(rng, 20)
    )
    assert code == 2 and alerts == [] and summary["events"] == 0
    assert "anomaly-fast stream: error: worker" in err and "could not start" in err


def test_stream_workers_on_sqlite_store_what_one_process_stores(registry, rng, tmp_path):
    text = events(rng, 400, n_entities=7, malformed=[(3, "{"), (50, '{"entity_id": "h1", "features": {"a": "x"}}')])
    one = run_stream(["--model", str(registry), "--store", str(tmp_path / "one.db"), "--threshold", "0.6"], text)
    two = run_stream(
        ["--model", str(registry), "--store", str(tmp_path / "two.db"), "--threshold", "0.6", "--workers", "2"], text
    )
    assert one[0] == two[0] == 0 and len(one[1]) > 5
    key = lambda a: a["alert_id"]  # noqa: E731
    assert sorted(two[1], key=key) == sorted(one[1], key=key)
    assert two[2] == one[2] and one[2]["malformed"] == 2
