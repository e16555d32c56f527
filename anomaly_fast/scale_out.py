"""Beyond one machine: score and fit on Dask, score on Spark.

Fitted anomaly_fast models are small (a forest of 100 trees is a few hundred
kB) and score every row on its own, so scaling out is embarrassingly
parallel: ship the model to each worker **once**, score each partition with
the compiled kernels, keep the partitioning.  Fitting needs only a sample
(``n_estimators x max_samples`` rows for a forest), drawn uniformly across
partitions and fitted locally.

- :class:`DaskScorer` scores a ``dask.array``, a ``dask.dataframe`` or a
  Parquet dataset path lazily.  With a ``dask.distributed`` client the model
  is scattered to every worker once (``client.scatter(model,
  broadcast=True)``) and each task refers to it by key; without one (the
  threaded scheduler) the tasks share the in-memory model.
- :func:`sample_dask` draws a uniform sample without replacement across the
  partitions without materialising the table; :func:`fit_dask` fits an
  estimator on it.
- :func:`spark_score_function` returns the function for Spark's
  ``DataFrame.mapInPandas``, with the model in a Spark broadcast variable.

Nothing here imports dask or pyspark until it is used (``pip install
'anomaly_fast[dask]'`` / ``'anomaly_fast[spark]'``).

Score conventions are the model's own: ``score_samples`` and
``decision_function`` follow scikit-learn (**lower = more abnormal**),
``predict`` is in {-1, 1} (-1 for outliers), ``anomaly_score`` is in [0, 1],
**higher = more anomalous**.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .pipeline.events import METADATA_KEYS as METADATA_COLUMNS  # never features (entity_id, timestamp, event_id)

if TYPE_CHECKING:
    import os

    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

    DaskData = da.Array | dd.DataFrame | str | os.PathLike[str]

__all__ = ["DaskScorer", "METHODS", "default_sample_rows", "fit_dask", "sample_dask", "spark_score_function"]

METHODS = ("score_samples", "decision_function", "predict", "anomaly_score")
DEFAULT_SAMPLE_ROWS = 100_000  # sample of fit_dask for estimators other than forests
_FAN_IN = 8  # partitions' samples merged per task in sample_dask's tree reduction


# -- scoring one partition (runs on the workers) ---------------------------------
def _derived_scores(model, X, methods):
    """{method: scores} for ``methods``, scoring X once when the model's
    methods are all derived from ``score_samples`` by anomaly_fast's
    conventions (forests and AnomalyEnsemble: ``anomaly_score =
    -score_samples``, ``decision_function = score_samples - offset_``,
    ``predict = -1 where decision_function < 0``); each method is called
    otherwise.  The derived values are bit-identical to the methods'."""
    from .ensemble import AnomalyEnsemble
    from .forest.base import BaseIsolationForest

    if len(methods) == 1 or not isinstance(model, (BaseIsolationForest, AnomalyEnsemble)):
        return {m: np.asarray(getattr(model, m)(X)) for m in methods}
    score = model.score_samples(X)
    decision = score - model.offset_
    labels = np.ones(decision.shape[0], dtype=int)
    labels[decision < 0] = -1
    derived = {"score_samples": score, "decision_function": decision, "predict": labels, "anomaly_score": -score}
    return {m: derived[m] for m in methods}


def _features(model, part, columns):
    """The feature block the model is given for one pandas partition: a
    DataFrame when the model was fitted with feature names (scikit-learn
    checks them), a float64 array otherwise."""
    block = part[list(columns)]
    if hasattr(model, "feature_names_in_"):
        return block
    return block.to_numpy(dtype=np.float64)


def _score_frame_partition(part, model, methods, columns, keep):
    """One pandas partition -> DataFrame of the ``keep`` columns and one
    column per method, same index."""
    import pandas as pd

    out = part[list(keep)].copy() if keep else pd.DataFrame(index=part.index)
    if len(part) == 0:
        for m in methods:
            out[m] = np.empty(0, dtype=_dtype(m))
        return out
    for m, values in _derived_scores(model, _features(model, part, columns), methods).items():
        out[m] = values
    return out


def _score_series_partition(part, model, method, columns):
    return _score_frame_partition(part, model, (method,), columns, ())[method]


def _score_block(block, model, method):
    """One row block of a dask array -> 1-D scores."""
    if block.shape[0] == 0:
        return np.empty(0, dtype=_dtype(method))
    return _derived_scores(model, np.ascontiguousarray(block, dtype=np.float64), (method,))[method]


