"""biosig.metrics against scikit-learn and hand-computed challenge scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
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


def test_confusion_matrix_matches_sklearn(multiclass):
    y, _, pred = multiclass
    np.testing.assert_array_equal(M.confusion_matrix(y, pred, n_classes=4),
                                  skm.confusion_matrix(y, pred, labels=range(4)))


def test_report_matches_sklearn(multiclass):
    y, _, pred = multiclass
    rep = M.classification_report(y, pred, n_classes=4)
    np.testing.assert_allclose(rep.sensitivity, skm.recall_score(y, pred, average=None))
    np.testing.assert_allclose(rep.ppv, skm.precision_score(y, pred, average=None))
    np.testing.assert_allclose(rep.f1, skm.f1_score(y, pred, average=None))
    assert rep.macro_f1 == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert rep.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert rep.kappa == pytest.approx(skm.cohen_kappa_score(y, pred))
    # specificity and NPV of class c are the recall / precision of "not c"
    for c in range(4):
        assert rep.specificity[c] == pytest.approx(skm.recall_score(y != c, pred != c))
        assert rep.npv[c] == pytest.approx(skm.precision_score(y != c, pred != c))


def test_undefined_class_metrics_are_nan():
    rep = M.classification_report([0, 0, 1], [0, 0, 0], n_classes=3)
    assert math.isnan(rep.sensitivity[2]) and math.isnan(rep.ppv[1])
    assert rep.support == [2, 1, 0]


def test_roc_auc_pr_auc_and_curve_match_sklearn(binary):
    y, s = binary
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert M.pr_auc(y, s) == pytest.approx(skm.average_precision_score(y, s))
    fpr, tpr, thr = M.roc_curve(y, s)
    f2, t2, th2 = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    np.testing.assert_allclose(thr[1:], th2[1:])


def test_roc_auc_ovr_matches_sklearn(multiclass):
    y, p, _ = multiclass
    assert M.roc_auc_ovr(y, p) == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))


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
    assert a.estimate == pytest.approx(skm.roc_auc_score(y, s))
    assert 0.02 < a.high - a.low < 0.3


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
