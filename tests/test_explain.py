"""explain(): per-feature contributions of the isolation forests (issue 17)."""

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from anomaly_fast import (
    AnomalyEnsemble,
    AnomalyPipeline,
    ExtendedIsolationForest,
    IsolationForest,
    LocalOutlierFactor,
    ModelRegistry,
    _isolation,
)
from anomaly_fast.forest.base import average_path_length
from anomaly_fast.forest.explain import (
    axis_explain_layout,
    expected_gain_table,
    node_gains,
    split_ranges,
    top_features,
)
from anomaly_fast.forest.format import FORMAT_V3, check_forest, export_forest, node_sizes, walked_depth
from anomaly_fast.pipeline.alert_store import MemoryAlertStore

FORESTS = [IsolationForest, ExtendedIsolationForest]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(7)
    return rng.normal(size=(600, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 100.0, -5.0, 2.0]


@pytest.fixture(scope="module", params=FORESTS, ids=lambda c: c.__name__)
def fitted(request, data):
    return request.param(n_estimators=30, random_state=0).fit(data)


def test_hyperplane_contributions_sum_to_log2_of_twice_the_anomaly_score(data):
    model = ExtendedIsolationForest(n_estimators=30, random_state=0).fit(data)
    rows = np.vstack([data[:50], data[:5] * 3.0])
    phi = model.explain(rows)
    assert phi.shape == rows.shape
    np.testing.assert_allclose(phi.sum(axis=1), np.log2(2 * model.anomaly_score(rows)), rtol=0, atol=1e-12)


def reference_axis_explain(model, rows):
    """IsolationForest.explain written out in Python from its definition:
    per step, c(n) - 1 - E[c(child)] at the row's position in the node's
    range, plus the certain-isolation share g * E[c(child) at an end]."""
    forest = model._forest
    nodes, offsets = forest.nodes, forest.offsets
    size, left, internal = node_sizes(nodes, forest.values, offsets, walked_depth(nodes, offsets), model.max_samples_)
    ranges = split_ranges(forest)
    bins = expected_gain_table([2]).shape[1] - 2
    phi = np.zeros(rows.shape)
    for i, x in enumerate(rows):
        for t0 in offsets:
            node = t0
            while internal[node]:
                f = nodes["feature"][node]
                if np.isnan(x[f]):  # routed by the missing rule, credits nothing
                    node = left[node] + 1 - forest.missing[node]
                    continue
                lo, hi = ranges[node]
                scale = float(np.float32(min(1.0 / (hi - lo), np.finfo(np.float32).max))) if hi > lo else 0.0
                t = (x[f] - lo) * scale
                outside = max(-t, t - 1.0, 0.0) if np.isfinite(t) else np.inf
                row = expected_gain_table([size[node]])[0]
                share = 1.0 - 1.0 / (1.0 + outside)
                phi[i, f] += row[int(np.clip(t, 0.0, 1.0) * bins + 0.5)] + share * row[-1]
                node = left[node] + (x[f] > nodes["threshold"][node])
    return phi / forest.denominator


def reference_hyperplane_explain(model, rows):
    """ExtendedIsolationForest.explain written out in Python for finite
    rows: a positive step gain shared by |w_j (x_j - mean_j)|, the negative
    ones summed and spread evenly over all features."""
    forest = model._forest
    nodes, offsets = forest.nodes, forest.offsets
    gains = node_gains(forest, model.max_samples_)
    phi = np.zeros(rows.shape)
    for i, x in enumerate(rows):
        for t0 in offsets:
            node = 0
            while nodes["left"][t0 + node] != node:
                w, terms = forest.normals[t0 + node], forest.terms[t0 + node]
                child = nodes["left"][t0 + node] + (w @ x[terms] > nodes["offset"][t0 + node])
                g = gains[t0 + child]
                share = np.abs(w * (x[terms] - model._explain_center[terms]))
                if g >= 0:
                    np.add.at(phi[i], terms, g * share / share.sum())
                else:
                    phi[i] += g / rows.shape[1]
                node = child
    return phi / forest.denominator


def test_hyperplane_explain_matches_its_definition(data):
    model = ExtendedIsolationForest(n_estimators=7, random_state=0).fit(data)
    rows = np.vstack([data[:10], data[:5] * 3.0])
    np.testing.assert_allclose(model.explain(rows), reference_hyperplane_explain(model, rows), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", FORESTS, ids=lambda c: c.__name__)
def test_the_shifted_feature_is_ranked_first_among_many(kind):
    rng = np.random.RandomState(6)
    d = 50  # EIF's earlier rule (losses shared like gains) ranked 88% first here
    X = rng.normal(size=(2000, d)) * rng.uniform(0.5, 5.0, size=d)
    rows = rng.choice(2000, 50, replace=False)
    planted = rng.randint(d, size=50)
    X[rows, planted] += 7 * X.std(axis=0)[planted] * rng.choice([-1, 1], 50)
    phi = kind(random_state=0).fit(X).explain(X[rows])
    assert np.mean(phi.argmax(axis=1) == planted) >= 0.96


@settings(max_examples=40, deadline=None)
@given(
    n_features=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(FORESTS),
    max_samples=st.integers(2, 80),
    scale=st.floats(0.01, 100.0),
)
def test_explain_matches_its_definition_for_any_forest_and_row(n_features, seed, kind, max_samples, scale):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(100, n_features)) * scale
    X[rng.rand(*X.shape) < 0.1] = 0.0  # ties and constant nodes
    model = kind(n_estimators=7, max_samples=max_samples, random_state=seed).fit(X)
    rows = np.vstack([X[:10], rng.normal(size=(10, n_features)) * scale * 4])
    rows[0, 0] = np.inf  # infinities are routed and credited as in scoring
    rows[1, 0] = -np.inf
    scores, phi = model._explain(rows)
    np.testing.assert_array_equal(scores, model.score_samples(rows))  # the same walk as scoring
    assert np.all(np.isfinite(phi))
    if kind is ExtendedIsolationForest:  # additive
        np.testing.assert_allclose(phi.sum(axis=1), np.log2(-2 * scores), rtol=0, atol=1e-12)
    else:  # the expected gains of the steps, each in [-1, c(n) - 1]
        np.testing.assert_allclose(phi, reference_axis_explain(model, rows), rtol=1e-12, atol=1e-12)
        steps = (np.log2(-scores) * -average_path_length(model.max_samples_)) * len(model._forest.offsets)
        bound = steps * max(1.0, average_path_length(model.max_samples_) - 1.0) / model._forest.denominator
        assert np.all(np.abs(phi).sum(axis=1) <= bound + 1e-9)
    for i, n in ((0, 1), (1, 1), (13, 1), (2, 5)):  # a row alone or a few rows: the kernels' few-rows walk
        few_scores, few_phi = model._explain(rows[i : i + n])
        np.testing.assert_array_equal(few_phi, phi[i : i + n])
        np.testing.assert_array_equal(few_scores, scores[i : i + n])


def test_the_axis_explainer_checks_what_it_is_given():
    X = np.random.RandomState(0).normal(size=(300, 3))
    model = IsolationForest(n_estimators=5, random_state=0).fit(X)
    forest = model._forest
    nodes, table = axis_explain_layout(forest, model.max_samples_)
    with pytest.raises(ValueError, match="table"):
        _isolation.AxisExplainer(forest, nodes, table[: _isolation.EXPLAIN_TABLE_WIDTH])
    with pytest.raises(ValueError, match="one entry per forest node"):
        _isolation.AxisExplainer(forest, nodes[:-1], table)
    explainer = _isolation.AxisExplainer(forest, nodes, table)
    for rows, scores, phi in (
        (X[:1, :2], np.empty(1), np.empty((1, 2))),
        (X[:2], np.empty(1), np.empty((2, 3))),
        (X[:2], np.empty(2), np.empty((2, 2))),
    ):
        with pytest.raises(ValueError, match="columns"):
            explainer.explain(np.ascontiguousarray(rows), scores, phi)


def test_gains_are_zero_at_roots_and_finite(fitted):
    forest = fitted._forest
    gains = node_gains(forest, fitted.max_samples_)
    assert np.all(gains[forest.offsets] == 0.0)
    assert np.all(np.isfinite(gains))


def test_one_row_equals_the_same_row_in_a_batch_and_n_jobs_does_not_matter(fitted, data):
    rows = np.vstack([data] * 2)  # 1200 rows: several chunks on two threads
    phi = fitted.explain(rows)
    for i in (0, 17, 599):
        np.testing.assert_array_equal(fitted.explain(rows[i : i + 1])[0], phi[i])
    parallel = pickle.loads(pickle.dumps(fitted)).set_params(n_jobs=2)
    np.testing.assert_array_equal(parallel.explain(rows), phi)
    np.testing.assert_array_equal(
        fitted.explain(rows.astype(np.float32)), fitted.explain(rows.astype(np.float32).astype(np.float64))
    )


def test_bad_input_is_refused_as_in_scoring(fitted, data):
    with pytest.raises(ValueError, match="features"):
        fitted.explain(data[:3, :2])
    with pytest.raises(NotFittedError):
        type(fitted)().explain(data[:3])
    with pytest.raises((TypeError, ValueError)):
        fitted.explain([["a", "b", "c", "d"]])
    from scipy import sparse

    with pytest.raises(TypeError):
        fitted.explain(sparse.csr_matrix(data[:3]))
    if isinstance(fitted, ExtendedIsolationForest):
        with pytest.raises(ValueError, match="NaN"):
            fitted.explain([[np.nan, 0.0, 0.0, 0.0]])


def test_a_missing_value_gets_no_credit_and_routes_as_in_scoring(data):
    model = IsolationForest(n_estimators=30, random_state=0).fit(data)
    rows = data[:20].copy()
    rows[::2, 1] = np.nan
    scores, phi = model._explain(rows)
    np.testing.assert_array_equal(scores, model.score_samples(rows))
    assert np.all(phi[::2, 1] == 0.0)
    for i in (0, 1):
        np.testing.assert_array_equal(model._explain(rows[i : i + 1])[1][0], phi[i])
    np.testing.assert_allclose(phi, reference_axis_explain(model, rows), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", FORESTS, ids=lambda c: c.__name__)
def test_the_shifted_feature_is_ranked_first(kind):
    rng = np.random.RandomState(3)
    X = rng.normal(size=(2000, 5)) * [1, 2, 3, 4, 5]
    rows = rng.choice(2000, 60, replace=False)
    planted = rng.randint(5, size=60)
    X[rows, planted] += 7 * np.array([1, 2, 3, 4, 5])[planted] * rng.choice([-1, 1], 60)
    phi = kind(random_state=0).fit(X).explain(X[rows])
    assert np.mean(phi.argmax(axis=1) == planted) >= 0.9
    # normal rows near the centre explain themselves as normal: negative sums
    assert np.mean(kind(random_state=0).fit(X).explain(X[:200] * 0.1).sum(axis=1) < 0) > 0.95


def test_pickle_and_registry_round_trips_explain_identically(fitted, data, tmp_path):
    phi = fitted.explain(data[:30])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).explain(data[:30]), phi)
    registry = ModelRegistry(tmp_path)
    version = registry.save(fitted)
    np.testing.assert_array_equal(registry.load(version).explain(data[:30]), phi)


