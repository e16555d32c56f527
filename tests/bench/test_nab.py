import json

import numpy as np
import pytest

from anomaly_fast.bench import nab
from anomaly_fast.cli import COMMANDS
from anomaly_fast.evaluation import window_masks


def test_load_nab_drops_repeated_timestamps(tmp_path):
    root = tmp_path / "nab"
    (root / "grp").mkdir(parents=True)
    (root / "grp" / "a.csv").write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 01:00:00,2\n2024-01-01 00:00:00,9\n2024-01-01 02:00:00,3\n"
    )
    (root / "labels_windows.json").write_text(
        json.dumps({"grp/a.csv": [["2024-01-01 01:00:00", "2024-01-01 02:00:00"]]})
    )
    (case,) = nab.load_nab(tmp_path)  # the parent of nab/ works too
    assert case.name == "grp/a.csv"
    assert case.series.tolist() == [1.0, 2.0, 3.0]
    assert case.series.index.is_monotonic_increasing
    assert case.windows == [("2024-01-01 01:00:00", "2024-01-01 02:00:00")]


def test_synthetic_cases_hold_their_anomaly():
    cases = nab.synthetic_cases()
    assert [c.name for c in cases] == ["synthetic/spike", "synthetic/level_shift", "synthetic/flat_line"]
    for case in cases:
        masks, _ = window_masks(case.series.index, case.windows)
        assert masks[0].sum() > 0


def test_messy_cases_are_irregular_labelled_and_reproducible():
    cases = nab.messy_cases()
    assert [c.name for c in cases] == [c.name for c in nab.messy_cases()]
    assert len(cases) == 32 and sum(not c.windows for c in cases) == 8
    kinds = {c.name.split("_", 1)[1].rsplit("_", 1)[0] for c in cases if c.windows}
    assert kinds == set(nab.MESSY_KINDS)
    for case in cases:
        if case.windows:
            masks, _ = window_masks(case.series.index, case.windows)
            assert masks[0].sum() > 0
    irregular = [c for c in cases if c.series.index.has_duplicates]
    assert irregular and all(c.series.index.is_monotonic_increasing for c in cases)
    steps = np.diff(irregular[0].series.index.unique().asi8)
    assert len(set(steps)) > 10  # jittered timestamps


def test_command_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / "summary.json"
    plot = tmp_path / "plot.png"
    assert (
        nab.main(["--methods", "textbook,stl", "--json", str(out), "--plot", str(plot), "--plot-series", "flat"]) == 0
    )
    summary = json.loads(out.read_text())
    assert summary["stl"]["recall"] == 1.0
    assert summary["stl"]["false_runs_per_1000"] < 1.0
    assert summary["textbook"]["false_runs_per_1000"] > 10 * max(summary["stl"]["false_runs_per_1000"], 0.1)
    assert plot.stat().st_size > 0
    assert "synthetic/flat_line" in capsys.readouterr().out


def test_command_lstm_row(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "summary.json"
    assert nab.main(["--methods", "lstm", "--series", "spike", "--lstm-epochs", "1", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert set(summary) == {"lstm", "lstm+alarms"}
    assert summary["lstm"]["windows"] == 1


def test_registered_in_cli():
    assert COMMANDS["nab-eval"][0] == "anomaly_fast.bench.nab"


def test_unknown_method():
    with pytest.raises(SystemExit):
        nab.main(["--methods", "prophet"])
