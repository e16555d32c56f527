"""Sparse input in both forests, missing values in ExtendedIsolationForest,
and scores pinned from before either was accepted (issue 11)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_fast import ExtendedIsolationForest, IsolationForest
from anomaly_fast.forest.format import FORMAT_V2

CONTAINERS = [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.csc_array]
FORESTS = {
    "if": (IsolationForest, {}),
    "eif": (ExtendedIsolationForest, {}),
    "eif0": (ExtendedIsolationForest, {"extension_level": 0}),
    "eif1_range": (ExtendedIsolationForest, {"extension_level": 1, "intercept": "range"}),
}


def _sparse_data(seed, n=400, d=12, density=0.2, nan=0.0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, size=d)
    X[rng.rand(n, d) > density] = 0.0
    if nan:
        X[(X != 0) & (rng.rand(n, d) < nan)] = np.nan
    return X


# -- the same model and scores as dense ------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    density=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
    container=st.sampled_from(CONTAINERS),
    forest=st.sampled_from(sorted(FORESTS)),
    nan=st.sampled_from([0.0, 0.1]),
    float32=st.booleans(),
    max_features=st.sampled_from([1.0, 0.5]),
)
def test_sparse_input_gives_the_dense_model_and_scores_bit_for_bit(
    seed, density, container, forest, nan, float32, max_features
):
    cls, params = FORESTS[forest]
    X = _sparse_data(seed, density=density, nan=nan)
    if float32:
        X = X.astype(np.float32)
    kw = dict(params, n_estimators=15, random_state=seed, contamination=0.1, max_features=max_features)
    dense = cls(**kw).fit(X)
    sparse = cls(**kw).fit(container(X))
    assert sparse.offset_ == dense.offset_
    expected = dense.score_samples(X)
    np.testing.assert_array_equal(sparse.score_samples(container(X)), expected)
    np.testing.assert_array_equal(sparse.score_samples(X), expected)
    np.testing.assert_array_equal(dense.score_samples(sp.csr_matrix(X)), expected)


@pytest.mark.parametrize("forest", sorted(FORESTS))
def test_sparse_scoring_on_several_threads_equals_one_thread_and_dense(forest):
    cls, params = FORESTS[forest]
    X = _sparse_data(3, n=9000, d=40, density=0.05, nan=0.02)
    model = cls(n_estimators=20, random_state=0, n_jobs=2, **params).fit(sp.csc_matrix(X))
    one = cls(n_estimators=20, random_state=0, n_jobs=1, **params).fit(X)
    np.testing.assert_array_equal(model.score_samples(sp.csr_matrix(X)), one.score_samples(X))


def test_explicit_zeros_duplicates_and_unsorted_indices_read_as_scipy_densifies_them():
    X = _sparse_data(5, n=200, d=6, density=0.4)
    coo = sp.coo_matrix(X)
    # every entry split in two halves stored twice, in reverse order, plus explicit zeros
    rows = np.r_[coo.row, coo.row, [0, 1]][::-1]
    cols = np.r_[coo.col, coo.col, [5, 4]][::-1]
    vals = np.r_[coo.data / 2, coo.data / 2, [0.0, 0.0]][::-1]
    messy = sp.csr_matrix((vals, (rows, cols)), shape=X.shape)
    messy.has_sorted_indices = False
    dense = messy.toarray()
    model = IsolationForest(n_estimators=10, random_state=0).fit(dense)
    np.testing.assert_array_equal(model.score_samples(messy), model.score_samples(dense))
    fitted = IsolationForest(n_estimators=10, random_state=0).fit(messy)
    np.testing.assert_array_equal(fitted.score_samples(dense), model.score_samples(dense))


def test_sparse_warm_start_and_pickle_equal_a_cold_dense_fit():
    X = _sparse_data(9, nan=0.05)
    cold = ExtendedIsolationForest(n_estimators=20, random_state=1).fit(X)
    warm = ExtendedIsolationForest(n_estimators=10, random_state=1, warm_start=True).fit(sp.csc_matrix(X))
    warm.set_params(n_estimators=20).fit(sp.csc_matrix(X))
    again = pickle.loads(pickle.dumps(warm))
    np.testing.assert_array_equal(again.score_samples(sp.csr_matrix(X)), cold.score_samples(X))


@pytest.mark.parametrize("cls", [IsolationForest, ExtendedIsolationForest])
def test_tags_say_sparse_and_missing_values_are_accepted(cls):
    tags = cls().__sklearn_tags__()
    assert tags.input_tags.sparse and tags.input_tags.allow_nan


def test_sparse_with_int64_indices_and_integer_values_is_read():
    X = sp.random(300, 8, density=0.3, format="csr", random_state=0, dtype=np.float64)
    X.data = np.round(X.data * 10)
    big = sp.csr_matrix((X.data.astype(np.int64), X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape)
    model = IsolationForest(n_estimators=10, random_state=0).fit(X.toarray())
    np.testing.assert_array_equal(model.score_samples(big), model.score_samples(X.toarray()))


def test_sparse_arrays_edited_out_of_range_get_a_value_error_not_a_crash():
    X = sp.random(50, 4, density=0.5, format="csr", random_state=0)
    model = IsolationForest(n_estimators=5, random_state=0).fit(X)
    bad = X.copy()
    bad.indices[3] = 10**6  # scipy checked the matrix before this edit
    with pytest.raises(ValueError, match="indices"):
        model.score_samples(bad)
    with pytest.raises(ValueError, match="indices"):
        IsolationForest().fit(bad)


# -- unchanged scores on NaN-free data --------------------------------------------------
# Computed with main at ccc34a0 (before sparse input and NaN in EIF): the same
# data, seed and parameters must keep giving these exact numbers.
PINNED = {
    "if": (IsolationForest, {}, [-0.5569214124245243, -0.6253230479116553, -0.5723118454412794, -0.5018543192143009]),
    "eif": (
        ExtendedIsolationForest,
        {},
        [-0.539299300501743, -0.5803941408997407, -0.6279102533597986, -0.578101427567896],
    ),
    "eif1_range": (
        ExtendedIsolationForest,
        {"extension_level": 1, "intercept": "range"},
        [-0.5338141368407051, -0.5883724539334694, -0.5950726982527996, -0.5412443403738245],
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_nan_free_data_scores_exactly_as_before(name):
    cls, params, expected = PINNED[name]
    rng = np.random.RandomState(7)
    X = rng.normal(size=(300, 5))
    X[::17, 2] = np.inf
    T = rng.normal(size=(4, 5)) * 2
    scores = cls(n_estimators=50, random_state=3, **params).fit(X).score_samples(T)
    assert scores.tolist() == expected
    assert (
        cls(n_estimators=50, random_state=3, **params).fit(sp.csc_matrix(X)).score_samples(sp.csr_matrix(T)).tolist()
        == expected
    )


# -- missing values in ExtendedIsolationForest -----------------------------------------
def test_eif_missing_coordinate_takes_the_nodes_training_mean():
    # Two training rows and max_samples=2: every tree's root holds both, so a
    # missing coordinate at the root takes the mean of the two rows.
    X = np.array([[0.0, 1.0, 5.0], [2.0, 4.0, -1.0]])
    model = ExtendedIsolationForest(n_estimators=30, random_state=0).fit(X)
    probes = np.array([[np.nan, 3.0, 0.0], [1.5, np.nan, 7.0], [np.nan, np.nan, np.nan]])
    imputed = np.where(np.isnan(probes), X.mean(axis=0), probes)
    np.testing.assert_allclose(model.score_samples(probes), model.score_samples(imputed), rtol=0, atol=1e-12)


def test_eif_fits_and_scores_nan_and_keeps_finding_outliers():
    from sklearn.metrics import roc_auc_score

    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(size=(1000, 4)), rng.uniform(-6, 6, size=(40, 4))])
    y = np.r_[np.zeros(1000), np.ones(40)]
    clean = roc_auc_score(y, -ExtendedIsolationForest(random_state=0).fit(X).score_samples(X))
    X[rng.rand(*X.shape) < 0.1] = np.nan
    model = ExtendedIsolationForest(random_state=0).fit(X)
    scores = model.score_samples(X)
    assert np.isfinite(scores).all()
    assert roc_auc_score(y, -scores) > clean - 0.05
    # rows with NaN scored alone equal the batch (the same kernel walk)
    np.testing.assert_array_equal(np.concatenate([model.score_samples(X[i : i + 1]) for i in range(30)]), scores[:30])


def test_eif_column_entirely_missing_in_training_is_never_split_on():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(300, 3))
    X[:, 1] = np.nan
    model = ExtendedIsolationForest(random_state=0).fit(X)
    assert not np.any(model._forest.normals[:, :][model._forest.terms == 1])
    T = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(
        model.score_samples(T), model.score_samples(np.c_[T[:, 0], T[:, 1] * 0 + np.nan, T[:, 2]])
    )


def test_eif_saved_before_fills_scores_clean_rows_and_refuses_nan_with_a_clear_error():
    X = np.random.RandomState(2).normal(size=(200, 3))
    model = ExtendedIsolationForest(n_estimators=10, random_state=0).fit(X)
    arrays, state = model._export()
    del arrays["fills"]
    old = ExtendedIsolationForest._import(model.get_params(), arrays, state, FORMAT_V2)
    np.testing.assert_array_equal(old.score_samples(X), model.score_samples(X))
    with pytest.raises(ValueError, match="refit"):
        old.score_samples([[np.nan, 0.0, 0.0]])
    again = pickle.loads(pickle.dumps(old))  # saved again without fills, still readable
    np.testing.assert_array_equal(again.score_samples(X), model.score_samples(X))


def test_corrupt_fills_are_refused_by_name():
    X = np.random.RandomState(2).normal(size=(200, 3))
    arrays, state = ExtendedIsolationForest(n_estimators=5, random_state=0).fit(X)._export()
    arrays["fills"] = arrays["fills"].copy()
    arrays["fills"][0, 0] = np.nan
    with pytest.raises(ValueError, match="fills"):
        ExtendedIsolationForest._import({}, arrays, state)


# -- other inputs as scikit-learn 1.9.1 ------------------------------------------------
@pytest.mark.parametrize("cls", [IsolationForest, ExtendedIsolationForest])
def test_none_in_object_arrays_and_explicit_nan_in_sparse_are_missing_values(cls):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    X[::7, 1] = np.nan
    obj = X.astype(object)
    obj[np.isnan(X)] = None
    model = cls(n_estimators=10, random_state=0).fit(X)
    expected = model.score_samples(X)
    np.testing.assert_array_equal(cls(n_estimators=10, random_state=0).fit(obj).score_samples(obj), expected)
    np.testing.assert_array_equal(model.score_samples(sp.csr_matrix(X)), expected)


@pytest.mark.parametrize("cls", [IsolationForest, ExtendedIsolationForest])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.array([[1 + 2j, 0.0], [0.0, 1.0]]), ValueError, "[Cc]omplex"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), ValueError, "convert|string"),
        (sp.csr_matrix(np.array([[1 + 2j, 0.0], [0.0, 1.0]])), ValueError, "[Cc]omplex"),
    ],
    ids=["complex", "strings", "sparse-complex"],
)
def test_complex_numbers_and_strings_get_scikit_learns_errors(cls, bad, error, match):
    with pytest.raises(error, match=match):
        cls().fit(bad)


# -- fit from CSC: only the rows the trees draw are taken from the matrix -----------------
@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bootstrap=st.booleans(),
    weighted=st.booleans(),
    max_samples=st.sampled_from(["auto", 40, 1.0]),
    int64=st.booleans(),
    nan=st.sampled_from([0.0, 0.1]),
)
def test_csc_fit_takes_only_the_drawn_rows_and_gives_the_dense_model(
    seed, bootstrap, weighted, max_samples, int64, nan
):
    from anomaly_fast.forest.base import SparseRows

    X = _sparse_data(seed, n=300, d=9, density=0.2, nan=nan)
    csc = sp.csc_matrix(X)
    if int64:
        csc = sp.csc_matrix((csc.data, csc.indices.astype(np.int64), csc.indptr.astype(np.int64)), shape=X.shape)
    weights = np.random.RandomState(seed).uniform(0.0, 2.0, size=300) if weighted else None
    kw = dict(n_estimators=6, random_state=seed, bootstrap=bootstrap, max_samples=max_samples)
    dense = IsolationForest(**kw).fit(X, sample_weight=weights)
    sparse = IsolationForest(**kw).fit(csc, sample_weight=weights)
    for key in ("nodes", "values", "missing", "offsets", "depths"):
        np.testing.assert_array_equal(getattr(sparse._forest, key), getattr(dense._forest, key))
    # the rows handed to the build kernels: those drawn, in order, no others
    rows = SparseRows(csc).for_trees(np.arange(1, 4, dtype=np.uint64), 40, False, (np.empty(0),) * 2, 9)
    data, indices, indptr, n_cols, slots, n_draw = rows.csr
    taken = np.flatnonzero(slots >= 0)
    assert n_draw == 300 and n_cols == 9 and 0 < len(taken) <= 120
    np.testing.assert_array_equal(slots[taken], np.arange(len(taken)))
    small = sp.csr_matrix((data, indices, indptr), shape=(len(taken), 9)).toarray()
    np.testing.assert_array_equal(small, np.where(np.isnan(X[taken]), np.nan, X[taken]))


def test_csc_with_unsorted_or_duplicate_rows_is_read_as_scipy_densifies_it():
    X = _sparse_data(4, n=200, d=5, density=0.4)
    coo = sp.coo_matrix(X)
    rows = np.r_[coo.row, coo.row][::-1]
    cols = np.r_[coo.col, coo.col][::-1]
    vals = np.r_[coo.data / 2, coo.data / 2][::-1]
    messy = sp.csc_matrix((vals, (rows, cols)), shape=X.shape)
    messy.indices[:2] = messy.indices[:2][::-1].copy()  # a column out of order
    messy.has_sorted_indices = False
    model = IsolationForest(n_estimators=8, random_state=0).fit(messy.toarray())
    fitted = IsolationForest(n_estimators=8, random_state=0).fit(messy)
    np.testing.assert_array_equal(fitted._forest.nodes, model._forest.nodes)


@pytest.mark.parametrize("where", ["row", "negative", "indptr"])
def test_csc_edited_out_of_range_gets_a_value_error_at_fit(where):
    X = sp.random(60, 4, density=0.5, format="csc", random_state=0)
    if where == "row":
        X.indices[-1] = 10**6
    elif where == "negative":
        X.indices[0] = -5
    else:
        X.indptr[2] = X.indptr[-1] + 7
    with pytest.raises(ValueError, match="indices|indptr"):
        IsolationForest(n_estimators=3, random_state=0).fit(X)


# -- fit from CSC through each tree's own stored entries (sparse-aware node tests) -------
def _awkward_sparse(seed, n, d, density, special):
    """A CSC matrix whose dense form is returned too; ``special`` adds a
    column stored for every row, one stored for every row with one value,
    explicit zeros, a -0.0, an infinity or a NaN."""
    rng = np.random.RandomState(seed)
    X = np.round(rng.normal(size=(n, d)), 1) + 0.0  # ties between rows; no -0.0 (scipy drops it)
    X[rng.rand(n, d) > density] = 0.0
    csc = sp.csc_matrix(X)
    if special == "explicit_zeros":
        coo = sp.coo_matrix(X)
        rows, cols = np.nonzero(X == 0)
        pick = rng.rand(rows.size) < 0.3
        data = np.r_[coo.data, np.zeros(pick.sum())]
        order = np.lexsort((np.r_[coo.row, rows[pick]], np.r_[coo.col, cols[pick]]))
        csc = sp.csc_matrix(
            (data[order], (np.r_[coo.row, rows[pick]][order], np.r_[coo.col, cols[pick]][order])), shape=X.shape
        )
        assert csc.nnz == coo.nnz + pick.sum()  # the zeros are stored
    elif special == "full_column":
        X[:, 0] = rng.normal(size=n)
    elif special == "constant_column":
        X[:, 0] = 2.5
    elif special in ("negative_zero", "inf", "nan"):
        value = {"negative_zero": -0.0, "inf": np.inf, "nan": np.nan}[special]
        row = rng.randint(n)
        X[row, 0] = 1.0
        csc = sp.csc_matrix(X)
        csc.data[np.flatnonzero(csc.indices[: csc.indptr[1]] == row)[0]] = value
        X[row, 0] = value  # (scipy's toarray would turn -0.0 into 0.0)
    if special not in ("explicit_zeros", "negative_zero", "inf", "nan"):
        csc = sp.csc_matrix(X)
    return X, csc


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 150),
    d=st.integers(1, 7),
    density=st.sampled_from([0.02, 0.2, 0.7, 1.0]),
    special=st.sampled_from(
        ["none", "explicit_zeros", "full_column", "constant_column", "negative_zero", "inf", "nan"]
    ),
    max_samples=st.sampled_from(["auto", 1, 2, 3, 0.5]),
    bootstrap=st.booleans(),
    weighted=st.booleans(),
    max_features=st.sampled_from([1.0, 0.5, 1]),
    n_jobs=st.sampled_from([None, 2]),
    float32=st.booleans(),
    int64=st.booleans(),
)
def test_csc_fit_from_tree_entries_is_the_dense_model_bit_for_bit(
    seed, n, d, density, special, max_samples, bootstrap, weighted, max_features, n_jobs, float32, int64
):
    from anomaly_fast.forest.base import SparseRows, TreeEntries

    X, csc = _awkward_sparse(seed, n, d, density, special)
    if float32:
        X, csc = X.astype(np.float32), csc.astype(np.float32)
    if int64:
        csc = sp.csc_matrix((csc.data, csc.indices.astype(np.int64), csc.indptr.astype(np.int64)), shape=X.shape)
    weights = np.random.RandomState(seed).uniform(0.5, 2.0, size=n) if weighted else None
    kw = dict(
        n_estimators=7,
        random_state=seed,
        bootstrap=bootstrap,
        max_samples=max_samples,
        max_features=max_features,
        n_jobs=n_jobs,
    )
    dense = IsolationForest(**kw).fit(X, sample_weight=weights)
    sparse = IsolationForest(**kw).fit(csc, sample_weight=weights)
    for key in ("nodes", "values", "missing", "ranges", "offsets", "depths"):
        np.testing.assert_array_equal(getattr(sparse._forest, key), getattr(dense._forest, key))
    assert sparse._forest.ranges.tobytes() == dense._forest.ranges.tobytes()  # the sign of a zero too
    # and the fit went through the trees' entries
    empty = (np.empty(0),) * 2
    source = SparseRows(csc).tree_entries(np.arange(3, dtype=np.uint64), min(n, 256), False, empty, d)
    assert isinstance(source, TreeEntries)


def test_tree_entries_hold_each_trees_drawn_rows_and_large_subsamples_take_the_union():
    from anomaly_fast import _isolation
    from anomaly_fast.forest import base

    X = _sparse_data(5, n=300, d=9, density=0.2)
    csc = sp.csc_matrix(X)
    empty = (np.empty(0),) * 2
    seeds = np.arange(1, 5, dtype=np.uint64)
    source = base.SparseRows(csc).tree_entries(seeds, 40, True, empty, 9)
    rows = _isolation.draw_tree_rows(seeds, 300, 40, True, *empty, 9, 9)
    for t in range(len(seeds)):
        mine = source.of_tree(t)
        assert mine.shape[0] == sum(part.counts()[t] for part in source.parts)
        assert np.all(np.diff(mine["col"]) >= 0)  # in column order
        subsample = np.zeros((40, 9))
        subsample[mine["pos"], mine["col"]] = mine["val"]
        np.testing.assert_array_equal(subsample, X[rows[t]])  # a row drawn twice is there twice
    # many copies of the entries (subsamples near the whole matrix): the union of the rows
    big = base.SparseRows(csc)
    old = base._MAX_TREE_ENTRIES
    try:
        base._MAX_TREE_ENTRIES = 100
        assert isinstance(big.tree_entries(seeds, 300, False, empty, 9), base.SparseRows)
    finally:
        base._MAX_TREE_ENTRIES = old


# -- sparse scoring: the zero-path walk and the blocks give the dense scores ------------------
def _score_walks(model, csr):
    """score_samples of CSR ``csr`` by each of the forest's CSR walks (auto, blocks, zero paths)."""
    from anomaly_fast.forest.base import _canonical_csr

    arrays = _canonical_csr(csr)
    n = csr.shape[0]
    out = {}
    for name, walk in (("auto", 0), ("blocks", 1), ("zero_paths", 2)):
        scores = np.empty(n)
        model._forest.score_csr(arrays, 0, n, scores, False, walk)
        out[name] = scores
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 300),
    d=st.sampled_from([1, 3, 40, 500]),
    density=st.sampled_from([0.0, 0.002, 0.02, 0.3, 1.0]),
    special=st.sampled_from(["none", "explicit_zeros", "negative_zero", "inf", "full_column", "constant_column"]),
    max_samples=st.sampled_from([1, 2, 7, 64, 256]),
    n_estimators=st.sampled_from([1, 9, 30]),
)
def test_csr_zero_path_walk_scores_as_the_dense_walk_bit_for_bit(
    seed, n, d, density, special, max_samples, n_estimators
):
    """Every row follows its trees' all-zero paths until a node tests one of
    its stored features: the same leaves as the dense walk, summed in the
    same order, for any density (the walk is forced here; the forest picks
    it only for sparse rows), explicit zeros, -0.0 and +-inf entries, empty
    rows, trees of one node and shallow trees."""
    X, _ = _awkward_sparse(seed, n, d, density, special if d > 1 or special == "none" else "none")
    csr = sp.csr_matrix(X)
    if special in ("negative_zero", "inf") and d > 1:  # stored as entries, as in _awkward_sparse
        csr = _awkward_sparse(seed, n, d, density, special)[1].tocsr()
    train = np.random.RandomState(seed + 1).normal(size=(max(max_samples, 2), d))
    train[np.random.RandomState(seed + 2).rand(*train.shape) > max(density, 0.05)] = 0.0
    model = IsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, len(train)), random_state=seed)
    model.fit(train)
    expected = model.score_samples(np.ascontiguousarray(X))
    walks = _score_walks(model, csr)
    for name, scores in walks.items():
        np.testing.assert_array_equal(scores, expected, err_msg=name)