def test_the_hyperplane_reference_point_is_checked_and_optional(data):
    model = ExtendedIsolationForest(n_estimators=10, random_state=0).fit(data)
    np.testing.assert_allclose(model._explain_center, data.mean(axis=0))
    arrays, state = export_forest(model)
    state["fitted"]["_explain_center"] = [1.0]
    with pytest.raises(ValueError, match="_explain_center"):
        check_forest("hyperplane", arrays, state)
    state["fitted"]["_explain_center"] = [np.nan] * 4
    with pytest.raises(ValueError, match="_explain_center"):
        check_forest("hyperplane", arrays, state)
    del state["fitted"]["_explain_center"]  # saved before explanations: explains from the origin
    old = ExtendedIsolationForest._import(model.get_params(), arrays, state)
    phi = old.explain(data[:5])
    np.testing.assert_array_equal(old.score_samples(data[:5]), model.score_samples(data[:5]))
    np.testing.assert_allclose(phi.sum(axis=1), np.log2(2 * model.anomaly_score(data[:5])), atol=1e-12)
    arrays, state = export_forest(IsolationForest(n_estimators=5, random_state=0).fit(data))
    state["fitted"]["_explain_center"] = [0.0] * 4
    with pytest.raises(ValueError, match="unknown keys"):
        check_forest("axis", arrays, state)


