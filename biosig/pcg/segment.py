"""Heart-cycle segmentation of phonocardiograms: :func:`pcg_segment` (S1, systole, S2,
diastole) with the hidden semi-Markov model of Springer et al. (2016) (logistic-regression or
small-MLP emissions), and its trained parameters :class:`PcgSegmenterWeights`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from biosig.errors import ConfigError, InputError
from biosig.fileio import write_text_atomic
from biosig.manifests.corpora.circor2022 import CIRCOR_SEGMENT_LABELS
from biosig.pcg import _kernels
from biosig.pcg.features import (
    FEATURE_FS,
    MIN_FS,
    HeartCycle,
    PcgEnvelopes,
    heart_cycle_candidates,
    pcg_envelopes,
)
from biosig.signal import Annotations, signal_data
from biosig.validate import check_fs

__all__ = ["pcg_segment", "PcgSegmentation", "PcgSegmenterWeights", "STATE_LABELS", "METHODS",
           "DEFAULT_WEIGHTS", "states_to_intervals", "MIN_LABELLED_S",
           "decode_pcg_states"]

METHODS = ("springer2016",)
#: State codes of the output, those of CirCor's ``.tsv`` files (0: not labelled).
STATE_LABELS = CIRCOR_SEGMENT_LABELS
#: Name of the weights file shipped in ``biosig/pcg/weights/``.
DEFAULT_WEIGHTS = "springer2016_circor2022.json"
#: Layout tag of the weights files.
FORMAT = "biosig.pcg.springer2016/2"
DURATION_KEYS = ("s1_mean_s", "s1_std_s", "s2_mean_s", "s2_std_s", "systole_std_s",
                 "diastole_std_frac", "diastole_std_s")
#: Usable stretches shorter than this are left unlabelled (state 0).
MIN_LABELLED_S = 1.0


@dataclass(frozen=True)
class PcgSegmenterWeights:
    """Trained parameters of the segmenter: the emission model (a multinomial logistic
    regression, or a small multilayer perceptron) and the duration model.

    Attributes
    ----------
    context : tuple of int
        Frame offsets whose envelopes are stacked into one observation (``(0,)``: the frame
        alone, as in Springer et al. 2016).
    feature_mean, feature_scale : np.ndarray [shape=(4 * len(context),)]
        Standardisation of the stacked observation.
    layers : tuple of (np.ndarray [shape=(n_out, n_in)], np.ndarray [shape=(n_out,)])
        Affine layers, ReLU between them, softmax over the last one's 4 outputs (S1, systole,
        S2, diastole). One layer is the logistic regression of Springer et al. (2016).
    log_prior : np.ndarray [shape=(4,)]
        Log frequency of each state in the training frames; the emission is the scaled
        likelihood ``log P(state | o) - log P(state)``.
    durations : dict
        ``s1_mean_s``, ``s1_std_s``, ``s2_mean_s``, ``s2_std_s`` (seconds),
        ``systole_std_s``, ``diastole_std_frac``, ``diastole_std_s`` (the diastole's standard
        deviation is ``frac * mean + s``).
    emission_scale : float
        Weight of the log emissions against the log duration probabilities in the decoder
        (below 1 when neighbouring frames' observations overlap and their emissions are not
        independent; chosen on validation recordings).
    meta : dict
        Provenance: corpus, split, recordings, frames, regularisation, training time.
    """

    context: tuple
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    layers: tuple
    log_prior: np.ndarray
    durations: dict
    emission_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready layout (arrays as nested lists, 8 significant digits)."""
        def short(a):
            return np.vectorize(lambda v: float(f"{v:.8g}"), otypes=[float])(a).tolist()
        return {"format": FORMAT, "context": list(self.context),
                "feature_mean": short(self.feature_mean),
                "feature_scale": short(self.feature_scale),
                "layers": [{"weight": short(w), "bias": short(b)} for w, b in self.layers],
                "log_prior": self.log_prior.tolist(), "durations": dict(self.durations),
                "emission_scale": self.emission_scale, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "weights") -> PcgSegmenterWeights:
        """Weights from :meth:`to_dict`'s layout; :class:`~biosig.errors.InputError` naming
        ``where`` when the layout or the shapes are wrong."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}, expected {FORMAT!r}")
            context = tuple(int(c) for c in d["context"])
            layers = tuple((np.asarray(x["weight"], dtype=np.float64),
                            np.asarray(x["bias"], dtype=np.float64)) for x in d["layers"])
            w = cls(context, np.asarray(d["feature_mean"], dtype=np.float64),
                    np.asarray(d["feature_scale"], dtype=np.float64), layers,
                    np.asarray(d["log_prior"], dtype=np.float64),
                    {k: float(v) for k, v in d["durations"].items()},
                    float(d["emission_scale"]), dict(d.get("meta", {})))
            if not w.emission_scale > 0:
                raise ValueError(f"emission_scale {w.emission_scale}, expected > 0")
            n_in = 4 * len(context)
            if w.feature_mean.shape != (n_in,) or w.feature_scale.shape != (n_in,) \
                    or w.log_prior.shape != (4,) or not layers:
                raise ValueError("array shapes do not agree with the context")
            for wt, bias in layers:
                if wt.ndim != 2 or wt.shape[1] != n_in or bias.shape != (wt.shape[0],):
                    raise ValueError(f"layer of shape {wt.shape} after {n_in} inputs")
                n_in = wt.shape[0]
            if n_in != 4:
                raise ValueError(f"{n_in} outputs, expected 4 states")
            missing = [k for k in DURATION_KEYS if k not in w.durations]
            if missing:
                raise ValueError(f"durations lack {', '.join(missing)}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(where, f"not biosig PCG segmenter weights ({exc})") from None
        return w

    def save(self, path) -> Path:
        """Write the weights as JSON, atomically."""
        return write_text_atomic(Path(os.fspath(path)), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path=None) -> PcgSegmenterWeights:
        """Read weights from ``path`` (default: the file shipped with biosig)."""
        if path is None:
            ref = resources.files("biosig.pcg").joinpath("weights", DEFAULT_WEIGHTS)
            text, where = ref.read_text(encoding="utf-8"), str(ref)
        else:
            p = Path(os.fspath(path))
            if not p.is_file():
                raise InputError(p, "weights file not found")
            text, where = p.read_text(encoding="utf-8"), str(p)
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"not JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(d, where=where)

    def posteriors(self, envelopes: np.ndarray) -> np.ndarray:
        """``P(state | observation)`` of every frame.

        Parameters
        ----------
        envelopes : np.ndarray [shape=(4, n_frames)]

        Returns
        -------
        np.ndarray [shape=(4, n_frames)]
        """
        obs = stack_context(envelopes, self.context)
        h = (obs - self.feature_mean[:, None]) / self.feature_scale[:, None]
        for k, (wt, bias) in enumerate(self.layers):
            h = wt @ h + bias[:, None]
            if k + 1 < len(self.layers):
                h = np.maximum(h, 0.0)
        logits = h - h.max(axis=0, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=0, keepdims=True)


def stack_context(envelopes: np.ndarray, context) -> np.ndarray:
    """Stack the envelopes of frames ``t + c`` for each offset ``c`` (edges repeated).

    Parameters
    ----------
    envelopes : np.ndarray [shape=(n_env, n_frames)]
    context : sequence of int

    Returns
    -------
    np.ndarray [shape=(n_env * len(context), n_frames)]
    """
    n = envelopes.shape[1]
    idx = np.arange(n)
    return np.concatenate([envelopes[:, np.clip(idx + c, 0, n - 1)] for c in context], axis=0)


@dataclass(frozen=True)
class PcgSegmentation:
    """Heart-cycle segmentation of one PCG.

    Attributes
    ----------
    states : np.ndarray [shape=(n_samples,), dtype=int8]
        Per-sample state: 1 S1, 2 systole, 3 S2, 4 diastole, 0 not labelled (too short,
        silence, clipping).
    fs : float
        Sampling rate of ``states`` (the input's) in Hz.
    frame_states : np.ndarray [shape=(n_frames,), dtype=int8]
        The same states at the 50 Hz frame rate they were decoded at.
    annotations : biosig.signal.Annotations
        One event per state visit, labels ``S1``/``systole``/``S2``/``diastole`` (state 0
        stretches left out).
    heart_cycle : HeartCycle or None
        Heart rate and systolic interval used by the duration model (None when nothing was
        labelled).
    method : str
    """

    states: np.ndarray
    fs: float
    frame_states: np.ndarray
    annotations: Annotations
    heart_cycle: HeartCycle | None
    method: str = "springer2016"

    def intervals(self) -> np.ndarray:
        """Runs of equal state covering the whole recording as ``[start_s, end_s, state]``
        rows ``[shape=(n_runs, 3)]`` (CirCor's ``.tsv`` layout, state 0 included)."""
        return states_to_intervals(self.frame_states, fs=FEATURE_FS,
                                   duration_s=self.states.size / self.fs)


def states_to_intervals(states, *, fs: float, duration_s: float | None = None) -> np.ndarray:
    """Runs of equal state as ``[start_s, end_s, state]`` rows.

    Parameters
    ----------
    states : np.ndarray [shape=(n,)]
        State per sample (or frame) at rate ``fs``.
    fs : float
        Rate of ``states`` in Hz.
    duration_s : float, optional
        End time of the last run (default ``n / fs``).

    Returns
    -------
    np.ndarray [shape=(n_runs, 3), dtype=float64]
    """
    fs = check_fs(fs)
    s = np.asarray(states).reshape(-1)
    if s.size == 0:
        return np.zeros((0, 3))
    starts = np.concatenate([[0], np.flatnonzero(np.diff(s) != 0) + 1])
    ends = np.concatenate([starts[1:], [s.size]]).astype(np.float64) / fs
    if duration_s is not None:
        ends[-1] = duration_s
    return np.stack([starts / fs, ends, s[starts].astype(np.float64)], axis=1)


def _duration_tables(cycle: HeartCycle, d: dict, fs: float):
    """Log-probability and log-survival of each state's visit length in frames (Gaussians
    truncated to mean +- 3 sd, as Schmidt et al. 2010 and Springer et al. 2016). Systole lasts
    the S1-to-S2 centre lag less half of each sound; diastole the rest of the period."""
    period = cycle.period_s
    s1_m, s2_m = d["s1_mean_s"], d["s2_mean_s"]
    sys_m = max(cycle.systolic_interval_s - 0.5 * (s1_m + s2_m), 0.04)
    dia_m = max(period - s1_m - s2_m - sys_m, 0.06)
    means = np.array([s1_m, sys_m, s2_m, dia_m]) * fs
    sds = np.array([d["s1_std_s"], d["systole_std_s"], d["s2_std_s"],
                    d["diastole_std_frac"] * dia_m + d["diastole_std_s"]]) * fs
    sds = np.maximum(sds, 0.5)
    min_d = np.maximum(1, np.floor(means - 3 * sds)).astype(np.int64)
    max_d = np.maximum(min_d, np.ceil(means + 3 * sds)).astype(np.int64)
    n_d = int(max_d.max()) + 2
    dd = np.arange(n_d, dtype=np.float64)
    logp = -0.5 * ((dd[None, :] - means[:, None]) / sds[:, None]) ** 2
    allowed = (dd[None, :] >= min_d[:, None]) & (dd[None, :] <= max_d[:, None])
    p = np.where(allowed, np.exp(logp - logp.max(axis=1, keepdims=True)), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    surv = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore"):
        log_dur = np.log(p)
        log_surv = np.log(np.maximum(surv, 1e-300))
    return log_dur, log_surv, min_d, max_d


def _runs(mask: np.ndarray):
    """(start, stop) of the runs of True in ``mask``."""
    m = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2], strict=True))


