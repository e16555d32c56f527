"""Input validation at the scoring boundary, written once for the estimators
that score one row at a time in a service (LocalOutlierFactor, AnomalyEnsemble).

Small C-contiguous float64 batches take a fast path making the checks
``validate_data`` makes for such input (2-D, n_features_in_ columns, finite,
fitted, no feature names to check) without its per-call overhead; anything
else goes through ``validate_data`` and comes out C-contiguous float64.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checks import all_finite
from ._sklearn_compat import validate_estimator_params

__all__ = ["check_state_fields", "scoring_input"]

FAST_PATH_MAX_ROWS = 1024  # larger batches: validate_data's cost is negligible


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
        and "feature_names_in_" not in estimator.__dict__
        and all_finite(X)
    ):
        return X
    check_is_fitted(estimator)
    return validate_data(
        estimator,
        X,
        dtype=np.float64,
        order="C",
        reset=False,
        ensure_all_finite="allow-nan" if allow_nan else True,
    )


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