def test_ensemble_weights_its_explaining_members_and_lof_adds_nothing(data):
    members = [
        ("if", IsolationForest(n_estimators=20, random_state=0)),
        ("eif", ExtendedIsolationForest(n_estimators=20, random_state=0)),
        ("lof", LocalOutlierFactor(n_neighbors=10)),
    ]
    ens = AnomalyEnsemble(members, weights=[2.0, 1.0, 1.0], random_state=0).fit(data)
    rows = data[:10] * 2
    forests = ens.estimators_
    expected = (2.0 * forests[0].explain(rows) + forests[1].explain(rows)) / 4.0
    np.testing.assert_allclose(ens.explain(rows), expected, rtol=0, atol=1e-15)
    lof_only = AnomalyEnsemble([("lof", LocalOutlierFactor(n_neighbors=10))]).fit(data)
    assert np.all(lof_only.explain(rows) == 0.0)


def test_top_features_orders_by_contribution_and_names_features():
    top = top_features([0.1, -0.2, 0.3, 0.3], [1.0, 2.0, 3.0, np.inf], 3, ["a", "b", "c", "d"])
    assert [t["feature"] for t in top] == ["c", "d", "a"]
    assert top[1] == {"feature": "d", "contribution": 0.3, "value": np.inf}
    assert [t["feature"] for t in top_features([0.5, 0.1], [0, 0], 5)] == [0, 1]
    assert top_features([0.5], [0], 0) == []
    with pytest.raises(ValueError, match="one row"):
        top_features([0.5, 0.1], [0.0], 1)  # a value per contribution
    with pytest.raises(ValueError, match="one row"):
        top_features([[0.5, 0.1]], [[0.0, 1.0]], 1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]), st.floats(-5, 5)),
        min_size=1,
        max_size=90,
    ),
    st.integers(0, 95),
)
def test_top_features_order_is_a_stable_descending_argsort(contributions, k):
    # small rows are ordered in Python, large ones or rows with NaN by numpy: one order either way
    c = np.array(contributions)
    expected = np.argsort(-c, kind="stable")[: min(k, c.size)].tolist()
    assert [t["feature"] for t in top_features(c, c, k)] == expected