def test_csr_zero_path_walk_on_a_sparse_matrix_and_only_in_the_heap_layout():
    rng = np.random.RandomState(0)
    X = sp.random(3000, 3000, density=0.002, format="csr", random_state=1)
    model = IsolationForest(n_estimators=50, random_state=0).fit(X.tocsc())
    walks = _score_walks(model, X)
    np.testing.assert_array_equal(walks["zero_paths"], walks["blocks"])
    np.testing.assert_array_equal(model.score_samples(X), walks["blocks"])
    np.testing.assert_array_equal(model.score_samples(X[:500].toarray()), walks["blocks"][:500])
    # trees deeper than the heap layout's (max_samples > 256) are walked from the blocks only
    deep = IsolationForest(n_estimators=5, max_samples=2000, random_state=0)
    deep.fit(rng.normal(size=(2000, 4)))
    from anomaly_fast.forest.base import _canonical_csr

    with pytest.raises(ValueError, match="heap layout"):
        deep._forest.score_csr(_canonical_csr(sp.csr_matrix(np.ones((2, 4)))), 0, 2, np.empty(2), False, 2)
    Xd = rng.normal(size=(50, 4))
    Xd[rng.rand(50, 4) < 0.7] = 0.0
    np.testing.assert_array_equal(deep.score_samples(sp.csr_matrix(Xd)), deep.score_samples(Xd))


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_csc_entries_taken_in_column_ranges_by_threads_give_the_dense_model(monkeypatch, n_jobs):
    from anomaly_fast.forest import base

    monkeypatch.setattr(base, "_MIN_THREAD_ENTRIES", 1)  # threads even for a small matrix
    X = _sparse_data(11, n=400, d=13, density=0.15)
    X[::7, 3] = np.nan
    csc = sp.csc_matrix(X)
    empty = (np.empty(0),) * 2
    seeds = np.arange(1, 6, dtype=np.uint64)
    source = base.SparseRows(csc).tree_entries(seeds, 64, False, empty, 13, n_jobs)
    assert isinstance(source, base.TreeEntries) and len(source.parts) == n_jobs
    single = base.SparseRows(csc).tree_entries(seeds, 64, False, empty, 13, None)
    assert len(single.parts) == 1
    for t in range(len(seeds)):  # the parts, in turn, are the one pass's entries
        assert source.of_tree(t).tobytes() == single.of_tree(t).tobytes()  # NaN too
    kw = dict(n_estimators=9, random_state=4, max_samples=64, n_jobs=n_jobs)
    dense = IsolationForest(**kw).fit(X)
    sparse = IsolationForest(**kw).fit(csc)
    for key in ("nodes", "values", "missing", "ranges", "offsets", "depths"):
        np.testing.assert_array_equal(getattr(sparse._forest, key), getattr(dense._forest, key))


