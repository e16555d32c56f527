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

__all__ = ["scoring_input"]

FAST_PATH_MAX_ROWS = 1024  # larger batches: validate_data's cost is negligible


def scoring_input(estimator, X, fitted_attribute):
    """``X`` checked for scoring by a fitted ``estimator`` (which sets
    ``fitted_attribute`` in ``fit``), as a C-contiguous float64 array."""
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
    return validate_data(estimator, X, dtype=np.float64, order="C", reset=False)
