"""scikit-learn's estimator checks, run on SegMix as scikit-learn runs them on its own
estimators. All pass: no check is listed as an expected failure."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from segmix import SegMix, SegmixWarning


@parametrize_with_checks([SegMix(device="cpu")])
def test_sklearn_compatible(estimator, check):
    # The checks fit tiny random tables: warnings about their K range or few-valued columns
    # are expected there and say nothing about the estimator.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmixWarning)
        check(estimator)