def test_csc_tree_entries_refuse_a_column_range_outside_the_matrix_and_foreign_parts():
    from anomaly_fast import _isolation

    csc = sp.csc_matrix(_sparse_data(2, n=50, d=4, density=0.3))
    rows = _isolation.draw_tree_rows(np.arange(2, dtype=np.uint64), 50, 16, False, *(np.empty(0),) * 2, 4, 4)
    draws = _isolation.csc_tree_draws(50, rows)
    arrays = (csc.data, csc.indices, csc.indptr.astype(np.intp))
    with pytest.raises(ValueError, match="out of range"):
        _isolation.csc_tree_entries(*arrays, draws, 0, 5)
    with pytest.raises(ValueError, match="out of range"):
        _isolation.csc_tree_entries(*arrays, draws, 3, 2)
    for outside in (-1, 50):  # a drawn row outside range(50) is refused, never read
        bad_rows = rows.copy()
        bad_rows[1, 3] = outside
        with pytest.raises(ValueError, match="range"):
            _isolation.csc_tree_draws(50, bad_rows)
    part = _isolation.csc_tree_entries(*arrays, draws, 0, 4)
    assert part.counts().sum() == sum(csc[r].nnz for r in rows.ravel())
    with pytest.raises(IndexError):
        part.tree(2)


