"""The crash-proof fuzz runner: crashes, hangs and errors are reported per case."""

from anomaly_fast._fuzz import run_cases


def test_the_runner_reports_crashes_hangs_and_errors_and_keeps_going():
    report = run_cases("anomaly_fast._fuzz:_selftest", range(10), n_workers=2, time_limit=3.0)
    assert report.n_cases == 10
    assert report.counts["ok"] == 2
    assert report.counts["hang"] == 2
    assert report.counts["crash: SIGABRT"] == 2
    assert report.counts["crash: exit 3"] == 2
    assert report.counts["error: ValueError: bad"] == 2
    assert sorted(case for case, _ in report.failures) == [1, 2, 3, 4, 6, 7, 8, 9]