def pcg_segment(signal, *, fs: float | None = None, method: str = "springer2016",
                weights: PcgSegmenterWeights | str | os.PathLike | None = None,
                heart_cycle: HeartCycle | None = None) -> PcgSegmentation:
    """Segment a phonocardiogram into heart cycles: S1, systole, S2, diastole.

    The ``"springer2016"`` method (Springer et al. 2016):

    1. four envelopes at 50 Hz (:func:`biosig.pcg.pcg_envelopes`: homomorphic, Hilbert,
       wavelet and 40-60 Hz power), z-scored;
    2. per frame, ``P(state | observation)`` from the envelopes of the frame and of its
       neighbours within 240 ms: Springer's multinomial logistic regression, or (the shipped
       weights) a small multilayer perceptron; divided by the state's prior (and weighted by
       :attr:`PcgSegmenterWeights.emission_scale`) it is the emission of a hidden semi-Markov
       model;
    3. the heart rate and systolic interval come from the periodicity of the S1 and S2
       posteriors (:func:`biosig.pcg.heart_cycle_candidates`: the three strongest
       autocorrelation periods, each with its two strongest S1-to-S2 lags) and set Gaussian
       duration models of the four states (S1 and S2 lengths and the spreads were fitted on
       CirCor);
    4. the duration-dependent Viterbi decoder (a numba kernel) finds the most likely sequence
       S1 -> systole -> S2 -> diastole -> S1 ..., which may start and end anywhere in a cycle,
       under each candidate cycle; the candidate whose best path is the most likely wins.

    Silent (drop-out) and clipped frames, and usable stretches under
    :data:`MIN_LABELLED_S`, are left unlabelled (state 0); each usable stretch is decoded on
    its own.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)] or biosig.Signal
        One PCG channel (any unit).
    fs : float >= 1000
        Sampling rate in Hz; may be omitted for a Signal.
    method : {"springer2016"}
    weights : PcgSegmenterWeights or path, optional
        Trained parameters (default: those shipped with biosig, trained on the CirCor 2022
        training patients).
    heart_cycle : HeartCycle, optional
        Use this heart rate and systolic interval instead of estimating them.

    Returns
    -------
    PcgSegmentation

    Raises
    ------
    InputError
        NaN/inf samples, a recording under one second.
    ValueError
        ``fs`` under 1000 Hz, not one channel, unknown ``method``.

    References
    ----------
    Springer, D. B., Tarassenko, L. & Clifford, G. D. (2016). Logistic regression-HSMM-based
    heart sound segmentation. IEEE Trans. Biomed. Eng. 63(4), 822-832.
    Schmidt, S. E. et al. (2010). Segmentation of heart sound recordings by a
    duration-dependent hidden Markov model. Physiol. Meas. 31(4), 513-529.

    Examples
    --------
    >>> import biosig
    >>> from biosig.pcg import pcg_segment
    >>> sig = biosig.load("circor2022/training_data/49823_PV.wav")     # doctest: +SKIP
    >>> seg = pcg_segment(sig.data[0], fs=sig.fs)                      # doctest: +SKIP
    >>> seg.annotations.labels[:4]                                     # doctest: +SKIP
    ['S1', 'systole', 'S2', 'diastole']
    """
    if method not in METHODS:
        raise ConfigError(f"method: unknown PCG segmenter {method!r}; expected one of "
                          f"{', '.join(METHODS)}")
    data, fs = signal_data(signal, fs, min_hz=MIN_FS, purpose=" for heart-sound segmentation")
    if not isinstance(weights, PcgSegmenterWeights):
        weights = _cached_weights(None if weights is None else os.fspath(weights))
    env = pcg_envelopes(data, fs=fs)
    n_samples = int(np.asarray(data).shape[-1])
    frame_states, cycle = decode_pcg_states(env, weights=weights, heart_cycle=heart_cycle)
    idx = np.minimum((np.arange(n_samples) * (env.fs / fs)).astype(np.int64), env.n_frames - 1)
    states = frame_states[idx]
    iv = states_to_intervals(frame_states, fs=env.fs, duration_s=n_samples / fs)
    iv = iv[iv[:, 2] > 0]
    ann = Annotations(iv[:, 0], iv[:, 1] - iv[:, 0], [STATE_LABELS[int(s)] for s in iv[:, 2]],
                      [], "pcg_segment")
    return PcgSegmentation(states, fs, frame_states, ann, cycle, method)