def test_csc_columns_longer_than_a_take_block_give_the_dense_model_and_are_checked_to_their_end():
    from anomaly_fast import _isolation

    # _hand_out reads a column 1024 entries at a time: full columns of 3000 rows span three blocks
    rng = np.random.RandomState(3)
    X = rng.normal(size=(3000, 4))
    X[rng.rand(3000, 4) < 0.5] = 0.0
    X[:, 1] = rng.normal(size=3000)  # stored for every row
    csc = sp.csc_matrix(X)
    kw = dict(n_estimators=6, random_state=1, max_samples=512)
    dense = IsolationForest(**kw).fit(X)
    sparse = IsolationForest(**kw).fit(csc)
    for key in ("nodes", "values", "ranges", "offsets"):
        np.testing.assert_array_equal(getattr(sparse._forest, key), getattr(dense._forest, key))
    for value, index_dtype in ((10**6, np.int32), (-3, np.int32), (2**40, np.int64), (-(2**40), np.int64)):
        bad = csc.copy()
        bad.indices = bad.indices.astype(index_dtype)
        start = bad.indptr[1]
        bad.indices[start + 2500] = value  # inside the column's third block, read before it is checked
        with pytest.raises(ValueError, match="out of range"):
            IsolationForest(**kw).fit(bad)
        with pytest.raises(ValueError, match="out of range"):  # the union-of-rows take, checked alike
            _isolation.csc_take_rows(bad.data, bad.indices, bad.indptr.astype(np.intp), 3000, np.ones(3000, np.uint8))
    unsorted = csc.copy()
    start = unsorted.indptr[1]
    unsorted.indices[start + 2000 : start + 2002] = unsorted.indices[start + 2000 : start + 2002][::-1].copy()
    unsorted.has_sorted_indices = False
    fitted = IsolationForest(**kw).fit(unsorted)  # not canonical: converted whole
    np.testing.assert_array_equal(fitted._forest.nodes, IsolationForest(**kw).fit(unsorted.toarray())._forest.nodes)
    assert (
        _isolation.csc_take_rows(  # not canonical: None, converted whole
            unsorted.data, unsorted.indices, unsorted.indptr.astype(np.intp), 3000, np.ones(3000, np.uint8)
        )
        is None
    )


