"""Smoke tests of the ``evaluate`` and ``ensemble-latency`` commands on tiny data
(never on /work/shared/data)."""

import json

import numpy as np
import pytest

from anomaly_fast import cli
from anomaly_fast.bench import evaluate


def _npz(path, seed, n=400, d=3):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(n, d)), rng.uniform(-6, 6, size=(n // 20, d))])
    y = np.r_[np.zeros(n), np.ones(n // 20)]
    np.savez(path, X=X, y=y)


def test_evaluate_on_an_adbench_style_folder(tmp_path, capsys):
    _npz(tmp_path / "7_tiny.npz", 0)
    _npz(tmp_path / "12_small.npz", 1, n=600)
    out_json = tmp_path / "r.json"
    code = evaluate.main(
        [
            "--data-dir",
            str(tmp_path),
            "--max-rows",
            "500",
            "--n-estimators",
            "20",
            "--plot",
            "",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "subsampled 500 of 630 rows" in text
    assert text.index("7_tiny") < text.index("12_small")  # ADBench numbering order
    results = json.loads(out_json.read_text())
    assert set(results) == {"7_tiny", "12_small"}
    for entry in results.values():
        assert set(entry["results"]) == set(evaluate.DETECTORS)
        for metrics in entry["results"].values():
            assert 0.0 <= metrics["precision_at_k"] <= 1.0
            # k = test anomalies: 40% of 20 (all 420 rows kept) or of 24 (500 of 630 rows)
            assert metrics["k"] == {420: 8, 500: 10}[entry["info"]["rows"]]
            assert metrics["auc_roc"] > 0.8  # uniform scatter around a Gaussian is easy


def test_evaluate_synthetic_fallback_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "eval.png"
    code = cli.main(
        ["evaluate", "--datasets", "synthetic-local", "--max-rows", "600", "--n-estimators", "20", "--plot", str(plot)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "synthetic-local" in text and "synthetic-clustered" not in text
    assert plot.stat().st_size > 0


def test_evaluate_rejects_bad_options(tmp_path, capsys):
    assert evaluate.main(["--test-size", "1.5"]) == 2
    assert evaluate.main(["--datasets", "nothing-like-this", "--plot", ""]) == 2


def test_ensemble_latency_reports_batch_consistency(capsys):
    code = cli.main(
        [
            "ensemble-latency",
            "--sections",
            "latency,consistency,throughput,crossover,pipeline",
            "--n-train",
            "300",
            "--calls",
            "5",
            "--big",
            "300",
            "--max-sklearn-rows",
            "300",
            "--crossover-n",
            "200",
            "--crossover-d",
            "2",
            "--events",
            "2000",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    ours = next(line for line in text.splitlines() if "AnomalyEnsemble.anomaly_score: " in line)
    assert "max |alone - batch| 0," in ours and "max |batch - mixed| 0," in ours
    assert int(ours.rsplit(" ", 1)[1]) > 50  # rank scores: a few ties among 100 rows
    batch_z = next(line for line in text.splitlines() if "batch z-score" in line and "alone" in line)
    assert "distinct one-row scores 1" in batch_z  # a lone row always scores the same
    same = next(line for line in text.splitlines() if "LocalOutlierFactor(max_samples=None, n_jobs=1)" in line)
    assert float(same.rsplit(" ", 1)[1]) < 1e-9  # the same scores as scikit-learn's
    assert "[pipeline]" in text and "process_batch" in text
