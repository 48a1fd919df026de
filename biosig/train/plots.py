"""PNG plots of a run: learning curves, ROC and PR curves, confusion matrix, Grad-CAM heat maps,
and the validation report's reliability diagram, subgroup forest plot and drift histogram."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve

from biosig import metrics as M
from biosig.fileio import atomic_path

__all__ = ["plot_learning_curves", "plot_roc", "plot_confusion", "plot_grad_cam", "plot_pr",
           "plot_reliability", "plot_subgroups", "plot_drift"]


def _figure():
    import matplotlib  # the backend is set at the first plot, not when this module is imported
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # after the backend is set
    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


def plot_learning_curves(history: list[dict], path, *, monitor: str) -> None:
    """Train/valid loss and the monitored validation metric per epoch."""
    plt = _figure()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["valid_loss"] for h in history], "o-", label="valid")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(ep, [h["valid"].get(monitor, np.nan) for h in history], "o-", color="C2")
    b.set_xlabel("epoch"), b.set_ylabel(f"valid {monitor}"), b.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _one_vs_rest(targets, probs, classes, positive: int | None):
    """(class index, 0/1 targets, that class's probabilities) for the positive class (binary)
    or each class (one-vs-rest), leaving out a class that is all or none of the items."""
    t, p = np.asarray(targets), np.asarray(probs)
    for c in ([positive] if positive is not None else range(len(classes))):
        y = (t == c).astype(int)
        if y.min() != y.max():
            yield c, y, p[:, c]


def plot_roc(targets, probs, classes, path, *, positive: int | None = None,
             title: str = "ROC (test)") -> None:
    """ROC curve of the positive class (binary) or one-vs-rest per class."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for c, y, pc in _one_vs_rest(targets, probs, classes, positive):
        fpr, tpr, _ = M.roc_curve(y, pc)
        ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {M.roc_auc(y, pc):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity")
    ax.set_title(title)
    if ax.lines[:-1]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_confusion(confusion, classes, path, *, title: str = "confusion (test)") -> None:
    """Confusion matrix with counts (rows true, columns predicted)."""
    plt = _figure()
    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(classes), 1.0 + 0.8 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_grad_cam(cam, classes, path, *, hop_s: float, title: str = "") -> None:
    """PNG: the input features, and the heat map over them (``cam``: a
    :class:`biosig.train.inference.GradCam`)."""
    plt = _figure()
    F, T = cam.features.shape
    extent = (0, T * hop_s, 0, F)
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    a.imshow(cam.features, origin="lower", aspect="auto", extent=extent, cmap="magma")
    a.set_ylabel("feature bin"), a.set_title(title or "input features")
    b.imshow(cam.features, origin="lower", aspect="auto", extent=extent, cmap="gray")
    b.imshow(cam.heat, origin="lower", aspect="auto", extent=extent, cmap="jet", alpha=0.45,
             vmin=0, vmax=1)
    b.set_xlabel("time in window (s)"), b.set_ylabel("feature bin")
    b.set_title(f"{cam.method}: class {classes[cam.target]} "
                f"(p = {cam.probs[cam.target]:.2f})")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_pr(targets, probs, classes, path, *, positive: int | None = None,
            title: str = "precision-recall (test)") -> None:
    """Precision-recall curve of the positive class (binary) or one-vs-rest per class, with
    each class's prevalence as a dotted line (a random ranking)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for c, y, pc in _one_vs_rest(targets, probs, classes, positive):
        prec, rec, _ = precision_recall_curve(y, pc)
        line, = ax.plot(rec, prec, label=f"{classes[c]} (AP {M.pr_auc(y, pc):.2f})")
        ax.axhline(y.mean(), color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("sensitivity (recall)"), ax.set_ylabel("PPV (precision)")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.set_title(title)
    if ax.lines:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_reliability(curves: dict, path, *, title: str = "reliability (test)",
                     xlabel: str = "predicted probability") -> None:
    """Reliability diagram: observed frequency against mean predicted probability per bin,
    one line per entry of ``curves`` (label -> :class:`biosig.calibration.ReliabilityBins`),
    with the bin counts of the first below."""
    plt = _figure()
    fig, (a, b) = plt.subplots(2, 1, figsize=(4.8, 5.6), sharex=True,
                               gridspec_kw={"height_ratios": [3, 1]})
    a.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
    for label, bins in curves.items():
        ok = bins.count > 0
        a.plot(bins.mean_predicted[ok], bins.observed[ok], "o-", ms=4, label=label)
    a.set_ylabel("observed frequency"), a.set_xlim(0, 1), a.set_ylim(0, 1)
    a.set_title(title), a.legend(fontsize=8, loc="best"), a.grid(alpha=0.3)
    first = next(iter(curves.values()))
    centers = (first.edges[:-1] + first.edges[1:]) / 2
    b.bar(centers, first.count, width=np.diff(first.edges) * 0.9, color="C0")
    b.set_xlabel(xlabel), b.set_ylabel("items")
    b.set_yscale("log" if first.count.max() > 20 * max(first.count[first.count > 0].min(), 1)
                 else "linear")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_subgroups(rows: list[tuple], overall: float, path, *, metric: str) -> None:
    """Forest plot: one row per subgroup ``(label, estimate, low, high, n[, below])``, the
    overall estimate as a vertical line; rows flagged ``below`` (default: the interval lies
    below the overall estimate) in red."""
    plt = _figure()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.32 * n))
    for i, (_, est, lo, hi, _n, *flag) in enumerate(rows):
        y = n - 1 - i
        below = flag[0] if flag else bool(np.isfinite(hi) and hi < overall)
        color = "C3" if below else "C0"
        if np.isfinite(est):
            ax.errorbar(est, y, xerr=[[est - lo], [hi - est]] if np.isfinite(lo) else None,
                        fmt="o", color=color, ms=4, capsize=2)
    ax.axvline(overall, color="k", ls=":", lw=1)
    ax.set_yticks(range(n), [f"{r[0]} (n={r[4]})" for r in rows][::-1], fontsize=8)
    ax.set_xlabel(f"{metric} (95 % CI); dotted: all test items; red: flagged")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_drift(reference_scores, scores: dict, threshold: float, path, *,
               title: str = "distance from the training data") -> None:
    """Histograms of out-of-distribution scores: the reference's held-out recordings and each
    entry of ``scores`` (label -> array), with the flag threshold."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    allv = np.concatenate([np.asarray(reference_scores, float)]
                          + [np.asarray(v, float) for v in scores.values()])
    hi = float(np.quantile(allv, 0.99)) * 1.1 if allv.size else 1.0
    bins = np.linspace(0, max(hi, threshold * 1.2), 40)
    ax.hist(np.clip(reference_scores, 0, bins[-1]), bins=bins, density=True, alpha=0.5,
            label="training data, held out")
    for i, (label, v) in enumerate(scores.items()):
        ax.hist(np.clip(v, 0, bins[-1]), bins=bins, density=True, alpha=0.5, label=label,
                color=f"C{i + 1}")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"flag threshold {threshold:.1f}")
    ax.set_xlabel("ood_score (Mahalanobis distance of feature statistics; last bin: beyond)")
    ax.set_ylabel("density"), ax.set_title(title), ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
