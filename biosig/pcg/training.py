"""Training of the logistic-regression HSMM segmenter on annotated recordings
(:func:`train_pcg_segmenter`, :func:`fit_pcg_segmenter`) and reading CirCor's annotated
recordings from a manifest (:func:`circor_segmentation_examples`)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from biosig.errors import InputError
from biosig.io import load
from biosig.manifests import read_circor_segmentation, read_manifest
from biosig.pcg.evaluation import as_state_intervals
from biosig.pcg.features import FEATURE_FS, pcg_envelopes
from biosig.pcg.segment import PcgSegmenterWeights, stack_context
from biosig.validate import check_fs

__all__ = ["train_pcg_segmenter", "fit_pcg_segmenter", "reference_frame_states",
           "circor_segmentation_examples", "DEFAULT_CONTEXT", "DEFAULT_HIDDEN"]

#: Frame offsets stacked into one observation (at 50 Hz: -240 ms ... +240 ms).
DEFAULT_CONTEXT = (-12, -10, -8, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 8, 10, 12)
#: Hidden layers of the emission model (``()``: Springer's logistic regression).
DEFAULT_HIDDEN = (64, 32)


def reference_frame_states(reference, *, n_frames: int, fs: float = FEATURE_FS) -> np.ndarray:
    """The reference state at the centre of each frame (0 outside the annotated stretch).

    Parameters
    ----------
    reference : Annotations or np.ndarray [shape=(n, 3)]
        See :func:`biosig.pcg.as_state_intervals`.
    n_frames : int
    fs : float
        Frame rate in Hz.

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=int8]
    """
    fs = check_fs(fs)
    iv = as_state_intervals(reference, name="reference")
    out = np.zeros(n_frames, dtype=np.int8)
    centres = (np.arange(n_frames) + 0.5) / fs
    for start, end, state in iv:
        if state > 0:
            out[(centres >= start) & (centres < end)] = int(state)
    return out


def _visits(iv: np.ndarray) -> Iterator[tuple[int, float]]:
    """(state, duration_s) of every complete visit: not the first or last annotated one, nor
    one next to an unannotated stretch."""
    for k in range(1, len(iv) - 1):
        if iv[k, 2] > 0 and iv[k - 1, 2] > 0 and iv[k + 1, 2] > 0:
            yield int(iv[k, 2]), float(iv[k, 1] - iv[k, 0])


def _fit_durations(references: Sequence[np.ndarray]) -> dict:
    """Mean and spread of the S1 and S2 lengths; within-recording spread of systole; diastole's
    within-recording spread as ``frac * mean + s`` (least squares over recordings)."""
    s1, s2, sys_dev, dia_mean, dia_sd = [], [], [], [], []
    for iv in references:
        per = {1: [], 2: [], 3: [], 4: []}
        for state, dur in _visits(iv):
            per[state].append(dur)
        s1 += per[1]
        s2 += per[3]
        if len(per[2]) >= 2:
            sys_dev += list(np.asarray(per[2]) - np.median(per[2]))
        if len(per[4]) >= 3:
            dia_mean.append(float(np.mean(per[4])))
            dia_sd.append(float(np.std(per[4])))
    if len(s1) < 2 or len(s2) < 2 or len(dia_mean) < 2:
        raise ValueError("references hold too few complete heart cycles to fit the duration "
                         "model (need S1, S2 and diastole visits in several recordings)")
    a = np.column_stack([dia_mean, np.ones(len(dia_mean))])
    frac, offset = np.linalg.lstsq(a, np.asarray(dia_sd), rcond=None)[0]
    return {"s1_mean_s": float(np.mean(s1)), "s1_std_s": float(np.std(s1)),
            "s2_mean_s": float(np.mean(s2)), "s2_std_s": float(np.std(s2)),
            "systole_std_s": float(np.std(sys_dev)) if sys_dev else 0.02,
            "diastole_std_frac": float(max(frac, 0.0)), "diastole_std_s": float(max(offset, 0.0))}


def fit_pcg_segmenter(envelopes: Sequence[np.ndarray], frame_states: Sequence[np.ndarray],
                      references: Sequence, *, context: Sequence[int] = DEFAULT_CONTEXT,
                      c: float = 1.0, hidden: Sequence[int] = DEFAULT_HIDDEN,
                      max_frames: int | None = 400_000, emission_scale: float = 1.0, seed: int = 0,
                      meta: dict | None = None) -> PcgSegmenterWeights:
    """Fit the emission model and the duration model from precomputed envelopes.

    Parameters
    ----------
    envelopes : sequence of np.ndarray [shape=(4, n_frames_i)]
        :attr:`PcgEnvelopes.values` of each recording.
    frame_states : sequence of np.ndarray [shape=(n_frames_i,)]
        Reference state per frame (:func:`reference_frame_states`); frames with state 0 are not
        used.
    references : sequence of Annotations or np.ndarray [shape=(n, 3)]
        The reference segmentations (for the duration model).
    context : sequence of int
        Frame offsets stacked into one observation.
    c : float > 0
        Inverse regularisation strength of the logistic regression (scikit-learn's ``C``);
        for a perceptron the L2 penalty is ``1 / (c * n_frames)``.
    hidden : sequence of int
        Hidden layer sizes: empty for the logistic regression of Springer et al. (2016), else
        a multilayer perceptron (ReLU, Adam, early stopping on 10 % of the frames).
    max_frames : int, optional
        Subsample the training frames to at most this many (uniformly, ``seed``).
    emission_scale : float > 0
        Stored in the weights (:attr:`PcgSegmenterWeights.emission_scale`); choose it on
        validation recordings.
    seed : int
    meta : dict, optional
        Provenance stored with the weights.

    Returns
    -------
    PcgSegmenterWeights
    """
    if len(envelopes) != len(frame_states) or not len(envelopes):
        raise ValueError(f"envelopes ({len(envelopes)}) and frame_states ({len(frame_states)}) "
                         f"must be non-empty and of the same length")
    if not c > 0:
        raise ValueError(f"c is {c!r}, expected a positive number")
    context = tuple(int(x) for x in context)
    xs, ys = [], []
    for env, st in zip(envelopes, frame_states, strict=True):
        st = np.asarray(st)
        keep = st > 0
        if keep.any():
            xs.append(stack_context(np.asarray(env, dtype=np.float64), context)[:, keep].T)
            ys.append(st[keep])
    x = np.concatenate(xs)
    y = np.concatenate(ys).astype(np.int64)
    if max_frames is not None and y.size > max_frames:
        pick = np.random.default_rng(seed).choice(y.size, max_frames, replace=False)
        x, y = x[pick], y[pick]
    if set(np.unique(y)) != {1, 2, 3, 4}:
        raise ValueError(f"reference frames hold states {sorted(set(np.unique(y)))}, expected "
                         f"all of 1-4")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    if hidden:
        clf = MLPClassifier(hidden_layer_sizes=tuple(int(h) for h in hidden),
                            alpha=1.0 / (c * y.size), early_stopping=True, random_state=seed,
                            max_iter=200, batch_size=512)
        clf.fit(z, y)
        layers = tuple((w.T.astype(np.float64), b.astype(np.float64))
                       for w, b in zip(clf.coefs_, clf.intercepts_, strict=True))
    else:
        clf = LogisticRegression(C=c, max_iter=500)
        clf.fit(z, y)
        layers = ((clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)),)
    if list(clf.classes_) != [1, 2, 3, 4]:
        raise ValueError(f"classes {list(clf.classes_)}, expected [1, 2, 3, 4]")
    prior = np.bincount(y, minlength=5)[1:] / y.size
    refs = [as_state_intervals(r, name="reference") for r in references]
    info = {"frames": int(y.size)}
    info.update(meta or {})
    info.update({"emission": "mlp" if hidden else "logistic_regression",
                 "hidden": [int(h) for h in hidden], "c": c})
    return PcgSegmenterWeights(context, mean, scale, layers, np.log(prior),
                               _fit_durations(refs), emission_scale, info)


def train_pcg_segmenter(recordings: Iterable, *, context: Sequence[int] = DEFAULT_CONTEXT,
                        c: float = 1.0, hidden: Sequence[int] = DEFAULT_HIDDEN,
                        max_frames: int | None = 400_000, seed: int = 0) -> PcgSegmenterWeights:
    """Train the Springer (2016) segmenter on annotated recordings.

    Parameters
    ----------
    recordings : iterable of (signal, fs, reference)
        ``signal`` one PCG channel ``(n_samples,)`` at ``fs`` Hz; ``reference`` its
        segmentation (Annotations from :func:`biosig.manifests.read_circor_segmentation`, or
        ``[start_s, end_s, state]`` rows). :func:`circor_segmentation_examples` yields them from
        a CirCor manifest.
    context, c, hidden, max_frames, seed
        See :func:`fit_pcg_segmenter`.

    Returns
    -------
    PcgSegmenterWeights
        Save with :meth:`PcgSegmenterWeights.save`, use with ``pcg_segment(...,
        weights=...)``.

    References
    ----------
    Springer, D. B., Tarassenko, L. & Clifford, G. D. (2016). Logistic regression-HSMM-based
    heart sound segmentation. IEEE Trans. Biomed. Eng. 63(4), 822-832.
    """
    t0 = time.perf_counter()
    envs, states, refs = [], [], []
    for signal, fs, reference in recordings:
        env = pcg_envelopes(signal, fs=fs)
        envs.append(env.values)
        st = reference_frame_states(reference, n_frames=env.n_frames, fs=env.fs)
        st[~env.usable] = 0
        states.append(st)
        refs.append(reference)
    w = fit_pcg_segmenter(envs, states, refs, context=context, c=c, hidden=hidden,
                          max_frames=max_frames, seed=seed, meta={"recordings": len(envs)})
    w.meta["training_time_s"] = round(time.perf_counter() - t0, 1)
    return w


def circor_segmentation_examples(manifest, *, split: str | None = "train", root=None,
                                 on_error: str = "raise") -> Iterator[tuple]:
    """``(signal, fs, reference, record_id)`` for each CirCor recording of a manifest split.

    Parameters
    ----------
    manifest : str or PathLike
        JSONL manifest written by ``biosig manifest build circor2022``.
    split : str, optional
        Keep only this split (``"train"``, ``"valid"``, ``"test"``; None: all).
    root : str or PathLike, optional
        Folder the manifest's relative paths start from (default: the manifest's folder or the
        path recorded in it).

    Yields
    ------
    (np.ndarray [shape=(n_samples,)], float, Annotations, str)
        Recordings without a segmentation file are skipped.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error is {on_error!r}, expected 'raise' or 'skip'")
    mpath = Path(manifest)
    for rec in read_manifest(mpath):
        if split is not None and rec.split != split:
            continue
        seg = (rec.annotations or {}).get("segmentation")
        if not seg:
            continue
        wav = rec.resolve_path(root, manifest_dir=mpath.parent)
        tsv = Path(seg) if Path(seg).is_absolute() else wav.parent / Path(seg).name
        try:
            ref = read_circor_segmentation(tsv)
        except InputError as exc:
            if on_error != "skip":
                raise
            warnings.warn(f"skipped: {exc}", stacklevel=2)
            continue
        sig = load(wav, annotations=False)
        yield sig.data[0], sig.fs, ref, rec.id
