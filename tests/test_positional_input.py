"""Estimators fitted with feature names, scored by callers that map features
by name themselves (the pipeline, the CLI): no "X does not have valid
feature names" warning on each event, the same scores as a DataFrame gets,
and the warning kept for a user's bare array (scikit-learn's behaviour)."""

import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest as SklearnIsolationForest

from anomaly_fast import AnomalyEnsemble, ExtendedIsolationForest, IsolationForest, LocalOutlierFactor
from anomaly_fast._validation import POSITIONAL, by_position
from anomaly_fast.pipeline import AnomalyPipeline
from anomaly_fast.pipeline.alert_store import MemoryAlertStore
from anomaly_fast.pipeline.cli import fit_main, score_main

NAMES = ["a", "b", "c"]


@pytest.fixture
def frame(rng):
    return pd.DataFrame(rng.normal(size=(400, 3)), columns=NAMES)


DETECTORS = {
    "if": lambda: IsolationForest(n_estimators=30, random_state=0),
    "eif": lambda: ExtendedIsolationForest(n_estimators=30, random_state=0),
    "ensemble": lambda: AnomalyEnsemble(random_state=0),
    "lof": lambda: LocalOutlierFactor(n_neighbors=10),
    "sklearn": lambda: SklearnIsolationForest(n_estimators=30, random_state=0),  # not ours: given a DataFrame
}


def _frame_scores(detector, rows):
    """Scores in [0, 1] the detector gives the same rows as a DataFrame."""
    if hasattr(detector, "anomaly_score"):
        return np.asarray(detector.anomaly_score(pd.DataFrame(rows, columns=NAMES)))
    return None


@pytest.mark.parametrize(
    "name, explain", [(name, 0) for name in sorted(DETECTORS)] + [("if", 2), ("eif", 2), ("ensemble", 2)]
)
def test_pipeline_scores_named_detector_without_warning(name, explain, frame):
    detector = DETECTORS[name]().fit(frame)
    reference = None if hasattr(detector, "anomaly_score") else frame.to_numpy()
    rows = np.array([[5.0, 5.0, 5.0], [0.1, -0.2, 0.3], [4.0, 0.0, -4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        pipe = AnomalyPipeline(detector, store=MemoryAlertStore(), threshold=0.0, explain=explain, reference=reference)
        one = pipe.process(dict(zip(NAMES, rows[0])), {"entity_id": "e", "timestamp": 1.0})
        batch = pipe.process_batch(rows, {"entity_id": ["x", "y", "z"], "timestamp": [2.0, 3.0, 4.0]})
        big = pipe.process_batch(np.tile(rows, (400, 1)))  # > 1024 rows: the validated (slow) path
    assert one is not None and len(batch) == 3 and len(big) >= 1
    expected = _frame_scores(detector, rows)
    if expected is not None:
        np.testing.assert_allclose(one.score, np.clip(expected[0], 0, 1), rtol=0, atol=1e-12)
        np.testing.assert_allclose([a.score for a in batch], np.clip(expected, 0, 1), rtol=0, atol=1e-12)
    if explain:
        assert len(one.explanation) == explain


def test_nan_event_on_the_slow_path_without_warning(frame):
    """A row with NaN skips the forest's fast path (validate_data's door)."""
    detector = IsolationForest(n_estimators=30, random_state=0).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = AnomalyPipeline(detector, store=MemoryAlertStore(), threshold=0.0)
        alert = pipe.process({"a": 9.0, "b": float("nan"), "c": 9.0}, {"entity_id": "e", "timestamp": 1.0})
    assert alert is not None
    expected = detector.anomaly_score(pd.DataFrame([[9.0, np.nan, 9.0]], columns=NAMES))[0]
    assert alert.score == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["if", "eif", "ensemble", "lof"])
def test_bare_array_still_warns_outside(name, frame):
    detector = DETECTORS[name]().fit(frame)
    method = detector.anomaly_score if hasattr(detector, "anomaly_score") else detector.score_samples
    AnomalyPipeline(detector, store=MemoryAlertStore(), reference=frame.to_numpy()).process([0.0, 0.0, 0.0])
    for X in (np.zeros((2, 3)), np.zeros((2000, 3))):  # the fast path and validate_data's
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            method(X)


def test_positional_is_per_thread_and_reset(frame):
    detector = IsolationForest(n_estimators=30, random_state=0).fit(frame)
    seen = []

    def other_thread():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detector.anomaly_score(np.zeros((1, 3)))
        seen.append(any("valid feature names" in str(w.message) for w in caught))

    def score_and_look_elsewhere(X):
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        return detector.anomaly_score(X)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_position(detector, score_and_look_elsewhere)(np.zeros((1, 3)))
    assert seen == [True]  # the other thread's bare array still warned
    assert POSITIONAL.get() is False  # reset after the call
    with pytest.raises(ValueError, match="boom"):
        by_position(detector, lambda X: (_ for _ in ()).throw(ValueError("boom")))(np.zeros((1, 3)))
    assert POSITIONAL.get() is False  # reset after an error too


@pytest.mark.parametrize("n_rows", [1, 2000])
def test_positional_still_checks_the_array(n_rows, frame):
    detector = IsolationForest(n_estimators=30, random_state=0).fit(frame)
    score = by_position(detector, detector.anomaly_score)
    with pytest.raises(ValueError, match="X has 2 features, but IsolationForest is expecting 3 features"):
        score(np.zeros((n_rows, 2)))
    with pytest.raises(ValueError, match="X has 2 features, but AnomalyEnsemble is expecting 3 features"):
        ensemble = AnomalyEnsemble(random_state=0).fit(frame)
        by_position(ensemble, ensemble.anomaly_score)(np.zeros((n_rows, 2)))
    assert by_position(detector, detector.anomaly_score)(np.zeros((n_rows, 3))).shape == (n_rows,)


def test_unnamed_detector_is_called_as_is(rng):
    detector = IsolationForest(n_estimators=10, random_state=0).fit(rng.normal(size=(100, 3)))
    assert by_position(detector, detector.anomaly_score) == detector.anomaly_score


def test_cli_score_with_a_registered_model_does_not_warn(tmp_path, rng, capsys):
    df = pd.DataFrame(rng.normal(size=(300, 3)), columns=NAMES)
    df.to_csv(tmp_path / "train.csv", index=False)
    assert fit_main([str(tmp_path / "train.csv"), "-o", str(tmp_path / "models"), "--n-estimators", "20"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = score_main([str(tmp_path / "models"), str(tmp_path / "train.csv"), "--explain", "2"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("anomaly_score,is_outlier,explanation") and len(lines) == 301