def _dtype(method):
    return np.dtype(int) if method == "predict" else np.dtype(np.float64)


def _check_method(model, method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not callable(getattr(model, method, None)):
        raise TypeError(f"{type(model).__name__} has no {method}()")


def _feature_columns(model, frame_columns, columns):
    """Feature columns of a DataFrame: ``columns`` when given, else the
    model's ``feature_names_in_``, else every column but entity_id /
    timestamp / event_id.  Their number must match the model's."""
    names = [str(c) for c in frame_columns]
    if columns is None:
        if hasattr(model, "feature_names_in_"):
            columns = [str(c) for c in model.feature_names_in_]
        else:
            columns = [c for c in names if c not in METADATA_COLUMNS]
    columns = list(columns)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"columns not in the data: {missing}")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and len(columns) != n_features:
        raise ValueError(f"the data has {len(columns)} feature columns {columns}, the model {n_features}")
    return columns


def _as_collection(data):
    """A dask Array or DataFrame from ``data`` (a Parquet path or glob is read
    with ``dask.dataframe.read_parquet``)."""
    if isinstance(data, (str, Path)):
        import dask.dataframe as dd

        return dd.read_parquet(str(data))
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(data, (da.Array, dd.DataFrame)):
        return data
    raise TypeError(f"expected a dask Array, a dask DataFrame or a Parquet path, got {type(data).__name__}")


def _row_blocks(X, n_features):
    """A 2-D dask array chunked along rows only."""
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D dask array, got {X.ndim}-D")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"the data has {X.shape[1]} features, the model {n_features}")
    return X.rechunk({1: -1}) if X.numblocks[1] > 1 else X


def _default_client():
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