def test_pipeline_alerts_carry_their_explanation_through_the_store(data, tmp_path):
    model = IsolationForest(n_estimators=50, random_state=0).fit(data)
    names = ["cpu", "mem", "io", "net"]
    point = data[0].copy()
    point[2] = -50.0  # far out in io
    for store in (MemoryAlertStore(), tmp_path / "alerts.db"):
        pipe = AnomalyPipeline(
            model, threshold=0.5, store=store, feature_names=names, explain=2, monitor_features=False
        )
        alert = pipe.process(point, {"entity_id": "h", "timestamp": 1.0})
        assert alert.explanation[0]["feature"] == "io"
        assert len(alert.explanation) == 2 and alert.explanation[0]["value"] == -50.0
        phi = model.explain(point.reshape(1, -1))[0]
        assert alert.explanation[0]["contribution"] == phi[2]
        assert pipe.store.alerts()[-1]["explanation"] == alert.explanation
        pipe.close()
    quiet = AnomalyPipeline(model, threshold=0.5, feature_names=names, monitor_features=False)
    assert quiet.process(point, {"entity_id": "h", "timestamp": 1.0}).explanation == []


def test_stores_keep_their_own_copy_of_an_explanation_and_refuse_other_shapes(tmp_path):
    from anomaly_fast.pipeline.alert_store import SQLiteAlertStore

    def alert(key, explanation):
        return {
            "alert_id": key, "event_key": key, "timestamp": 1.0, "entity_id": "h", "score": 0.9, "tier": "high",
            "threshold": 0.5, "features": {}, "detector": "d", "model_version": "v", "context": {},
            "explanation": explanation,
        }  # fmt: skip

    for store in (MemoryAlertStore(), SQLiteAlertStore(tmp_path / "alerts.db")):
        explanation = [{"feature": "io", "contribution": 0.5, "value": -50.0}]
        store.add_alerts([alert("a", explanation)])
        explanation[0]["contribution"] = 0.0  # the caller's dict, changed after the write
        assert store.get_alert("a")["explanation"] == [{"feature": "io", "contribution": 0.5, "value": -50.0}]
        for bad in ([("feature", "io")], ["io"], 3, [{"feature": "io"}, None]):
            with pytest.raises(TypeError, match="list of dicts"):
                store.add_alerts([alert("b", bad)])
        assert store.count_alerts() == 1
        store.close()