def test_csc_tree_entries_rank_rows_alike_with_and_without_the_popcnt_instruction():
    # the slots of taken rows are ranks in a bitset: with the CPU's popcnt where it has
    # one (chosen at first use), else portable code; both must hand out the same entries
    from anomaly_fast import _isolation

    X = _sparse_data(5, n=3000, d=40, density=0.2)
    csc = sp.csc_matrix(X)
    rows = _isolation.draw_tree_rows(np.arange(1, 8, dtype=np.uint64), 3000, 256, False, *(np.empty(0),) * 2, 40, 40)
    draws = _isolation.csc_tree_draws(3000, rows)
    arrays = (csc.data, csc.indices, csc.indptr.astype(np.intp))
    was = _isolation._slots_popcnt(False)
    try:
        portable = _isolation.csc_tree_entries(*arrays, draws, 0, 40)
        _isolation._slots_popcnt(True)
        native = _isolation.csc_tree_entries(*arrays, draws, 0, 40)
    finally:
        _isolation._slots_popcnt(was)
    for t in range(7):
        assert portable.tree(t).tobytes() == native.tree(t).tobytes()
        assert portable.tree(t).shape[0] == sum(csc[r].nnz for r in rows[t])


def test_a_sparse_fit_reuses_the_slabs_the_last_one_freed_and_keeps_at_most_its_cap():
    # the trees' entries fill 2 MiB slabs; freed ones are kept for the next take (the
    # kernel zeroes a fresh page on first touch): the same models, kept or not
    from anomaly_fast import _isolation

    X = _sparse_data(8, n=3000, d=40, density=0.5)  # 100 trees x 256 rows x ~20 entries: 8 MiB
    csc = sp.csc_matrix(X)
    kw = dict(n_estimators=100, random_state=2)
    cap = _isolation._spare_slabs_kept()
    try:
        _isolation._spare_slabs_kept(0)
        assert _isolation._spare_slabs_kept() == 0
        fresh = IsolationForest(**kw).fit(csc)
        assert _isolation._spare_slabs_kept() == 0  # none kept under a cap of 0
        _isolation._spare_slabs_kept(16)
        IsolationForest(**kw).fit(csc)
        kept = _isolation._spare_slabs_kept()
        assert 2 <= kept <= 16
        rows = _isolation.draw_tree_rows(np.arange(100, dtype=np.uint64), 3000, 256, False, *(np.empty(0),) * 2, 40, 40)
        arrays = (csc.data, csc.indices, csc.indptr.astype(np.intp))
        part = _isolation.csc_tree_entries(*arrays, _isolation.csc_tree_draws(3000, rows), 0, 40)
        assert _isolation._spare_slabs_kept() < kept  # the take holds kept slabs
        assert part.tree(7).shape[0] == sum(csc[r].nnz for r in rows[7])
        del part
        assert kept <= _isolation._spare_slabs_kept() <= 16  # and gives them back
        again = IsolationForest(**kw).fit(csc)  # written over kept slabs
        for key in ("nodes", "values", "ranges", "offsets"):
            np.testing.assert_array_equal(getattr(again._forest, key), getattr(fresh._forest, key))
        _isolation._spare_slabs_kept(1)  # a lower cap frees the rest
        assert _isolation._spare_slabs_kept() == 1
        with pytest.raises(ValueError, match="cap"):
            _isolation._spare_slabs_kept(17)
    finally:
        _isolation._spare_slabs_kept(cap)


