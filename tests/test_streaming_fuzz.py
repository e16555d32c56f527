"""Fuzzed restored states of ADWIN, HalfSpaceTrees and FeatureMonitor: every
mutated state is refused with a ValueError or loads and works -- never a
crash, a hang or another error (cases run in worker subprocesses: see
anomaly_fast._fuzz).  ``benchmarks/fuzz_state.py anomaly_fast._fuzz_streaming:adwin ...`` runs >= 10,000 cases
per target."""

import pytest

from anomaly_fast._fuzz import run_cases


@pytest.mark.parametrize("target", ["adwin", "half_space_trees", "feature_monitor"])
def test_mutated_states_are_refused_or_work_and_never_crash(target):
    report = run_cases(f"anomaly_fast._fuzz_streaming:{target}", range(300), n_workers=2, time_limit=30.0)
    assert report.failures == []
    assert report.n_cases == 300
    # both outcomes occur: the mutations are neither all harmless nor all caught
    assert report.counts["ValueError"] > 0 and report.counts["ok"] > 0