class DaskScorer:
    """Score Dask collections with a fitted anomaly_fast estimator.

    With a ``dask.distributed`` client the model is scattered to every
    worker **once** (``client.scatter(model, broadcast=True)``), and every
    task names it by key instead of carrying a pickled copy; each partition
    is then scored by the model's compiled kernels.  (While the cluster is
    idle, dask's active memory manager, on by default, may drop all copies
    but one; a worker that lost its copy fetches it again from a peer for
    its next task: once per worker again, never once per task.)  Results are lazy Dask
    collections that keep the input's partitioning: a dask Array gives a 1-D
    dask Array chunked like its rows, a dask DataFrame gives a dask Series
    (or DataFrame, :meth:`score_frame`) with the same index and divisions.
    Rows are scored independently, so the scores equal the in-memory
    ``model.score_samples(X)`` exactly.

    Score conventions (the model's own): ``score_samples`` and
    ``decision_function`` **lower = more abnormal** (scikit-learn),
    ``predict`` in {-1, 1} with -1 for outliers, ``anomaly_score`` in
    [0, 1], **higher = more anomalous**.

    Parameters
    ----------
    model : fitted estimator
        Any fitted anomaly_fast estimator (or anything with the methods
        used).
    client : distributed.Client, None or False, default=None
        The cluster to scatter to; None uses the current default client if
        there is one; False (or no client) puts the model itself in the
        graph, for the local schedulers (the threads share it, no copies).

    Attributes
    ----------
    model_ref : distributed.Future or estimator
        What the tasks receive: the scattered model's future, or the model.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from anomaly_fast import IsolationForest
    >>> from anomaly_fast.scale_out import DaskScorer
    >>> X = np.random.RandomState(0).normal(size=(10_000, 3))
    >>> model = IsolationForest(random_state=0).fit(X)
    >>> scores = DaskScorer(model).score_samples(da.from_array(X, chunks=(2_500, 3)))
    >>> scores.chunks
    ((2500, 2500, 2500, 2500),)
    >>> bool((scores.compute() == model.score_samples(X)).all())
    True
    """

    def __init__(self, model: Any, client: Client | None = None) -> None:
        check_is_fitted(model)
        self.model = model
        self.client = _default_client() if client is None else (client or None)
        self.model_ref = model if self.client is None else self.client.scatter(model, broadcast=True, hash=False)

    def _apply(self, data, method, columns):
        _check_method(self.model, method)
        import dask.array as da

        data = _as_collection(data)
        if isinstance(data, da.Array):
            X = _row_blocks(data, getattr(self.model, "n_features_in_", None))
            return X.map_blocks(
                _score_block,
                self.model_ref,
                method,
                drop_axis=1,
                dtype=_dtype(method),
                meta=np.empty(0, dtype=_dtype(method)),
            )
        columns = _feature_columns(self.model, data.columns, columns)
        # selecting the columns first lets a Parquet source read only them
        return data[columns].map_partitions(
            _score_series_partition, self.model_ref, method, columns, meta=(method, _dtype(method))
        )

    def score_samples(self, data: DaskData, columns: Sequence[str] | None = None) -> da.Array | dd.Series:
        """Lazy ``model.score_samples`` of every row: scikit-learn's
        convention, **lower = more abnormal**.

        Parameters
        ----------
        data : dask Array of shape (n, n_features), dask DataFrame or str
            A str or Path is a Parquet dataset (folder or glob).
        columns : list of str, default=None
            Feature columns of a DataFrame; None: the model's
            ``feature_names_in_``, else every column except entity_id,
            timestamp and event_id.

        Returns
        -------
        dask Array (1-D, chunked like the rows) or dask Series (same index
        and divisions), named after the method.
        """
        return self._apply(data, "score_samples", columns)

    def decision_function(self, data: DaskData, columns: Sequence[str] | None = None) -> da.Array | dd.Series:
        """Lazy ``model.decision_function``: ``score_samples - offset_``,
        negative for outliers (**lower = more abnormal**).  Parameters and
        result as :meth:`score_samples`."""
        return self._apply(data, "decision_function", columns)

    def predict(self, data: DaskData, columns: Sequence[str] | None = None) -> da.Array | dd.Series:
        """Lazy ``model.predict``: -1 for outliers, 1 for inliers.
        Parameters and result as :meth:`score_samples`."""
        return self._apply(data, "predict", columns)

    def anomaly_score(self, data: DaskData, columns: Sequence[str] | None = None) -> da.Array | dd.Series:
        """Lazy ``model.anomaly_score``: in [0, 1], **higher = more
        anomalous**.  Parameters and result as :meth:`score_samples`."""
        return self._apply(data, "anomaly_score", columns)

    def score_frame(
        self,
        data: dd.DataFrame | str | os.PathLike[str],
        methods: Sequence[str] = ("anomaly_score", "predict"),
        columns: Sequence[str] | None = None,
        keep: Sequence[str] = METADATA_COLUMNS,
    ) -> dd.DataFrame:
        """Several scores of each row in one pass over the data, as a lazy
        dask DataFrame with the same index and divisions.

        Parameters
        ----------
        data : dask DataFrame or str (Parquet dataset)
        methods : sequence of str, default=("anomaly_score", "predict")
            Columns of the result, named after the methods (see
            :data:`METHODS`); forests and AnomalyEnsemble score each row
            once for all of them.
        columns : list of str, default=None
            Feature columns, as in :meth:`score_samples`.
        keep : sequence of str, default=("entity_id", "timestamp", "event_id")
            Columns copied to the result when the data has them.

        Returns
        -------
        dask DataFrame
        """
        import pandas as pd

        methods = tuple(methods)
        if not methods:
            raise ValueError("methods must name at least one method")
        for m in methods:
            _check_method(self.model, m)
        data = _as_collection(data)
        if not hasattr(data, "map_partitions") or not hasattr(data, "columns"):
            raise TypeError("score_frame needs a dask DataFrame or a Parquet path")
        columns = _feature_columns(self.model, data.columns, columns)
        keep = [c for c in keep if c in list(data.columns)]
        meta = pd.DataFrame({c: data._meta[c] for c in keep})
        for m in methods:
            meta[m] = np.empty(0, dtype=_dtype(m))
        meta.index = data._meta.index
        data = data[keep + [c for c in columns if c not in keep]]
        return data.map_partitions(_score_frame_partition, self.model_ref, methods, columns, keep, meta=meta)


