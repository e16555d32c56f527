"""Input validation at the scoring boundary, written once for the estimators
that score one row at a time in a service (LocalOutlierFactor, AnomalyEnsemble).

Small C-contiguous float64 batches take a fast path making the checks
``validate_data`` makes for such input (2-D, n_features_in_ columns, finite,
fitted, no feature names to check) without its per-call overhead; anything
else goes through ``validate_data`` and comes out C-contiguous float64.
:data:`POSITIONAL` lets a caller that maps features by name itself pass a
bare array to an estimator fitted with feature names, without the warning.
"""

from contextvars import ContextVar

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._checks import all_finite
from ._sklearn_compat import validate_estimator_params

__all__ = ["POSITIONAL", "by_position", "check_state_fields", "scoring_data", "scoring_input"]

FAST_PATH_MAX_ROWS = 1024  # larger batches: validate_data's cost is negligible

# True while a caller that maps features by name itself (the pipeline: its
# events are dicts keyed by feature name) passes our estimators a bare array
# whose columns are the fitted features in the order of feature_names_in_:
# then the array is not checked against the fitted names, and scikit-learn's
# "X does not have valid feature names" warning, meant for a user who may
# have mixed up columns, is not given.  Set and reset around each call with
# ``token = POSITIONAL.set(True)`` / ``POSITIONAL.reset(token)``: a context
# variable, so other threads (and asyncio tasks) are not affected.
POSITIONAL: ContextVar[bool] = ContextVar("anomaly_fast_positional_input", default=False)


def by_position(estimator, method):
    """``method`` (a scoring method of ``estimator``, or a function of X that
    calls them) for arrays whose columns are the estimator's features in
    order, as a caller that maps features by name builds them (the
    pipeline's events, the CLI's table columns).  An estimator fitted with
    feature names (``feature_names_in_``: fitted on a DataFrame, or loaded
    from the registry) warns on every bare array: ours are told the array is
    positional (:data:`POSITIONAL`, no cost to estimators without names), any
    other gets a DataFrame with those names."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return method
    if type(estimator).__module__.startswith("anomaly_fast."):

        def positional(X):
            token = POSITIONAL.set(True)
            try:
                return method(X)
            finally:
                POSITIONAL.reset(token)

        return positional
    import pandas as pd

    columns = list(names)
    return lambda X: method(pd.DataFrame(X, columns=columns, copy=False))


def scoring_data(estimator, X, **check_params):
    """``validate_data(estimator, X, reset=False, **check_params)``, except
    that a bare array given under :data:`POSITIONAL` is taken as holding the
    fitted features in order: the same checks of the array and of its number
    of features, no feature-name check."""
    if POSITIONAL.get() and "feature_names_in_" in estimator.__dict__ and not hasattr(X, "columns"):
        X = check_array(X, **check_params)
        if X.shape[1] != estimator.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(estimator).__name__} "
                f"is expecting {estimator.n_features_in_} features as input."
            )
        return X
    return validate_data(estimator, X, reset=False, **check_params)


def scoring_input(estimator, X, fitted_attribute, allow_nan=False):
    """``X`` checked for scoring by a fitted ``estimator`` (which sets
    ``fitted_attribute`` in ``fit``), as a C-contiguous float64 array;
    ``allow_nan``: NaN is accepted (+-inf still is not)."""
    if (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and 0 < X.shape[0] <= FAST_PATH_MAX_ROWS
        and X.flags.c_contiguous
        and fitted_attribute in estimator.__dict__
        and X.shape[1] == estimator.n_features_in_
        and ("feature_names_in_" not in estimator.__dict__ or POSITIONAL.get())
        and all_finite(X)
    ):
        return X
    check_is_fitted(estimator)
    return scoring_data(estimator, X, dtype=np.float64, order="C", ensure_all_finite="allow-nan" if allow_nan else True)


def check_state_fields(cls, state, fitted, optional=("feature_names_in_", "_sklearn_version")):
    """First checks of a pickled estimator state, common to the classes that
    validate what they restore: a dict; no field outside the parameters,
    ``fitted`` and ``optional``; every parameter present and valid; the
    ``fitted`` fields all present or all absent.  Returns (an unfitted
    ``cls`` with the state's parameters, whether the state is fitted).
    Raises ValueError naming the field."""
    name = cls.__name__
    if not isinstance(state, dict):
        raise ValueError(f"{name} state must be a dict, got {type(state).__name__}")
    params = tuple(cls._parameter_constraints)
    unknown = sorted(set(state) - set(params) - set(fitted) - set(optional), key=str)
    if unknown:
        raise ValueError(f"{name} state has unknown fields {unknown}")
    missing = [key for key in params if key not in state]
    if missing:
        raise ValueError(f"{name} state lacks parameters {missing}")
    probe = cls(**{key: state[key] for key in params})
    try:
        validate_estimator_params(probe)
    except ValueError as exc:
        raise ValueError(f"{name} state: {exc}") from None
    present = [key for key in fitted if key in state]
    if present and len(present) != len(fitted):
        raise ValueError(f"{name} state lacks fitted fields {sorted(set(fitted) - set(present))}")
    if not present and "feature_names_in_" in state:
        raise ValueError(f"{name} state: feature_names_in_ without a fitted model")
    return probe, bool(present)