def test_csc_builds_take_up_the_random_states_of_the_draws_only_for_their_own_seeds(monkeypatch):
    # the rows a CSC fit's trees draw are drawn once (draw_tree_rows); the builds carry on from
    # the random states after those draws instead of drawing again, when the seeds match
    from anomaly_fast import _isolation

    X = _sparse_data(12, n=500, d=9, density=0.3)
    csc = sp.csc_matrix(X)
    kw = dict(n_estimators=12, random_state=5, max_samples=100)
    dense = IsolationForest(**kw).fit(X)._forest
    np.testing.assert_array_equal(IsolationForest(**kw).fit(csc)._forest.nodes, dense.nodes)
    draws = _isolation.csc_tree_draws

    def altered_states(n, rows, seeds, states):
        return draws(n, rows, seeds, states ^ np.uint64(1))

    monkeypatch.setattr(_isolation, "csc_tree_draws", altered_states)
    assert not np.array_equal(IsolationForest(**kw).fit(csc)._forest.nodes, dense.nodes)  # taken up

    def other_seeds(n, rows, seeds, states):
        return draws(n, rows, seeds + np.uint64(1), states ^ np.uint64(1))

    monkeypatch.setattr(_isolation, "csc_tree_draws", other_seeds)
    np.testing.assert_array_equal(IsolationForest(**kw).fit(csc)._forest.nodes, dense.nodes)  # drawn again
    rows, states = _isolation.draw_tree_rows(
        np.arange(3, dtype=np.uint64), 50, 8, False, *(np.empty(0),) * 2, 4, 4, True
    )
    assert states.shape == (3, _isolation.RANDOM_STATE_WORDS)
    with pytest.raises(ValueError, match="together"):
        draws(50, rows, np.arange(3, dtype=np.uint64), None)
    with pytest.raises(ValueError, match="must be"):
        draws(50, rows, np.arange(2, dtype=np.uint64), states)
