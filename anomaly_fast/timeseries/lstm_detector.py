"""Next-step LSTM prediction error as an anomaly score (needs torch)."""

from __future__ import annotations

import contextlib
import os
from numbers import Integral, Real
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._sklearn_compat import Interval, StrOptions
from .._sklearn_compat import fit_context as _fit_context
from ._alarm_runs import grid_alarms, input_frame
from ._series import DUPLICATES, on_input, period_from_step, prepare_series

__all__ = ["LSTMDetector"]


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("LSTMDetector needs PyTorch: pip install 'anomaly_fast[deep]'") from exc
    return torch


@contextlib.contextmanager
def _one_thread(torch):
    """Run torch on one thread, then restore the caller's setting.

    The network is tiny (one step of one chunk is a few hundred numbers):
    splitting its ops across threads costs more than it gains.  Measured on
    a 4,000-point series (2 cores): fit 0.76 s on one thread, 15.4 s on two.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _network(n_features, hidden_size, n_layers):
    """An LSTM over a chunk of steps, with a linear read-out of the step after each one."""
    torch = _torch()

    class NextStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(n_features, hidden_size, n_layers, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, n_features)

        def forward(self, steps):
            hidden, _ = self.lstm(steps)
            return self.head(hidden)

    return NextStep()


class LSTMDetector(OutlierMixin, BaseEstimator):
    """Anomalies as large next-step prediction errors of an LSTM.

    A univariate series (a pandas Series, optionally on a DatetimeIndex, a
    one-column DataFrame on a DatetimeIndex, or a 1-D array) goes through the
    input path of every time-series detector: put on a regular grid at the
    median step, duplicates aggregated, NaN and missing timestamps filled by
    interpolation and marked, gaps longer than ``max_gap`` steps split the
    series (no history window crosses them); results come back on the
    caller's points.  A 2-D array is a multivariate series whose rows are
    consecutive, evenly spaced steps (one column per variable; validated as
    scikit-learn does, no NaN).

    Each variable is standardised with the training mean and standard
    deviation; an LSTM reads the previous ``window`` steps and predicts the
    next one; a step's error is the mean squared prediction error over the
    variables.  Train on normal data: the threshold is the ``quantile`` of
    the training errors.  The first ``window`` steps of a series (and of each
    piece after a long gap) have no history: their error is 0 (scored as
    normal).  :meth:`detect` adds alarms (``STLDetector``'s rule).

    Runs on CPU with PyTorch (``pip install 'anomaly_fast[deep]'``); torch is
    imported only when the detector is fitted or loaded.

    Score conventions:

    - ``score_samples(X) = -error``: **lower = more abnormal** (scikit-learn).
    - ``decision_function(X) = score_samples(X) - offset_`` with ``offset_ =
      -error_threshold_``: negative for outliers.
    - ``predict(X)`` in {-1, 1}: -1 when the error exceeds the threshold.
    - ``anomaly_score(X) = 1 - 2 ** (-error / error_threshold_)`` in [0, 1),
      **higher = more anomalous**, 0.5 at the threshold.

    Parameters
    ----------
    window : int >= 1, default=32
        Minimum steps of history before a step is predicted.  The LSTM reads
        chunks of ``4 * window`` steps (starting every ``3 * window``) and
        predicts the step after each one; a prediction counts once it has
        ``window`` steps of history, so every step is predicted once, from
        ``window`` to ``4 * window`` steps of history, in training and
        scoring alike.  One pass over a chunk gives ``3 * window``
        predictions (a window-per-prediction LSTM costs ``window`` steps
        each: ~30x slower to train).
    hidden_size : int >= 1, default=32
    n_layers : int >= 1, default=1
    epochs : int >= 1, default=20
        Passes over the training series (each from a random chunk offset).
    batch_size : int >= 1, default=8
        Chunks per gradient step.
    learning_rate : float > 0, default=1e-2
        Adam step size.
    quantile : float in (0, 1), default=0.99
        Training-error quantile used as the threshold.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling; fits with the same
        seed (and the same torch thread count) give identical models.
    progress_bar : bool, default=True
        Show a tqdm bar over the training epochs.
    duplicates : {"mean", "last", "raise"}, default="mean"
        How values sharing a timestamp are aggregated (univariate input).
    max_gap : int >= 1 or None, default=None
        Gaps longer than this many steps split a univariate series; None =
        ``window``.

    Attributes
    ----------
    error_threshold_ : float
        Training-error quantile; errors above it are outliers.
    offset_ : float
        ``-error_threshold_``.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of each variable.
    train_loss_ : list of float
        Mean training loss per epoch.
    n_features_in_ : int
    period_ : int
        Steps per cycle (from the DatetimeIndex of the training series;
        else ``window``): the minimum spacing of two alarms in :meth:`detect`.

    Examples
    --------
    >>> import numpy as np
    >>> from anomaly_fast.timeseries import LSTMDetector
    >>> t = np.arange(600)
    >>> y = np.sin(2 * np.pi * t / 25)
    >>> det = LSTMDetector(window=20, hidden_size=16, epochs=3, random_state=0,
    ...                    progress_bar=False).fit(y)
    >>> z = y.copy(); z[400] += 3.0
    >>> int(np.argmax(det.anomaly_score(z)))
    400
    >>> int(det.predict(z)[400])
    -1
    """

    _parameter_constraints: dict = {
        "window": [Interval(Integral, 1, None, closed="left")],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "quantile": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "progress_bar": ["boolean"],
        "duplicates": [StrOptions(set(DUPLICATES))],
        "max_gap": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        window: int = 32,
        hidden_size: int = 32,
        n_layers: int = 1,
        epochs: int = 20,
        batch_size: int = 8,
        learning_rate: float = 1e-2,
        quantile: float = 0.99,
        random_state: int | np.random.RandomState | None = None,
        progress_bar: bool = True,
        duplicates: Literal["mean", "last", "raise"] = "mean",
        max_gap: int | None = None,
    ) -> None:
        self.window = window
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.quantile = quantile
        self.random_state = random_state
        self.progress_bar = progress_bar
        self.duplicates = duplicates
        self.max_gap = max_gap

    # ------------------------------------------------------------------ input
    @staticmethod
    def _is_series(X):
        if isinstance(X, pd.Series):
            return True
        if isinstance(X, pd.DataFrame):
            return isinstance(X.index, pd.DatetimeIndex) and X.shape[1] == 1
        return np.asarray(X).ndim == 1

    def _grid(self, X):
        """A univariate series on the shared input path (a RegularSeries)."""
        period = self.window + 1  # the shortest useful piece: one history window and a target
        return prepare_series(
            X,
            max(period, 2),
            min_cycles=1,
            duplicates=self.duplicates,
            max_gap=self.window if self.max_gap is None else self.max_gap,
        )

    def _validate(self, X, reset):
        """(standardisable 2-D grid values, RegularSeries or None)."""
        if self._is_series(X):
            if not reset and self.n_features_in_ != 1:
                raise ValueError(
                    f"X is 1-D but the detector was fitted on {self.n_features_in_} features; "
                    f"Reshape your data to (n_samples, {self.n_features_in_})"
                )
            data = self._grid(X)
            if reset:
                self.n_features_in_ = 1
            return data.values.reshape(-1, 1), data
        X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=self.window + 1)
        return X, None

    def _chunks(self, segments, offset=0):
        """Chunks ``(start, n_inputs)`` covering the scored steps of every segment.

        A chunk reads ``4 * window`` steps (fewer at a segment's end) and
        predicts the step after each; only predictions with at least
        ``window`` steps of history count, so chunks start every ``3 *
        window`` steps and every step from ``window`` on is predicted once.
        """
        w = self.window
        out = []
        for a, b in segments:
            for start in range(a + offset, b - w, 3 * w):
                out.append((start, min(4 * w, b - 1 - start)))
        return out

    def _run(self, model, T, chunks):
        """Predictions (with at least ``window`` steps of history) and their targets, per batch of equal chunks."""
        torch = _torch()
        w = self.window
        starts = torch.tensor([start for start, _ in chunks])
        m = chunks[0][1]
        steps = torch.arange(m + 1)
        block = T[starts[:, None] + steps]  # (chunks, m + 1, features)
        return model(block[:, :-1])[:, w - 1 :], block[:, w:]

    @staticmethod
    def _batches(chunks):
        """Chunks grouped by length (full chunks together, each shorter one alone)."""
        groups = {}
        for chunk in chunks:
            groups.setdefault(chunk[1], []).append(chunk)
        return list(groups.values())

    def _predict_errors(self, Z, segments):
        """Per-step mean squared errors (0 without ``window`` steps of history)."""
        torch = _torch()
        T = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
        errors = np.zeros(Z.shape[0])
        with torch.no_grad(), _one_thread(torch):
            for group in self._batches(self._chunks(segments)):
                for part in range(0, len(group), 256):
                    chunks = group[part : part + 256]
                    prediction, target = self._run(self._model, T, chunks)
                    found = ((prediction - target) ** 2).mean(dim=2).double().numpy()
                    for (start, m), row in zip(chunks, found):
                        errors[start + self.window : start + m + 1] = row
        return errors

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: npt.ArrayLike | pd.Series | pd.DataFrame, y: object = None) -> LSTMDetector:
        """Train the network on normal data and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Consecutive time steps, at least ``window + 1`` of them, finite.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        torch = _torch()
        from tqdm.auto import tqdm

        X, data = self._validate(X, reset=True)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.period_ = self.window
        if data is not None and data.step is not None:
            try:
                self.period_ = period_from_step(data.step)
            except ValueError:  # weekly or coarser steps: no natural cycle
                pass
        Z = (X - self.mean_) / self.scale_
        segments = [(0, Z.shape[0])] if data is None else [tuple(seg) for seg in data.segments.tolist()]
        T = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _network(self.n_features_in_, self.hidden_size, self.n_layers)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        self.train_loss_ = []
        model.train()
        with _one_thread(torch):
            self._train(model, optimizer, generator, T, segments, tqdm)
        model.eval()
        self._model = model

        scored = np.zeros(Z.shape[0], dtype=bool)
        for a, b in segments:
            scored[a + self.window : b] = True
        errors = self._predict_errors(Z, segments)[scored]
        self.error_threshold_ = float(np.quantile(errors, self.quantile))
        self.offset_ = -self.error_threshold_
        return self

    def _train(self, model, optimizer, generator, T, segments, tqdm):
        torch = _torch()
        for _ in tqdm(range(self.epochs), desc="LSTMDetector", unit="epoch", disable=not self.progress_bar):
            offset = int(torch.randint(3 * self.window, (1,), generator=generator))
            chunks = self._chunks(segments, offset) or self._chunks(segments)
            batches = []
            for group in self._batches(chunks):
                order = torch.randperm(len(group), generator=generator).tolist()
                batches += [
                    [group[i] for i in order[k : k + self.batch_size]] for k in range(0, len(group), self.batch_size)
                ]
            total = count = 0.0
            for k in torch.randperm(len(batches), generator=generator).tolist():
                optimizer.zero_grad()
                prediction, target = self._run(model, T, batches[k])
                loss = ((prediction - target) ** 2).mean()
                loss.backward()
                optimizer.step()
                total += loss.item() * target.numel()
                count += target.numel()
            self.train_loss_.append(total / count)

    # ---------------------------------------------------------------- scoring
    def _grid_errors(self, X):
        """Per-grid-step errors (0 without a full history) and the RegularSeries (or None)."""
        check_is_fitted(self)
        X, data = self._validate(X, reset=False)
        segments = [(0, X.shape[0])] if data is None else [tuple(seg) for seg in data.segments.tolist()]
        return self._predict_errors((X - self.mean_) / self.scale_, segments), data

    def prediction_error(self, X: npt.ArrayLike | pd.Series | pd.DataFrame) -> npt.NDArray[np.float64]:
        """Mean squared standardised next-step error of each step (0 for the
        first ``window`` steps).  Higher = more anomalous."""
        errors, data = self._grid_errors(X)
        return errors if data is None else on_input(data, errors)

    def detect(self, series: npt.ArrayLike | pd.Series) -> pd.DataFrame:
        """Score every point of a univariate ``series`` and place alarms.

        Returns
        -------
        result : pandas.DataFrame
            On the input's index, columns ``value``, ``error`` (next-step
            error), ``score`` (``error / error_threshold_``: ``> 1`` flags;
            higher = more anomalous), ``is_anomaly`` and ``alarm`` (one per
            run of flagged points at its first observed cell, at most one
            per ``period_`` steps; a filled cell never alarms on its own).
        """
        if not self._is_series(series):
            raise ValueError("detect takes a univariate series (use prediction_error for 2-D input)")
        errors, data = self._grid_errors(series)
        score = errors / max(self.error_threshold_, 1e-12)
        columns = {
            "value": data.input_values,
            "error": errors,
            "score": score,
            "is_anomaly": (score > 1.0) & data.observed,
        }
        return input_frame(data, columns, grid_alarms(score, data, self.period_))

    def score_samples(self, X: npt.ArrayLike | pd.Series | pd.DataFrame) -> npt.NDArray[np.float64]:
        """``-prediction_error(X)``: lower = more abnormal."""
        return -self.prediction_error(X)

    def decision_function(self, X: npt.ArrayLike | pd.Series | pd.DataFrame) -> npt.NDArray[np.float64]:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: npt.ArrayLike | pd.Series | pd.DataFrame) -> npt.NDArray[np.int_]:
        """-1 for outliers (error above ``error_threshold_``), 1 otherwise."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def anomaly_score(self, X: npt.ArrayLike | pd.Series | pd.DataFrame) -> npt.NDArray[np.float64]:
        """``1 - 2 ** (-error / error_threshold_)`` in [0, 1): higher = more
        anomalous, 0.5 at the threshold."""
        error = self.prediction_error(X)
        return 1.0 - np.exp2(-error / max(self.error_threshold_, 1e-12))

    # ---------------------------------------------------------- persistence
    _FITTED = ("mean_", "scale_", "error_threshold_", "offset_", "train_loss_", "n_features_in_", "period_")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write parameters, weights and fitted state to ``path`` (torch format)."""
        check_is_fitted(self)
        torch = _torch()
        params = self.get_params()
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        state = {name: getattr(self, name) for name in self._FITTED}
        state["mean_"] = torch.from_numpy(self.mean_)
        state["scale_"] = torch.from_numpy(self.scale_)
        torch.save({"params": params, "fitted": state, "weights": self._model.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LSTMDetector:
        """Read a detector written by :meth:`save`."""
        torch = _torch()
        saved = torch.load(path, weights_only=True)
        detector = cls(**saved["params"])
        fitted = dict(saved["fitted"])
        fitted["mean_"] = fitted["mean_"].numpy()
        fitted["scale_"] = fitted["scale_"].numpy()
        detector.__dict__.update(fitted)
        detector._restore(saved["weights"])
        return detector

    def _restore(self, weights):
        model = _network(self.n_features_in_, self.hidden_size, self.n_layers)
        model.load_state_dict(weights)
        model.eval()
        self._model = model

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        if model is not None:
            state["_weights"] = model.state_dict()
        return state

    def __setstate__(self, state):
        weights = state.pop("_weights", None)
        self.__dict__.update(state)
        if weights is not None:
            self._restore(weights)
