"""PNG plots of a run: learning curves, ROC curves, confusion matrix, Grad-CAM heat maps."""

from __future__ import annotations

import numpy as np

from biosig import metrics as M
from biosig.fileio import atomic_path

__all__ = ["plot_learning_curves", "plot_roc", "plot_confusion", "plot_grad_cam"]


def _figure():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
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


def plot_roc(targets, probs, classes, path, *, positive: int | None = None) -> None:
    """ROC curve of the positive class (binary) or one-vs-rest per class."""
    plt = _figure()
    t = np.asarray(targets)
    p = np.asarray(probs)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    which = [positive] if positive is not None else range(len(classes))
    for c in which:
        y = (t == c).astype(int)
        if y.min() == y.max():
            continue
        fpr, tpr, _ = M.roc_curve(y, p[:, c])
        ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {M.roc_auc(y, p[:, c]):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity")
    ax.set_title("ROC (test)")
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
