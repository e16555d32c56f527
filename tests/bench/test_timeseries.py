import json

import numpy as np
import pandas as pd
import pytest

from anomaly_fast.bench import timeseries

PINNED = 0.6642882331910221  # TSB-AD 1.5 basic_metricor().RangeAUC_volume_opt on the input below


def test_vus_pr_of_a_perfect_score_is_high_and_of_a_reversed_one_low():
    labels = np.zeros(400, dtype=int)
    labels[100:120] = 1
    labels[300:310] = 1
    perfect = labels + 0.01 * np.arange(400) / 400
    assert timeseries.vus_pr(labels, perfect, 20) > 0.8
    assert timeseries.vus_pr(labels, -perfect, 20) < 0.1


def test_vus_pr_pinned_against_tsb_ad_loop():
    # value from TSB-AD 1.5's basic_metricor().RangeAUC_volume_opt on this input
    rng = np.random.RandomState(0)
    labels = np.zeros(300, dtype=int)
    labels[50:60] = 1
    labels[200:230] = 1
    score = labels * 0.5 + rng.uniform(size=300)
    assert timeseries.vus_pr(labels, score, 16) == pytest.approx(PINNED, abs=1e-12)


def test_command_on_synthetic_series(tmp_path):
    pytest.importorskip("torch")  # the suite's "lstm" method
    out = tmp_path / "summary.json"
    assert timeseries.main(["--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert set(summary["scores"]) >= {"window-if", "stl", "stl-centred", "lstm"}
    assert set(summary["online_vs_batch"]) == {"stl", "stl-centred"}
    for group, v in summary["online_vs_batch"]["stl"].items():  # detect and update share one causal model
        assert v["batch_alarms_matched_online"] == 1.0 and v["batch_recall"] == v["online_recall"], group
    assert all(0 <= v["batch_alarms_matched_online"] <= 1 for v in summary["online_vs_batch"]["stl-centred"].values())
    for method in ("window-if", "stl", "stl-centred", "lstm"):
        assert 0 <= summary["scores"][method]["all"]["vus_pr"] <= 1
    held = summary["alarms"]["stl"]["leave_one_out"]  # every series held out once
    assert held["all"]["windows"] == 3 and 0 <= held["all"]["recall"] <= 1


def test_fit_prefix_takes_three_periods_of_time_on_an_irregular_series():
    from anomaly_fast.timeseries import STLDetector

    rng = np.random.RandomState(5)
    index = pd.date_range("2024-01-01", periods=24 * 20, freq="h")
    keep = rng.uniform(size=index.size) > 0.4  # 40% of the hours missing
    values = 10 + np.sin(2 * np.pi * np.arange(index.size) / 24) + 0.1 * rng.normal(size=index.size)
    series = pd.Series(values[keep], index=index[keep])
    det, n_train = timeseries.fit_prefix(STLDetector(), series, 0.05)
    assert n_train < 3 * 24  # fewer points than three periods of steps ...
    assert series.index[n_train] - series.index[0] >= pd.Timedelta(hours=3 * 24 - 1)  # ... but three days
    assert det.period_ == 24
