"""Fuzzed forest state (registry folders, exported state, pickles): every case
is refused with a ValueError or loads a model whose scores are finite and in
range; no crash, hang or error, run in crash-proof worker processes."""

import pytest

from anomaly_fast._fuzz import run_cases

TARGETS = ["state_if", "state_eif", "folder_if", "folder_eif", "pickle_if", "pickle_eif"]


@pytest.mark.parametrize("target", TARGETS)
def test_mutated_forest_state_is_refused_or_scores_in_range(target):
    report = run_cases(f"anomaly_fast._fuzz_forest:{target}", range(300), n_workers=2, time_limit=30.0)
    assert report.failures == []
    assert report.n_cases == 300
    assert report.counts["ok"] > 0 and report.counts["ValueError"] > 0


def test_mutated_csc_matrix_is_refused_or_fitted_as_scipy_reads_it():
    report = run_cases("anomaly_fast._fuzz_forest:csc_fit", range(300), n_workers=2, time_limit=30.0)
    assert report.failures == []
    assert report.n_cases == 300
    assert report.counts["ok"] > 0 and report.counts["ValueError"] > 0