def test_pipeline_refuses_explain_for_a_detector_without_it(data):
    from sklearn.ensemble import IsolationForest as SkIF

    with pytest.raises(ValueError, match="explain"):
        AnomalyPipeline(SkIF(random_state=0).fit(data), reference=data, explain=3)
    with pytest.raises(ValueError):
        AnomalyPipeline(IsolationForest(n_estimators=5).fit(data), explain=-1)


def test_an_explained_alert_is_json_serialisable(data):
    model = IsolationForest(n_estimators=20, random_state=0).fit(data)
    pipe = AnomalyPipeline(model, threshold=0.5, explain=1, monitor_features=False)
    alert = pipe.process(data[0] * 40, {"timestamp": 1.0})
    assert json.loads(json.dumps(alert.to_dict()))["explanation"][0]["feature"].startswith("x")


def test_a_schema_2_store_migrates_to_3_and_old_alerts_have_no_explanation(tmp_path):
    import sqlite3

    from anomaly_fast.pipeline.alert_store import MIGRATIONS, SQLiteAlertStore

    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    conn.executescript(MIGRATIONS[1][1])
    MIGRATIONS[2][1](conn)
    conn.executemany("INSERT INTO schema_migrations VALUES (?, 'x', 0)", [(1,), (2,)])
    conn.execute(
        "INSERT INTO alerts (alert_id, event_key, timestamp, entity_id, score, tier, threshold, features, detector, "
        "model_version, context) VALUES ('a1', '1:h@5.0', 5.0, 'h', 0.8, 'critical', 0.7, '{\"x0\": 1.0}', "
        "'IsolationForest', 'v', '{}')"
    )
    conn.commit()
    conn.close()
    store = SQLiteAlertStore(path)
    assert [v for v, _, _ in store.schema_migrations()] == [1, 2, 3, 4]
    assert store.get_alert("a1")["explanation"] == []
    new = dict(
        store.get_alert("a1"),
        alert_id="a2",
        event_key="1:h@6.0",
        timestamp=6.0,
        explanation=[{"feature": "x0", "contribution": 0.25, "value": 1.0}],
    )
    store.add_alerts([new])
    assert store.get_alert("a2")["explanation"] == new["explanation"]
    with pytest.raises(TypeError, match="explanation"):
        store.add_alerts([dict(new, alert_id="a3", event_key="1:h@7.0", explanation=["x0"])])
    store.close()
    assert [v for v, _, _ in SQLiteAlertStore(path).schema_migrations()] == [1, 2, 3, 4]  # once


