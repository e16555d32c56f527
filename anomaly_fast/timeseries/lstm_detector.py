"""Next-step LSTM prediction error as an anomaly score (needs torch)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LSTMDetector"]


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "LSTMDetector needs PyTorch: pip install 'anomaly_fast[deep]'"
        ) from exc
    return torch


def _network(n_features, hidden_size, n_layers):
    """An LSTM over a window followed by a linear read-out of the next step."""
    torch = _torch()

    class NextStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(n_features, hidden_size, n_layers, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, n_features)

        def forward(self, windows):
            hidden, _ = self.lstm(windows)
            return self.head(hidden[:, -1, :])

    return NextStep()


class LSTMDetector(OutlierMixin, BaseEstimator):
    """Anomalies as large next-step prediction errors of an LSTM.

    The rows of ``X`` are consecutive time steps (one column per variable;
    a 1-D array is one variable).  Each column is standardised with the
    training mean and standard deviation; an LSTM reads the previous
    ``window`` steps and predicts the next one; a step's error is the mean
    squared prediction error over the variables.  Train on normal data: the
    threshold is the ``quantile`` of the training errors.  The first
    ``window`` steps of any series have no history: their error is 0 (scored
    as normal).

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
        Steps of history fed to the LSTM.
    hidden_size : int >= 1, default=64
    n_layers : int >= 1, default=2
    epochs : int >= 1, default=10
    batch_size : int >= 1, default=64
    learning_rate : float > 0, default=1e-3
        Adam step size.
    quantile : float in (0, 1), default=0.99
        Training-error quantile used as the threshold.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling; fits with the same
        seed (and the same torch thread count) give identical models.
    progress_bar : bool, default=True
        Show a tqdm bar over the training epochs.

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
    }

    def __init__(
        self,
        window=32,
        hidden_size=64,
        n_layers=2,
        epochs=10,
        batch_size=64,
        learning_rate=1e-3,
        quantile=0.99,
        random_state=None,
        progress_bar=True,
    ):
        self.window = window
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.quantile = quantile
        self.random_state = random_state
        self.progress_bar = progress_bar

    # ------------------------------------------------------------------ input
    def _validate(self, X, reset):
        array = np.asarray(X)
        if array.ndim == 1:
            if not reset and getattr(self, "n_features_in_", 1) != 1:
                raise ValueError(
                    f"X is 1-D but the detector was fitted on {self.n_features_in_} features; "
                    f"Reshape your data to (n_samples, {self.n_features_in_})"
                )
            X = array.reshape(-1, 1)
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=np.float64,
            ensure_min_samples=self.window + 1,
        )

    def _windows(self, Z):
        """All (history, next step) pairs of a standardised series, as tensors."""
        torch = _torch()
        series = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
        history = series.unfold(0, self.window, 1)[:-1].transpose(1, 2).contiguous()
        return history, series[self.window :]

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
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

        X = self._validate(X, reset=True)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        history, target = self._windows((X - self.mean_) / self.scale_)

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _network(self.n_features_in_, self.hidden_size, self.n_layers)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        loss_fn = torch.nn.MSELoss()
        n_windows = history.shape[0]
        self.train_loss_ = []
        model.train()
        for _ in tqdm(range(self.epochs), desc="LSTMDetector", unit="epoch", disable=not self.progress_bar):
            order = torch.randperm(n_windows, generator=generator)
            total = 0.0
            for start in range(0, n_windows, self.batch_size):
                batch = order[start : start + self.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(history[batch]), target[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * batch.shape[0]
            self.train_loss_.append(total / n_windows)
        model.eval()
        self._model = model

        errors = self._errors(history, target)
        self.error_threshold_ = float(np.quantile(errors, self.quantile))
        self.offset_ = -self.error_threshold_
        return self

    # ---------------------------------------------------------------- scoring
    def _errors(self, history, target):
        torch = _torch()
        with torch.no_grad():
            chunks = [
                ((self._model(history[s : s + 4096]) - target[s : s + 4096]) ** 2).mean(dim=1)
                for s in range(0, history.shape[0], 4096)
            ]
        return torch.cat(chunks).double().numpy()

    def prediction_error(self, X):
        """Mean squared standardised next-step error of each step (0 for the
        first ``window`` steps).  Higher = more anomalous."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        history, target = self._windows((X - self.mean_) / self.scale_)
        return np.concatenate([np.zeros(self.window), self._errors(history, target)])

    def score_samples(self, X):
        """``-prediction_error(X)``: lower = more abnormal."""
        return -self.prediction_error(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """-1 for outliers (error above ``error_threshold_``), 1 otherwise."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def anomaly_score(self, X):
        """``1 - 2 ** (-error / error_threshold_)`` in [0, 1): higher = more
        anomalous, 0.5 at the threshold."""
        error = self.prediction_error(X)
        return 1.0 - np.exp2(-error / max(self.error_threshold_, 1e-12))

    # ---------------------------------------------------------- persistence
    _FITTED = ("mean_", "scale_", "error_threshold_", "offset_", "train_loss_", "n_features_in_")

    def save(self, path):
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
    def load(cls, path):
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
