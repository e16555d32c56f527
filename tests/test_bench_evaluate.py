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
        ["--data-dir", str(tmp_path), "--max-rows", "500", "--n-estimators", "20", "--plot", "", "--json", str(out_json)]
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
    code = cli.main(["evaluate", "--datasets", "synthetic-local", "--max-rows", "600", "--n-estimators", "20", "--plot", str(plot)])
    assert code == 0
    text = capsys.readouterr().out
    assert "synthetic-local" in text and "synthetic-clustered" not in text
    assert plot.stat().st_size > 0


def test_evaluate_rejects_bad_options(tmp_path, capsys):
    assert evaluate.main(["--test-size", "1.5"]) == 2
    assert evaluate.main(["--datasets", "nothing-like-this", "--plot", ""]) == 2


def test_ensemble_latency_reports_batch_consistency(capsys):
    code = cli.main(["ensemble-latency", "--n-train", "300", "--repeats", "5", "--batch", "20"])
    assert code == 0
    text = capsys.readouterr().out
    ours = next(line for line in text.splitlines() if line.startswith("AnomalyEnsemble.anomaly_score") and "alone" in line)
    assert "max |alone - batch| 0," in ours and "max |batch - mixed batch| 0," in ours
    assert "distinct one-row scores 20" in ours
    batch_z = next(line for line in text.splitlines() if line.startswith("same IF + LOF, batch z-score") and "alone" in line)
    assert "distinct one-row scores 1" in batch_z  # a lone row always scores the same