# -- fitting from a sample -------------------------------------------------------
def _seed_sequence(random_state):
    """A numpy SeedSequence from an int, a RandomState / Generator (one draw
    from it) or None (fresh entropy)."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, Integral):
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(np.iinfo(np.int32).max)))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(np.iinfo(np.int64).max)))
    raise TypeError(f"random_state must be None, an int, a RandomState or a Generator, got {random_state!r}")


def _bottom_k(part, seed, n_rows, columns):
    """(keys, rows) of the ``n_rows`` rows of one partition with the smallest
    uniform random keys (a pandas partition's ``columns``, or an array
    block), rows as float64."""
    if columns is not None:
        part = part[list(columns)].to_numpy(dtype=np.float64)
    part = np.asarray(part, dtype=np.float64)
    keys = np.random.default_rng(seed).random(part.shape[0])
    if part.shape[0] > n_rows:
        chosen = np.argpartition(keys, n_rows - 1)[:n_rows]
        keys, part = keys[chosen], part[chosen]
    return keys, part


def _merge_bottom_k(pieces, n_rows):
    """The ``n_rows`` smallest keys (and their rows) of several ``_bottom_k``
    results, sorted by key."""
    keys = np.concatenate([k for k, _ in pieces])
    rows = np.concatenate([r for _, r in pieces])
    order = np.argsort(keys, kind="stable")[:n_rows]
    return keys[order], rows[order]


def sample_dask(
    data: DaskData,
    n_rows: int,
    random_state: int | np.random.RandomState | np.random.Generator | None = None,
    columns: Sequence[str] | None = None,
) -> np.ndarray | pd.DataFrame:
    """A uniform random sample of ``n_rows`` rows (without replacement)
    across all partitions of a Dask collection, without materialising it.

    Every row gets an independent uniform random key and the sample is the
    ``n_rows`` rows with the smallest keys (bottom-k sampling), so every
    subset of ``n_rows`` rows is equally likely.  Partition ``i`` draws its
    keys from ``SeedSequence(random_state).spawn(n_partitions)[i]``, keeps
    its own ``n_rows`` smallest, and the partitions' candidates are merged
    in a tree of tasks (at most ``8 * n_rows`` rows in any one task besides
    its partition).  The same ``random_state`` and the same partitioning
    give the same sample; another partitioning of the same table gives
    another (equally uniform) sample.

    Parameters
    ----------
    data : dask Array, dask DataFrame or str (Parquet dataset)
    n_rows : int >= 1
        Rows to draw; all rows when the collection has fewer.
    random_state : int, RandomState, Generator or None, default=None
        Seed of the keys; None draws fresh entropy.
    columns : list of str, default=None
        Feature columns of a DataFrame (None: every column except entity_id,
        timestamp and event_id).

    Returns
    -------
    ndarray of float64 of shape (min(n_rows, n), n_features), or a pandas
    DataFrame with those columns for DataFrame input; rows in random order.
    """
    import dask
    import dask.array as da

    if isinstance(n_rows, bool) or not isinstance(n_rows, Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be an int >= 1, got {n_rows!r}")
    n_rows = int(n_rows)
    data = _as_collection(data)
    if isinstance(data, da.Array):
        parts = _row_blocks(data, None).to_delayed().ravel().tolist()
        columns = None
    else:
        columns = (
            list(columns) if columns is not None else [str(c) for c in data.columns if str(c) not in METADATA_COLUMNS]
        )
        missing = [c for c in columns if c not in [str(c) for c in data.columns]]
        if missing:
            raise ValueError(f"columns not in the data: {missing}")
        parts = data[columns].to_delayed()
    seeds = _seed_sequence(random_state).spawn(len(parts))
    level = [dask.delayed(_bottom_k)(p, s, n_rows, columns) for p, s in zip(parts, seeds)]
    while len(level) > 1:
        level = [dask.delayed(_merge_bottom_k)(level[i : i + _FAN_IN], n_rows) for i in range(0, len(level), _FAN_IN)]
    _, rows = dask.delayed(_merge_bottom_k)(level, n_rows).compute()
    if columns is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


def default_sample_rows(estimator: Any) -> int:
    """Rows :func:`fit_dask` draws by default: ``n_estimators x max_samples``
    for a forest with an int or "auto" (256) ``max_samples`` (each tree's
    rows could then come from disjoint parts of the sample), and 100,000 for
    anything else (fractional ``max_samples``, AnomalyEnsemble, ...)."""
    n_estimators = getattr(estimator, "n_estimators", None)
    max_samples = getattr(estimator, "max_samples", None)
    if isinstance(n_estimators, Integral) and (
        max_samples == "auto" or (isinstance(max_samples, Integral) and not isinstance(max_samples, bool))
    ):
        return int(n_estimators) * (256 if max_samples == "auto" else int(max_samples))
    return DEFAULT_SAMPLE_ROWS


def fit_dask(
    estimator: Any,
    data: DaskData,
    n_rows: int | None = None,
    random_state: int | np.random.RandomState | np.random.Generator | None = None,
    columns: Sequence[str] | None = None,
) -> Any:
    """Fit ``estimator`` on a uniform sample of a Dask collection (see
    :func:`sample_dask`), locally, and return it.

    An isolation forest only ever looks at ``n_estimators x max_samples``
    rows, so fitting on such a sample is what fitting on the whole table
    does, without the table in memory.  Everything ``fit`` derives from the
    training rows comes from the sample: a forest's ``offset_`` for a float
    ``contamination`` is the percentile over the sample, and
    :class:`~anomaly_fast.AnomalyEnsemble`'s detectors, score calibrations
    and threshold are fitted on the sample.

    Parameters
    ----------
    estimator : unfitted estimator
    data : dask Array, dask DataFrame or str (Parquet dataset)
    n_rows : int, default=None
        Sample size; None: :func:`default_sample_rows` (25,600 for the
        default forest).
    random_state : int, RandomState, Generator or None, default=None
        Seed of the sample; None uses the estimator's ``random_state`` when
        it is an int, else fresh entropy.  The same seed and partitioning
        give the same sample, hence (with a seeded estimator) the same model.
    columns : list of str, default=None
        Feature columns of a DataFrame (None: every column except entity_id,
        timestamp and event_id); the model keeps them as ``feature_names_in_``.

    Returns
    -------
    estimator : the fitted ``estimator``
    """
    if random_state is None and isinstance(getattr(estimator, "random_state", None), Integral):
        random_state = estimator.random_state
    sample = sample_dask(
        data, default_sample_rows(estimator) if n_rows is None else n_rows, random_state=random_state, columns=columns
    )
    return estimator.fit(sample)


# -- Spark -------------------------------------------------------------------------
def _spark_type(dtype):
    from pyspark.sql.types import DoubleType, LongType

    return LongType() if np.dtype(dtype).kind in "iu" else DoubleType()


def spark_score_function(
    model: Any,
    columns: Sequence[str] | None = None,
    keep: Sequence[str] = METADATA_COLUMNS,
    methods: Sequence[str] = ("anomaly_score", "predict"),
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function to pass to Spark's ``DataFrame.mapInPandas`` that scores
    each batch with a fitted model.

    The model goes into a Spark broadcast variable when a SparkContext is
    active (each executor loads it once), else into the function's closure.
    The function has an ``output_schema(input_schema)`` attribute giving the
    ``schema`` argument of ``mapInPandas``: the ``keep`` columns present in
    the input, then one column per method (``predict`` as bigint, the others
    as double).  Score conventions are the model's (``anomaly_score`` in
    [0, 1], higher = more anomalous; ``predict`` -1 for outliers).

    Parameters
    ----------
    model : fitted estimator
    columns : list of str, default=None
        Feature columns; None: the model's ``feature_names_in_``, else every
        input column except entity_id, timestamp and event_id.
    keep : sequence of str, default=("entity_id", "timestamp", "event_id")
        Input columns copied to the output when present.
    methods : sequence of str, default=("anomaly_score", "predict")

    Returns
    -------
    callable ``iterator of pandas.DataFrame -> iterator of pandas.DataFrame``

    Examples
    --------
    A runnable recipe (needs pyspark and a Java runtime)::

        score = spark_score_function(model, keep=["entity_id"])
        scored = sdf.mapInPandas(score, schema=score.output_schema(sdf.schema))
    """
    check_is_fitted(model)
    methods = tuple(methods)
    for m in methods:
        _check_method(model, m)
    keep = tuple(keep)
    try:
        from pyspark import SparkContext

        context = SparkContext._active_spark_context
    except ImportError:
        context = None
    holder = context.broadcast(model) if context is not None else None

    def score(batches):
        fitted = holder.value if holder is not None else model
        for pdf in batches:
            features = _feature_columns(fitted, pdf.columns, columns)
            present = [c for c in keep if c in pdf.columns]
            yield _score_frame_partition(pdf, fitted, methods, features, present).reset_index(drop=True)

    def output_schema(input_schema):
        from pyspark.sql.types import StructField, StructType

        fields = [input_schema[c] for c in keep if c in input_schema.fieldNames()]
        fields += [StructField(m, _spark_type(_dtype(m)), False) for m in methods]
        return StructType(fields)

    score.output_schema = output_schema
    score.broadcast = holder
    return score