@pytest.fixture
def registry(tmp_path):
    import pandas as pd

    from anomaly_fast.pipeline.cli import fit_main

    df = pd.DataFrame(np.random.RandomState(0).normal(size=(500, 3)), columns=["a", "b", "c"])
    df.to_csv(tmp_path / "train.csv", index=False)
    assert fit_main([str(tmp_path / "train.csv"), "-o", str(tmp_path / "models"), "--n-estimators", "30"]) == 0
    return tmp_path / "models"


def test_cli_stream_and_score_show_explanations(registry, tmp_path):
    import io

    import pandas as pd

    from anomaly_fast.pipeline.cli import score_main, stream_main

    line = json.dumps({"entity_id": "h", "timestamp": 1.0, "features": {"a": 0.0, "b": 9.0, "c": 0.0}})
    out, err = io.StringIO(), io.StringIO()
    assert (
        stream_main(
            ["--model", str(registry), "--threshold", "0.5", "--explain", "2"],
            stdin=io.StringIO(line + "\n"),
            stdout=out,
            stderr=err,
        )
        == 0
    )
    alert = json.loads(out.getvalue())
    assert len(alert["explanation"]) == 2 and alert["explanation"][0]["feature"] == "b"
    pd.DataFrame({"a": [0.0, 0.0], "b": [9.0, 0.0], "c": [0.0, 0.0]}).to_csv(tmp_path / "new.csv", index=False)
    assert score_main([str(registry), str(tmp_path / "new.csv"), "--explain", "1", "-o", str(tmp_path / "s.csv")]) == 0
    scored = pd.read_csv(tmp_path / "s.csv")
    assert json.loads(scored["explanation"][0])[0]["feature"] == "b"
    assert score_main([str(registry), str(tmp_path / "new.csv")]) == 0  # no column without --explain


def test_pipeline_over_an_ensemble_explains_with_its_forest_members(data):
    ens = AnomalyEnsemble(
        [("if", IsolationForest(n_estimators=20, random_state=0)), ("lof", LocalOutlierFactor(n_neighbors=10))]
    ).fit(data)
    pipe = AnomalyPipeline(ens, threshold=0.0, explain=4, monitor_features=False)
    point = data[3] * 5
    alert = pipe.process(point, {"timestamp": 1.0})
    expected = ens.explain(point.reshape(1, -1))[0]
    assert sorted(e["contribution"] for e in alert.explanation) == sorted(expected.tolist())


@pytest.mark.parametrize("n", [2, 3, 7, 64, 300])
def test_expected_gain_table_integrates_the_threshold_draw(n):
    # a threshold uniform over n evenly spread rows' range, integrated finely
    u = (np.arange(20000) + 0.5) / 20000
    left = np.minimum(np.floor(u * (n - 1)).astype(int) + 1, n - 1)
    table = expected_gain_table([n])[0]
    bins = table.shape[0] - 2
    for i in range(bins + 1):
        child = np.where(u < i / bins, average_path_length(n - left), average_path_length(left))
        assert table[i] == pytest.approx(average_path_length(n) - 1.0 - child.mean(), abs=1e-3)
    assert table[-1] == pytest.approx(average_path_length(n) - 1.0 - table[0], abs=1e-12)
    assert np.all(table[:-1] >= -1.0) and np.all(table[:-1] <= max(average_path_length(n) - 1.0, 0.0))


def test_the_continuum_limit_of_the_table_joins_the_exact_rows():
    exact, limit = expected_gain_table([2**16, 2**16 + 1])
    np.testing.assert_allclose(exact, limit, atol=1e-3)


