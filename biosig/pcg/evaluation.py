"""Heart-sound detection scores of a segmentation against a reference: S1 and S2 sensitivity,
positive predictive value and F1 with a centre tolerance (:func:`compare_heart_sounds`,
:func:`evaluate_pcg_segmentation`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig.errors import InputError
from biosig.manifests.corpora.circor2022 import CIRCOR_SEGMENT_LABELS, read_circor_segmentation
from biosig.pcg import _kernels
from biosig.signal import Annotations

__all__ = ["HeartSoundCounts", "PcgSegmentEvaluation", "compare_heart_sounds",
           "evaluate_pcg_segmentation", "evaluate_pcg_folders", "as_state_intervals",
           "TOLERANCE_S"]

#: Largest distance between the centres of a reference and a detected sound that count as one
#: (Springer et al. 2016 use 60 ms).
TOLERANCE_S = 0.06
_STATE_OF_LABEL = {label: state for state, label in CIRCOR_SEGMENT_LABELS.items()}


@dataclass(frozen=True)
class HeartSoundCounts:
    """Matched (``tp``), extra (``fp``) and missed (``fn``) sounds of one kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: HeartSoundCounts) -> HeartSoundCounts:
        return HeartSoundCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def se(self) -> float:
        """Sensitivity ``tp / (tp + fn)`` (nan without reference sounds)."""
        n = self.tp + self.fn
        return self.tp / n if n else float("nan")

    @property
    def ppv(self) -> float:
        """Positive predictive value ``tp / (tp + fp)`` (nan without detections)."""
        n = self.tp + self.fp
        return self.tp / n if n else float("nan")

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)`` (nan when both are empty)."""
        n = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / n if n else float("nan")

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "se": self.se, "ppv": self.ppv,
                "f1": self.f1}


@dataclass(frozen=True)
class PcgSegmentEvaluation:
    """S1 and S2 counts pooled over recordings.

    Attributes
    ----------
    s1, s2 : HeartSoundCounts
    n_recordings : int
    """

    s1: HeartSoundCounts
    s2: HeartSoundCounts
    n_recordings: int = 1

    def __add__(self, other: PcgSegmentEvaluation) -> PcgSegmentEvaluation:
        return PcgSegmentEvaluation(self.s1 + other.s1, self.s2 + other.s2,
                                    self.n_recordings + other.n_recordings)

    def to_dict(self) -> dict:
        return {"n_recordings": self.n_recordings, "S1": self.s1.to_dict(),
                "S2": self.s2.to_dict()}

    def __str__(self) -> str:
        return (f"{self.n_recordings} recordings: S1 Se {self.s1.se:.4f} PPV {self.s1.ppv:.4f} "
                f"F1 {self.s1.f1:.4f}; S2 Se {self.s2.se:.4f} PPV {self.s2.ppv:.4f} "
                f"F1 {self.s2.f1:.4f}")


def as_state_intervals(segmentation, *, name: str = "segmentation") -> np.ndarray:
    """A segmentation as ``[start_s, end_s, state]`` rows.

    Parameters
    ----------
    segmentation : Annotations, np.ndarray [shape=(n, 3)] or PcgSegmentation
        Annotations labelled ``S1``/``systole``/``S2``/``diastole``/``unannotated`` (as
        :func:`biosig.manifests.read_circor_segmentation` gives), CirCor-style rows, or a
        segmenter's result.

    Returns
    -------
    np.ndarray [shape=(n, 3), dtype=float64]
    """
    if isinstance(segmentation, Annotations):
        bad = [lab for lab in segmentation.labels if lab not in _STATE_OF_LABEL]
        if bad:
            raise ValueError(f"{name}: label {bad[0]!r} is not a heart-cycle state; expected "
                             f"one of {', '.join(_STATE_OF_LABEL)}")
        iv = segmentation.intervals()
        st = np.array([_STATE_OF_LABEL[lab] for lab in segmentation.labels], dtype=np.float64)
        return np.column_stack([iv, st]) if len(st) else np.zeros((0, 3))
    if hasattr(segmentation, "intervals") and callable(segmentation.intervals):
        return np.asarray(segmentation.intervals(), dtype=np.float64)
    a = np.asarray(segmentation, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} has shape {a.shape}, expected (n, 3) rows of start_s, end_s, "
                         f"state")
    return a


def compare_heart_sounds(reference, detected, *,
                         tolerance_s: float = TOLERANCE_S) -> PcgSegmentEvaluation:
    """Count found, extra and missed S1 and S2 sounds of one recording.

    A reference sound is found when a detected sound of the same kind has its centre within
    ``tolerance_s`` of the reference's centre (each detection matches at most one reference,
    closest pairs first). Only the annotated stretch counts: detected sounds whose centre lies
    outside every annotated (non-zero state) reference interval are ignored.

    Parameters
    ----------
    reference, detected : Annotations, np.ndarray [shape=(n, 3)] or PcgSegmentation
        See :func:`as_state_intervals`; times in seconds.
    tolerance_s : float > 0
        Largest centre distance of a match (default 60 ms, Springer et al. 2016).

    Returns
    -------
    PcgSegmentEvaluation
        For one recording.

    References
    ----------
    Springer, D. B., Tarassenko, L. & Clifford, G. D. (2016). Logistic regression-HSMM-based
    heart sound segmentation. IEEE Trans. Biomed. Eng. 63(4), 822-832.
    """
    if not tolerance_s > 0:
        raise ValueError(f"tolerance_s is {tolerance_s!r}, expected a positive number of "
                         f"seconds")
    ref = as_state_intervals(reference, name="reference")
    det = as_state_intervals(detected, name="detected")
    ann = ref[ref[:, 2] > 0]
    counts = []
    for state in (1, 3):
        r = ref[ref[:, 2] == state]
        d = det[det[:, 2] == state]
        rc = np.sort(0.5 * (r[:, 0] + r[:, 1]))
        dc = np.sort(0.5 * (d[:, 0] + d[:, 1]))
        if ann.size:
            inside = ((dc[:, None] >= ann[None, :, 0]) & (dc[:, None] <= ann[None, :, 1])).any(1)
            dc = dc[inside]
        else:
            dc = dc[:0]
        tp = int(_kernels.match_centres_kernel(np.ascontiguousarray(rc),
                                               np.ascontiguousarray(dc), float(tolerance_s)))
        counts.append(HeartSoundCounts(tp, dc.size - tp, rc.size - tp))
    return PcgSegmentEvaluation(counts[0], counts[1], 1)


def evaluate_pcg_segmentation(pairs: Iterable, *,
                              tolerance_s: float = TOLERANCE_S) -> PcgSegmentEvaluation:
    """S1 and S2 Se, PPV and F1 pooled over recordings (:func:`compare_heart_sounds` on each
    ``(reference, detected)`` pair, counts summed).

    Parameters
    ----------
    pairs : iterable of (reference, detected)
    tolerance_s : float > 0

    Returns
    -------
    PcgSegmentEvaluation
    """
    total = PcgSegmentEvaluation(HeartSoundCounts(), HeartSoundCounts(), 0)
    for ref, det in pairs:
        total = total + compare_heart_sounds(ref, det, tolerance_s=tolerance_s)
    return total


def evaluate_pcg_folders(ref_dir, test_dir, *, tolerance_s: float = TOLERANCE_S
                         ) -> tuple[PcgSegmentEvaluation, dict[str, PcgSegmentEvaluation]]:
    """Score every segmentation ``.tsv`` of ``test_dir`` against the file of the same name in
    ``ref_dir`` (both CirCor's layout, searched recursively), pooled and per recording.

    Parameters
    ----------
    ref_dir, test_dir : str or PathLike
        Folders of reference and detected ``<record>.tsv`` files (e.g. CirCor's
        ``training_data`` and the output of ``biosig segment pcg``).
    tolerance_s : float > 0

    Returns
    -------
    pooled : PcgSegmentEvaluation
    per_record : dict of str to PcgSegmentEvaluation
        By record name (file name without ``.tsv``), sorted.

    Raises
    ------
    InputError
        A folder is missing, ``test_dir`` holds no ``.tsv``, a reference is missing or a file
        is malformed (the message names the file).
    """
    ref_root, test_root = Path(ref_dir), Path(test_dir)
    for d in (ref_root, test_root):
        if not d.is_dir():
            raise InputError(d, "folder not found")
    refs = {p.stem: p for p in ref_root.rglob("*.tsv")}
    per: dict[str, PcgSegmentEvaluation] = {}
    for p in sorted(test_root.rglob("*.tsv")):
        if p.stem not in refs:
            raise InputError(p, f"no reference {p.name} under {ref_root}")
        per[p.stem] = compare_heart_sounds(read_circor_segmentation(refs[p.stem]),
                                           read_circor_segmentation(p),
                                           tolerance_s=tolerance_s)
    if not per:
        raise InputError(test_root, "no .tsv segmentation files found")
    total = PcgSegmentEvaluation(HeartSoundCounts(), HeartSoundCounts(), 0)
    for ev in per.values():
        total = total + ev
    return total, per
