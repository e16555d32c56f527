"""scikit-learn's estimator checks for every anomaly_fast estimator."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from anomaly_fast import ExtendedIsolationForest, IsolationForest

# As for scikit-learn's own IsolationForest: weights change how rows are
# drawn, so they are not equivalent to repeating or removing rows.
SAMPLE_WEIGHT_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight drives row sampling; not equivalent to repeating rows"
    ),
    "check_sample_weight_equivalence_on_sparse_data": "sparse input is rejected",
}

# ExtendedIsolationForest takes +-inf (a documented rule) but not NaN: the
# check wants an estimator without NaN support to refuse infinities too.
EIF_XFAIL = {
    "check_estimators_nan_inf": "infinities are accepted (documented rule); NaN is refused",
}


@parametrize_with_checks(
    [
        IsolationForest(n_estimators=20, random_state=0),
        ExtendedIsolationForest(n_estimators=20, random_state=0),
        ExtendedIsolationForest(n_estimators=20, extension_level=0, random_state=0),
        ExtendedIsolationForest(n_estimators=20, intercept="range", random_state=0),
    ],
    expected_failed_checks=lambda est: (
        SAMPLE_WEIGHT_XFAIL if isinstance(est, IsolationForest) else {**SAMPLE_WEIGHT_XFAIL, **EIF_XFAIL}
    ),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
