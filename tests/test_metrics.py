"""biosig.metrics (scikit-learn behind argument checks, plus challenge scores) against cases
worked by hand and independent references (scipy's Mann-Whitney U and bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import bootstrap, mannwhitneyu
from sklearn import metrics as skm

from biosig import metrics as M


@pytest.fixture(scope="module")
def multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 1.5 * np.eye(4)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p, p.argmax(1)


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)       # rounded: many ties
    return y, s


# A 3-class case worked by hand: rows true, columns predicted
#   [[1, 2, 0],      tp = [1, 1, 3], fn = [2, 1, 1], fp = [1, 2, 1], tn = [5, 5, 4]
#    [0, 1, 1],
#    [1, 0, 3]]
HAND_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
HAND_PRED = [0, 1, 1, 1, 2, 2, 2, 0, 2]


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(M.confusion_matrix(HAND_TRUE, HAND_PRED),
                                  [[1, 2, 0], [0, 1, 1], [1, 0, 3]])
    np.testing.assert_array_equal(M.confusion_matrix([1, 1], [1, 0], n_classes=3),
                                  [[0, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert M.confusion_matrix([0], [0]).dtype == np.int64


def test_report_by_hand():
    rep = M.classification_report(HAND_TRUE, HAND_PRED, n_classes=3)
    np.testing.assert_allclose(rep.sensitivity, [1 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(rep.ppv, [1 / 2, 1 / 3, 3 / 4])
    np.testing.assert_allclose(rep.specificity, [5 / 6, 5 / 7, 4 / 5])
    np.testing.assert_allclose(rep.npv, [5 / 7, 5 / 6, 4 / 5])
    np.testing.assert_allclose(rep.f1, [2 / 5, 2 / 5, 3 / 4])
    assert rep.macro_f1 == pytest.approx((2 / 5 + 2 / 5 + 3 / 4) / 3)
    assert rep.macro_specificity == pytest.approx((5 / 6 + 5 / 7 + 4 / 5) / 3)
    assert rep.accuracy == pytest.approx(5 / 9)
    # p_o = 5/9, p_e = (3*2 + 2*3 + 4*4) / 81 = 28/81
    assert rep.kappa == pytest.approx(17 / 53)
    assert M.cohen_kappa(HAND_TRUE, HAND_PRED) == pytest.approx(17 / 53)
    assert rep.support == [3, 2, 4] and rep.confusion == [[1, 2, 0], [0, 1, 1], [1, 0, 3]]
    assert all(isinstance(v, float) for v in rep.sensitivity + [rep.macro_f1, rep.kappa])


def test_undefined_class_metrics_are_nan():
    rep = M.classification_report([0, 0, 1], [0, 0, 0], n_classes=3)
    assert math.isnan(rep.sensitivity[2]) and math.isnan(rep.ppv[1])
    assert math.isnan(rep.f1[2]) and rep.f1[1] == 0.0       # 2 TP / (2 TP + FP + FN) = 0 / 1
    assert rep.support == [2, 1, 0]
    assert rep.macro_sensitivity == pytest.approx((1 + 0) / 2)   # NaN left out
    assert math.isnan(M.cohen_kappa([1, 1], [1, 1], n_classes=2))     # p_e = 1


# y = [1, 0, 1, 0, 1], scores [.9, .8, .8, .3, .1]: at thresholds .9, .8, .3, .1 the
# cumulative (TP, FP) are (1, 0), (2, 1), (2, 2), (3, 2) with 3 positives and 2 negatives.
ROC_Y, ROC_S = [1, 0, 1, 0, 1], [0.9, 0.8, 0.8, 0.3, 0.1]


def test_roc_curve_and_pr_auc_by_hand():
    fpr, tpr, thr = M.roc_curve(ROC_Y, ROC_S)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.8, 0.3, 0.1])
    # average precision: recall steps of 1/3 at precisions 1/1, 2/3 and 3/5
    assert M.pr_auc(ROC_Y, ROC_S) == pytest.approx(1 / 3 * (1 + 2 / 3 + 3 / 5))
    # AUC: of the 6 (positive, negative) pairs, 3 ranked right and 1 tied (.8, .8)
    assert M.roc_auc(ROC_Y, ROC_S) == pytest.approx(3.5 / 6)


def test_roc_auc_is_mann_whitney_u(binary):
    y, s = binary
    u = mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert M.roc_auc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))


def test_roc_auc_ovr_is_mean_of_mann_whitney_u(multiclass):
    y, p, _ = multiclass
    aucs = [mannwhitneyu(p[y == c, c], p[y != c, c]).statistic / ((y == c).sum() * (y != c).sum())
            for c in range(4)]
    assert M.roc_auc_ovr(y, p) == pytest.approx(np.mean(aucs))
    # a class absent from y_true (as in a bootstrap resample) is left out, not an error
    keep = y != 3
    assert M.roc_auc_ovr(y[keep], p[keep]) == pytest.approx(np.mean(
        [mannwhitneyu(p[keep & (y == c), c], p[keep & (y != c), c]).statistic
         / ((keep & (y == c)).sum() * (keep & (y != c)).sum()) for c in range(3)]))


def test_roc_auc_one_class_is_nan():
    assert math.isnan(M.roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))


def test_physionet2022_weighted_accuracy_by_hand():
    # classes 0 Present (w 5), 1 Unknown (w 3), 2 Absent (w 1)
    y = [0, 0, 1, 2, 2, 2]
    pred = [0, 2, 1, 2, 2, 0]
    # (5*1 + 3*1 + 1*2) / (5*2 + 3*1 + 1*3) = 10 / 16
    assert M.physionet2022_weighted_accuracy(y, pred, weights=[5, 3, 1]) == pytest.approx(10 / 16)


def test_physionet2016_macc_by_hand():
    y = [1, 1, 1, 1, 0, 0]
    pred = [1, 1, 1, 0, 0, 1]
    assert M.physionet2016_macc(y, pred) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_icbhi_score_by_hand():
    # normal 0, crackle 1, wheeze 2, both 3; exact class needed for abnormal cycles
    y = [0, 0, 0, 0, 1, 2, 3, 3]
    pred = [0, 0, 1, 0, 1, 3, 3, 0]
    s = M.icbhi_score(y, pred)
    assert s.specificity == pytest.approx(3 / 4)
    assert s.sensitivity == pytest.approx(2 / 4)
    assert s.score == pytest.approx(0.625)


def test_cinc2017_f1_matches_sklearn_mean_of_three(multiclass):
    y, _, pred = multiclass
    classes = ["N", "A", "O", "~"]
    f1 = skm.f1_score(y, pred, average=None, labels=range(4))
    assert M.cinc2017_f1(y, pred, classes=classes) == pytest.approx(f1[:3].mean())
    with pytest.raises(ValueError, match="lack"):
        M.cinc2017_f1(y, pred, classes=["N", "X", "O", "~"])


def test_eer_known_answers():
    # perfectly separated trials: EER 0; fully inverted: EER 1
    assert M.eer([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)
    assert M.eer([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # Gaussian target/non-target scores with d' = 2: EER = Phi(-1) ~ 0.1587
    rng = np.random.default_rng(0)
    n = 20000
    scores = np.r_[rng.normal(1, 1, n), rng.normal(-1, 1, n)]
    labels = np.r_[np.ones(n), np.zeros(n)]
    assert M.eer(labels, scores) == pytest.approx(0.1587, abs=0.01)


def test_bootstrap_ci_brackets_estimate_and_repeats(binary):
    y, s = binary
    a = M.bootstrap_ci(M.roc_auc, y, s, n_bootstrap=200, seed=3)
    b = M.bootstrap_ci(M.roc_auc, y, s, n_bootstrap=200, seed=3)
    assert a == b
    assert a.low <= a.estimate <= a.high
    assert a.estimate == pytest.approx(M.roc_auc(y, s))
    assert 0.02 < a.high - a.low < 0.3
    assert M.bootstrap_ci(M.roc_auc, y, s, n_bootstrap=200, seed=4) != a


@pytest.mark.parametrize("n", [40, 41])
def test_bootstrap_ci_equals_scipy_percentile_bootstrap(n):
    # scipy.stats.bootstrap draws the same resamples from default_rng(seed); paired too
    rng = np.random.default_rng(n)
    x, z = rng.normal(size=n), rng.normal(size=n) + 0.5
    ci = M.bootstrap_ci(lambda a, b: float(np.mean(b - a)), x, z, n_bootstrap=300, seed=7,
                        level=0.9)
    ref = bootstrap((x, z), lambda a, b, axis=-1: np.mean(b - a, axis=axis), paired=True,
                    method="percentile", n_resamples=300, confidence_level=0.9,
                    rng=np.random.default_rng(7)).confidence_interval
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert ci.n_undefined == 0 and ci.level == 0.9


def test_bootstrap_counts_undefined_resamples():
    ci = M.bootstrap_ci(M.roc_auc, np.array([0, 1]), np.array([0.2, 0.8]), n_bootstrap=50)
    assert ci.n_undefined > 0 and ci.estimate == 1.0


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="y_true has 2 items and y_pred 3"):
        M.confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="class indices must lie in"):
        M.confusion_matrix([0, 3], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="scores has shape"):
        M.roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="0 \\(negative\\) and 1"):
        M.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_true has shape \\(0,\\), expected"):
        M.classification_report([], [])
    with pytest.raises(ValueError, match="y_pred holds non-integer values"):
        M.cohen_kappa([0, 1], [0, 0.5])
    with pytest.raises(ValueError, match="arrays have \\[2, 3\\] items"):
        M.bootstrap_ci(M.roc_auc, [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="level is 1"):
        M.bootstrap_ci(M.roc_auc, [0, 1], [0.1, 0.2], level=1)


def test_bootstrap_cis_call_every_metric_on_the_same_resample(binary):
    y, s = binary
    seen = []

    def auc(a, b):
        seen.append((a, b))
        return M.roc_auc(a, b)

    def ap(a, b):
        assert seen[-1][0] is a and seen[-1][1] is b       # the same resampled arrays
        return M.pr_auc(a, b)

    cis = M.bootstrap_cis({"auc": auc, "ap": ap}, y, s, n_bootstrap=50, seed=1)
    assert len(seen) == 51                                 # 50 resamples + the estimate
    assert cis["auc"] == M.bootstrap_ci(M.roc_auc, y, s, n_bootstrap=50, seed=1)
    assert cis["ap"] == M.bootstrap_ci(M.pr_auc, y, s, n_bootstrap=50, seed=1)