def decode_pcg_states(envelopes: PcgEnvelopes, *, weights: PcgSegmenterWeights | None = None,
                      heart_cycle: HeartCycle | None = None, n_periods: int = 3,
                      n_systoles: int = 2) -> tuple[np.ndarray, HeartCycle | None]:
    """Steps 2-4 of :func:`pcg_segment`: emission model, heart-cycle estimate and HSMM
    decoding of precomputed envelopes.

    Parameters
    ----------
    envelopes : PcgEnvelopes
        From :func:`biosig.pcg.pcg_envelopes`.
    weights : PcgSegmenterWeights, optional
        Default: the shipped weights.
    heart_cycle : HeartCycle, optional
        Use this heart rate and systolic interval instead of estimating them.

    Returns
    -------
    frame_states : np.ndarray [shape=(n_frames,), dtype=int8]
        0-4 per 50 Hz frame.
    heart_cycle : HeartCycle or None
        The estimate used (None when no stretch was long enough to label).
    """
    if weights is None:
        weights = _cached_weights(None)
    env = envelopes
    post = weights.posteriors(env.values)
    min_frames = int(round(MIN_LABELLED_S * env.fs))
    runs = [(a, b) for a, b in _runs(env.usable) if b - a >= min_frames]
    frame_states = np.zeros(env.n_frames, dtype=np.int8)
    if not runs:
        return frame_states, None
    log_em = weights.emission_scale * (np.log(np.maximum(post, 1e-12))
                                       - weights.log_prior[:, None])
    if heart_cycle is not None:
        candidates = [heart_cycle]
    else:
        keep = np.zeros(env.n_frames, dtype=bool)
        for a, b in runs:
            keep[a:b] = True
        candidates = heart_cycle_candidates(np.where(keep, post[0], 0.0),
                                            np.where(keep, post[2], 0.0), fs=env.fs,
                                            n_periods=n_periods, n_systoles=n_systoles)
    best, cycle = -np.inf, None
    for cand in candidates:
        tables = _duration_tables(cand, weights.durations, env.fs)
        states = np.zeros(env.n_frames, dtype=np.int8)
        total = 0.0
        for a, b in runs:
            s, score = _kernels.hsmm_viterbi_kernel(np.ascontiguousarray(log_em[:, a:b]),
                                                    *tables)
            states[a:b] = s + 1
            total += score
        if total > best or cycle is None:
            best, cycle, frame_states = total, cand, states
    return frame_states, cycle


_WEIGHTS_CACHE: dict = {}


def _cached_weights(path: str | None) -> PcgSegmenterWeights:
    key = path if path is None else str(Path(path).resolve())
    if key not in _WEIGHTS_CACHE:
        _WEIGHTS_CACHE[key] = PcgSegmenterWeights.load(path)
    return _WEIGHTS_CACHE[key]
