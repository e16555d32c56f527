"""The only door to scikit-learn's private API.

Every name that scikit-learn does not promise to keep (``sklearn.utils._param_validation``,
``sklearn.base._fit_context``, ``_check_sample_weight``, ``_BaseComposition``,
``BaseEstimator._validate_params``) is imported here and nowhere else, with a shim where
a keyword or a location changed between the oldest supported release (1.6) and the newest.
A new scikit-learn that moves one of them breaks this file only; CI runs the suite on both
ends of the supported range (``.ci/run``).
"""

import inspect

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "HasMethods",
    "Interval",
    "RealNotInt",
    "StrOptions",
    "BaseComposition",
    "check_sample_weight",
    "fit_context",
    "validate_estimator_params",
    "validate_parameter_constraints",
    "validate_params",
]

#: ``@fit_context(prefer_skip_nested_validation=...)``: validates ``_parameter_constraints``
#: once at the top of ``fit`` (scikit-learn's ``_fit_context``).
fit_context = _fit_context

#: Base of meta-estimators whose parameters include a list of named sub-estimators
#: (``_get_params``/``_set_params`` for ``get_params``/``set_params``).
BaseComposition = _BaseComposition

# scikit-learn renamed ``only_non_negative`` to ``ensure_non_negative`` (1.6); accept both.
_NON_NEGATIVE_KW = (
    "ensure_non_negative"
    if "ensure_non_negative" in inspect.signature(_check_sample_weight).parameters
    else "only_non_negative"
)


def check_sample_weight(sample_weight, X, *, dtype=None, non_negative=False):
    """``sample_weight`` validated against ``X`` as a float array of ``len(X)`` values
    (scikit-learn's ``_check_sample_weight``), negative weights refused if asked."""
    return _check_sample_weight(sample_weight, X, dtype=dtype, **{_NON_NEGATIVE_KW: non_negative})


def validate_estimator_params(estimator):
    """Check ``estimator``'s parameters against its ``_parameter_constraints``
    (scikit-learn's private ``BaseEstimator._validate_params``); raises
    ``InvalidParameterError`` (a ``ValueError`` and ``TypeError``) naming the parameter."""
    estimator._validate_params()