def test_splits_record_the_range_their_threshold_was_drawn_from(data):
    model = IsolationForest(n_estimators=20, max_samples=len(data), random_state=0).fit(data)
    forest = model._forest
    nodes, ranges = forest.nodes, forest.ranges
    internal = nodes["left"] != np.arange(len(nodes)) - np.repeat(
        forest.offsets, np.diff(np.r_[forest.offsets, len(nodes)])
    )
    assert np.all(ranges[~internal] == 0.0)
    assert np.all(
        (ranges[internal, 0] <= nodes["threshold"][internal]) & (nodes["threshold"][internal] <= ranges[internal, 1])
    )
    roots = forest.offsets  # the root holds every row (max_samples = n, no bootstrap)
    f = nodes["feature"][roots]
    np.testing.assert_array_equal(ranges[roots, 0], data.min(axis=0)[f])
    np.testing.assert_array_equal(ranges[roots, 1], data.max(axis=0)[f])


def test_an_axis_forest_saved_without_ranges_explains_from_derived_ones(data):
    model = IsolationForest(n_estimators=20, random_state=0).fit(data)
    arrays, state = export_forest(model)
    del arrays["ranges"]
    old = IsolationForest._import(model.get_params(), arrays, state, FORMAT_V3)
    assert old._forest.ranges is None
    np.testing.assert_array_equal(old.score_samples(data[:20]), model.score_samples(data[:20]))
    derived = split_ranges(old._forest)
    threshold = old._forest.nodes["threshold"]
    internal = np.isfinite(threshold)
    assert np.all(derived[~internal] == 0.0)
    assert np.all((derived[internal, 0] <= threshold[internal]) & (threshold[internal] <= derived[internal, 1]))
    rows = np.vstack([data[:10], data[:3] + [0.0, 0.0, 3.0, 0.0]])
    phi = old.explain(rows)
    np.testing.assert_allclose(phi, reference_axis_explain(old, rows), rtol=1e-12, atol=1e-12)
    assert np.all(phi[10:].argmax(axis=1) == 2)
    # saved again: format /4 without ranges, read back the same; a warm start keeps derived ranges
    again = IsolationForest._import(model.get_params(), *export_forest(old))
    np.testing.assert_array_equal(again.explain(rows), phi)
    grown = pickle.loads(pickle.dumps(old)).set_params(warm_start=True, n_estimators=25).fit(data)
    np.testing.assert_array_equal(grown._forest.ranges[: len(derived)], derived)
    assert grown.explain(rows).shape == rows.shape


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda r: r[:, :1], "ranges"),
        (lambda r: np.where(r == r.max(), np.nan, r), "ranges"),
        (lambda r: r + 1e6, "ranges"),  # leaves not 0, thresholds outside
        (lambda r: np.where(np.arange(len(r))[:, None] == 0, [[1e6, 2e6]], r), "threshold"),
    ],
)
def test_corrupt_ranges_are_refused_naming_them(data, corrupt, match):
    arrays, state = export_forest(IsolationForest(n_estimators=5, random_state=0).fit(data))
    arrays["ranges"] = np.ascontiguousarray(corrupt(arrays["ranges"]))
    with pytest.raises(ValueError, match=match):
        check_forest("axis", arrays, state)


def test_the_registry_reads_an_axis_forest_without_ranges(data, tmp_path):
    model = IsolationForest(n_estimators=10, random_state=0).fit(data)
    arrays, state = export_forest(model)
    del arrays["ranges"]
    old = IsolationForest._import(model.get_params(), arrays, state, FORMAT_V3)
    registry = ModelRegistry(tmp_path)
    loaded = registry.load(registry.save(old))
    assert loaded._forest.ranges is None
    np.testing.assert_array_equal(loaded.explain(data[:10]), old.explain(data[:10]))
