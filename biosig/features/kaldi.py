"""Kaldi-compatible filterbank features for x-vector style speaker and audio models.

:func:`kaldi_fbank` computes ``torchaudio.compliance.kaldi.fbank`` for many rows of a batch at
once (one framing, one FFT, one batched matrix product per chunk of rows) instead of one call per
row, with the same numerics; ``bench/kaldi_fbank.py`` measures the speed-up against torchaudio's
per-row loop on real cough and speech recordings and records it in
``bench/results/kaldi_fbank.json``.
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torchaudio.compliance.kaldi as kaldi

from biosig.errors import InputError
from biosig.features._tensor import as_tensor, check_positive_int, restore
from biosig.signal import signal_data

__all__ = ["kaldi_fbank"]

# torchaudio.compliance.kaldi.fbank's keywords that the batched path implements (their defaults
# are read from fbank's signature). ``sample_frequency``, ``frame_length``, ``frame_shift``,
# ``num_mel_bins`` and ``dither`` are set through kaldi_fbank's own arguments.
_BATCHED_OPTIONS = frozenset({
    "blackman_coeff", "channel", "energy_floor", "high_freq", "htk_compat", "low_freq",
    "min_duration", "preemphasis_coefficient", "raw_energy", "remove_dc_offset",
    "round_to_power_of_two", "snip_edges", "subtract_mean", "use_energy", "use_log_fbank",
    "use_power", "vtln_high", "vtln_low", "vtln_warp", "window_type",
})
_OWN_ARGUMENTS = {"sample_frequency": "fs", "frame_length": "frame_length_ms",
                  "frame_shift": "frame_shift_ms", "num_mel_bins": "num_mel_bins",
                  "dither": "dither", "waveform": "signal"}
# torchaudio's own helpers, reused so that the window, the log floor and the mel bank are its
# very numbers (the first two are private: without them, kaldi_fbank falls back to the loop).
_TORCHAUDIO_HELPERS = ("_feature_window_function", "_get_epsilon", "get_mel_banks")
_WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")


def kaldi_fbank(signal, *, fs: float | None = None, num_mel_bins: int = 80,
                frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0, dither: float = 0.0, device=None, **kaldi_options):
    """Kaldi ``compute-fbank-feats`` on every channel and batch item.

    Equal to calling ``torchaudio.compliance.kaldi.fbank`` on each ``(n_samples,)`` row of
    ``signal`` and stacking the results, but many rows are framed, transformed and projected
    onto the mel bank together. Every ``fbank`` option is supported in the batched path
    (including VTLN warping); should a later torchaudio add an option that this function does
    not know, a call that sets it falls back to torchaudio's per-row loop rather than ignore it.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)] or biosig.Signal
        Audio, time last. Kaldi-trained models usually expect 16-bit integer scale: pass
        ``signal * 32768`` for full-scale float audio. float64 stays float64, anything else is
        computed in float32. Each row needs at least one frame (``frame_length_ms``) of samples.
    fs : float > 0
        Sampling rate in Hz (Kaldi's ``sample_frequency``); may be omitted for a Signal.
    num_mel_bins : int > 3
        Number of triangular mel bins (Kaldi's default is 23; x-vector recipes use 24-80).
    frame_length_ms, frame_shift_ms : float > 0
        Frame length and shift in milliseconds (Kaldi's ``frame_length``, ``frame_shift``).
    dither : float >= 0
        Dithering constant: Gaussian noise of this standard deviation is added to every frame
        (0 disables it, making the output deterministic). The noise is drawn row by row in the
        same order as torchaudio, so under one ``torch.manual_seed`` both give the same result.
    device : str or torch.device, optional
        Where to compute; default: where ``signal`` is (CPU for numpy).
    **kaldi_options
        Any other keyword of ``torchaudio.compliance.kaldi.fbank``, with its defaults there:
        ``low_freq`` (20), ``high_freq`` (0: Nyquist; negative: offset from it),
        ``window_type`` ('povey', 'hamming', 'hanning', 'rectangular', 'blackman'),
        ``blackman_coeff``, ``preemphasis_coefficient`` (0.97), ``remove_dc_offset`` (True),
        ``round_to_power_of_two`` (True), ``snip_edges`` (True), ``use_power`` (True),
        ``use_log_fbank`` (True), ``use_energy`` (False), ``raw_energy`` (True),
        ``energy_floor`` (1.0), ``htk_compat`` (False), ``subtract_mean`` (False),
        ``min_duration`` (0), ``vtln_warp`` (1.0), ``vtln_low``, ``vtln_high``.

    Returns
    -------
    array [shape=(..., num_mel_bins (+ 1 with use_energy), n_frames)]
        Log (or linear, with ``use_log_fbank=False``) mel filterbank energies, time last as
        everywhere in biosig; ``.transpose(-1, -2)`` gives Kaldi's ``(n_frames, num_mel_bins)``
        layout. With ``use_energy`` the log energy is the first feature (the last with
        ``htk_compat``). numpy in, numpy out; a tensor in, a tensor out.

    Raises
    ------
    ValueError
        If ``signal`` is shorter than one frame or than ``min_duration``, or an option is out
        of range.
    TypeError
        If a keyword is not an option of ``torchaudio.compliance.kaldi.fbank``.

    Notes
    -----
    Each step is the tensor operation torchaudio applies, in the same order, with the mel
    matrix product done as one GEMM per row of torchaudio's shape; on the CPU the result is
    bit-identical to the per-row loop for float32 and float64 (checked for every option in
    ``tests/test_features.py``). On the CPU rows go through in chunks of about a megabyte of
    frames, since one pass over a whole batch of long recordings is bound by memory and slower
    than the loop; the gain is largest for many short rows (``bench/kaldi_fbank.py``).

    References
    ----------
    Povey, D. et al. The Kaldi speech recognition toolkit. ASRU 2011.
    """
    signal, fs = signal_data(signal, fs)
    num_mel_bins = check_positive_int(num_mel_bins, name="num_mel_bins")
    if num_mel_bins <= 3:
        raise ValueError(f"num_mel_bins is {num_mel_bins}, expected more than 3")
    frame_length_ms, frame_shift_ms = float(frame_length_ms), float(frame_shift_ms)
    dither = float(dither)
    if not math.isfinite(dither) or dither < 0:
        raise ValueError(f"dither is {dither!r}, expected a non-negative number")
    options = _check_options(kaldi, kaldi_options)
    x, was_numpy = as_tensor(signal, device=device)
    lead, n = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, n).contiguous()

    if not all(hasattr(kaldi, h) for h in _TORCHAUDIO_HELPERS) or not options["batched"]:
        out = _fbank_per_row(kaldi, rows, fs, num_mel_bins, frame_length_ms, frame_shift_ms,
                             dither, options["given"], options["all"])
    else:
        out = _fbank_batched(kaldi, rows, fs, num_mel_bins, frame_length_ms, frame_shift_ms,
                             dither, options["all"])
    out = out.transpose(-1, -2)                                    # (rows, bins, frames)
    return restore(out.reshape(*lead, out.shape[-2], out.shape[-1]), was_numpy)


def _check_options(kaldi, kaldi_options: dict) -> dict:
    """torchaudio's defaults updated with ``kaldi_options``, and whether the batched path
    implements every option given."""
    parameters = inspect.signature(kaldi.fbank).parameters
    for key in kaldi_options:
        if key in _OWN_ARGUMENTS:
            raise TypeError(f"kaldi_fbank: pass {key!r} as {_OWN_ARGUMENTS[key]}=..., not as a "
                            f"torchaudio option")
        if key not in parameters:
            raise TypeError(f"kaldi_fbank: {key!r} is not an option of "
                            f"torchaudio.compliance.kaldi.fbank; expected one of "
                            f"{sorted(set(parameters) - set(_OWN_ARGUMENTS))}")
    defaults = {k: p.default for k, p in parameters.items()
                if k not in _OWN_ARGUMENTS and p.default is not inspect.Parameter.empty}
    # batched only when every option given is implemented here and torchaudio still has
    # every option implemented here (else its defaults are unknown)
    batched = set(kaldi_options) <= _BATCHED_OPTIONS and _BATCHED_OPTIONS <= set(defaults)
    return {"given": dict(kaldi_options), "all": {**defaults, **kaldi_options},
            "batched": batched}


def _frame_sizes(n: int, fs: float, frame_length_ms: float, frame_shift_ms: float,
                 opts: dict) -> tuple[int, int, int]:
    """Window shift, size and FFT size in samples, exactly as torchaudio derives them."""
    shift = int(fs * frame_shift_ms * 0.001)         # torchaudio's MILLISECONDS_TO_SECONDS
    size = int(fs * frame_length_ms * 0.001)
    padded = 2 ** (size - 1).bit_length() if opts["round_to_power_of_two"] else size
    if shift <= 0:
        raise ValueError(f"frame_shift_ms is {frame_shift_ms:g}, which is {shift} samples at "
                         f"fs={fs:g} Hz; expected at least 1 sample")
    if size < 2:
        raise ValueError(f"frame_length_ms is {frame_length_ms:g}, which is {size} samples at "
                         f"fs={fs:g} Hz; expected at least 2 samples")
    if n < size:
        raise InputError(None, f"{n} samples, fewer than one frame: frame_length_ms="
                               f"{frame_length_ms:g} is {size} samples at fs={fs:g} Hz",
                         what="signal")
    if padded % 2:
        raise ValueError(f"frame_length_ms is {frame_length_ms:g}, an odd {size} samples at "
                         f"fs={fs:g} Hz; Kaldi needs an even FFT size: set "
                         f"round_to_power_of_two=True or change frame_length_ms")
    return shift, size, padded


def _check_values(n: int, fs: float, opts: dict) -> None:
    """Turn torchaudio's asserts on option values into errors that name the option."""
    channel = opts["channel"]
    if channel not in (-1, 0):
        raise ValueError(f"channel is {channel!r}, expected -1 or 0: kaldi_fbank computes "
                         f"every row of signal; index the channel you want beforehand")
    coef = float(opts["preemphasis_coefficient"])
    if not 0.0 <= coef <= 1.0:
        raise ValueError(f"preemphasis_coefficient is {coef!r}, expected 0 <= value <= 1")
    if opts["window_type"] not in _WINDOW_TYPES:
        raise ValueError(f"window_type is {opts['window_type']!r}, expected one of "
                         f"{_WINDOW_TYPES}")
    floor = float(opts["energy_floor"])
    if not floor >= 0.0:
        raise ValueError(f"energy_floor is {floor!r}, expected a non-negative number")
    min_duration = float(opts["min_duration"])
    if n < min_duration * fs:
        raise InputError(None, f"{n} samples ({n / fs:g} s at fs={fs:g} Hz), shorter than "
                               f"min_duration={min_duration:g} s", what="signal")


@functools.lru_cache(maxsize=32)
def _mel_banks(num_mel_bins: int, padded: int, fs: float, low_freq: float, high_freq: float,
               vtln_low: float, vtln_high: float, vtln_warp: float,
               default_dtype: torch.dtype) -> torch.Tensor:
    """torchaudio's mel bank, zero column for Nyquist added: ``(num_mel_bins, padded//2 + 1)``.

    ``default_dtype`` only keys the cache: torchaudio builds the bank in the default dtype.
    """
    nyquist = 0.5 * fs
    high = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and low_freq < high):
        raise ValueError(f"low_freq is {low_freq:g} and high_freq is {high_freq:g} (i.e. "
                         f"{high:g} Hz); expected 0 <= low_freq < high_freq <= Nyquist "
                         f"{nyquist:g} Hz")
    if vtln_warp != 1.0:
        vhigh = vtln_high + nyquist if vtln_high < 0.0 else vtln_high
        if not (low_freq < vtln_low < high and 0.0 < vhigh < high and vtln_low < vhigh):
            raise ValueError(f"vtln_low is {vtln_low:g} and vtln_high is {vtln_high:g} (i.e. "
                             f"{vhigh:g} Hz); expected low_freq={low_freq:g} < vtln_low < "
                             f"vtln_high < high_freq={high:g} Hz")
    banks, _ = kaldi.get_mel_banks(num_mel_bins, padded, fs, low_freq, high_freq, vtln_low,
                                   vtln_high, vtln_warp)
    return torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0)


def _frames(rows: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """``(rows, n)`` -> ``(rows, n_frames, size)`` views, torchaudio's ``_get_strided`` per row."""
    n = rows.shape[-1]
    if snip_edges:
        m = 1 + (n - size) // shift
    else:
        m = (n + shift // 2) // shift
        reversed_rows = torch.flip(rows, [-1])
        pad = size // 2 - shift // 2
        if pad > 0:
            rows = torch.cat((reversed_rows[:, -pad:], rows, reversed_rows), dim=-1)
        else:
            rows = torch.cat((rows[:, -pad:], reversed_rows), dim=-1)
    return rows.unfold(-1, size, shift)[:, :m]


def _log_energy(frames: torch.Tensor, eps: torch.Tensor, energy_floor: float) -> torch.Tensor:
    """torchaudio's ``_get_log_energy`` over the last axis: ``(..., m, w)`` -> ``(..., m)``."""
    log_energy = torch.max(frames.pow(2).sum(-1), eps).log()
    if energy_floor == 0.0:
        return log_energy
    return torch.max(log_energy, torch.tensor(math.log(energy_floor), device=frames.device,
                                              dtype=frames.dtype))


def _aligned_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` (3-D, contiguous) copied so that every ``x[i]`` starts 64 bytes aligned."""
    per_row = x.shape[1] * x.shape[2]
    step = max(1, 64 // x.element_size())
    stride = -(-per_row // step) * step
    if stride == per_row:
        return x
    buffer = torch.empty(x.shape[0] * stride, dtype=x.dtype, device=x.device)
    out = buffer.as_strided(x.shape, (stride, x.shape[2], 1))
    out.copy_(x)
    return out


def _fbank_batched(kaldi, rows: torch.Tensor, fs: float, num_mel_bins: int,
                   frame_length_ms: float, frame_shift_ms: float, dither: float,
                   opts: dict) -> torch.Tensor:
    """Many rows at a time, step for step as ``torchaudio.compliance.kaldi.fbank``:
    ``(rows, n)`` -> ``(rows, n_frames, n_features)``.

    On the CPU the rows go through in chunks of about ``_CPU_CHUNK_ELEMENTS`` frame samples,
    which keeps each step's tensors in cache (one pass over a whole batch of long recordings
    is slower than torchaudio's loop, being bound by memory); on a GPU in chunks big enough to
    fill it.
    """
    n = rows.shape[-1]
    device, dtype = rows.device, rows.dtype
    shift, size, padded = _frame_sizes(n, fs, frame_length_ms, frame_shift_ms, opts)
    _check_values(n, fs, opts)
    banks = _mel_banks(num_mel_bins, padded, fs, float(opts["low_freq"]),
                       float(opts["high_freq"]), float(opts["vtln_low"]),
                       float(opts["vtln_high"]), float(opts["vtln_warp"]),
                       torch.get_default_dtype())
    const = {
        "eps": kaldi._get_epsilon(device, dtype),
        "banks_t": banks.to(device=device, dtype=dtype).T,           # (padded//2 + 1, bins)
        "window": kaldi._feature_window_function(opts["window_type"], size,
                                                 float(opts["blackman_coeff"]), device, dtype),
        "size": size, "shift": shift, "padded": padded, "dither": dither,
    }
    frames = _frames(rows, size, shift, bool(opts["snip_edges"]))   # (rows, m, size) view
    n_rows, m = frames.shape[0], frames.shape[1]
    budget = _CPU_CHUNK_ELEMENTS if device.type == "cpu" else _GPU_CHUNK_ELEMENTS
    per_chunk = max(1, budget // (m * padded))
    if per_chunk >= n_rows:
        return _fbank_frames(frames, opts, const)
    return torch.cat([_fbank_frames(frames[i:i + per_chunk], opts, const)
                      for i in range(0, n_rows, per_chunk)])


# Frame samples (rows x frames x FFT size) per chunk: 2**18 float32 is 1 MiB per step.
_CPU_CHUNK_ELEMENTS = 2 ** 18
_GPU_CHUNK_ELEMENTS = 2 ** 26


def _fbank_frames(frames: torch.Tensor, opts: dict, const: dict) -> torch.Tensor:
    """``(rows, m, size)`` frames -> ``(rows, m, n_features)``, torchaudio's ``_get_window``
    and ``fbank`` with the frame axis batched; each operation is the one torchaudio applies,
    so every number is the same."""
    device, dtype = frames.device, frames.dtype
    eps, size, padded = const["eps"], const["size"], const["padded"]
    if const["dither"] != 0.0:
        # one draw per row, in torchaudio's order, so a seed reproduces the per-row loop
        noise = torch.stack([torch.randn(frames.shape[1:], device=device, dtype=dtype)
                             for _ in range(frames.shape[0])])
        frames = frames + noise * const["dither"]
    if opts["remove_dc_offset"]:
        frames = frames - torch.mean(frames, dim=-1).unsqueeze(-1)
    energy_floor = float(opts["energy_floor"])
    if opts["raw_energy"]:
        log_energy = _log_energy(frames, eps, energy_floor)          # (rows, m)
    coef = float(opts["preemphasis_coefficient"])
    if coef != 0.0:
        # x[j] - coef * x[max(0, j - 1)], as torchaudio's replicate-padded shift
        emphasized = torch.empty(frames.shape, device=device, dtype=dtype)
        torch.sub(frames[..., 1:], coef * frames[..., :-1], out=emphasized[..., 1:])
        torch.sub(frames[..., :1], coef * frames[..., :1], out=emphasized[..., :1])
        frames = emphasized
    # window, zero-padded to the FFT size in the same pass
    windowed = torch.zeros((*frames.shape[:-1], padded), device=device, dtype=dtype)
    torch.mul(frames, const["window"], out=windowed[..., :size])
    if not opts["raw_energy"]:
        log_energy = _log_energy(windowed, eps, energy_floor)

    spectrum = torch.fft.rfft(windowed).abs()                        # (rows, m, padded//2 + 1)
    if opts["use_power"]:
        spectrum = spectrum.pow(2.0)
    # One GEMM per row of the very shape torchaudio's mm has, each row starting on a 64-byte
    # boundary like a fresh tensor, so that BLAS sums in the same order and even float64
    # agrees to the last bit (one big matmul, or unaligned rows, round differently).
    banks = const["banks_t"].expand(spectrum.shape[0], -1, -1)
    mel = torch.bmm(_aligned_rows(spectrum), banks)                 # (rows, m, bins)
    if opts["use_log_fbank"]:
        mel = torch.max(mel, eps).log()
    if opts["use_energy"]:
        log_energy = log_energy.unsqueeze(-1)
        mel = torch.cat((mel, log_energy) if opts["htk_compat"] else (log_energy, mel), dim=-1)
    if opts["subtract_mean"]:
        mel = mel - torch.mean(mel, dim=-2).unsqueeze(-2)
    return mel


def _fbank_per_row(kaldi, rows: torch.Tensor, fs: float, num_mel_bins: int,
                   frame_length_ms: float, frame_shift_ms: float, dither: float,
                   given: dict, opts: dict) -> torch.Tensor:
    """torchaudio one row at a time, for options the batched path does not know:
    ``(rows, n)`` -> ``(rows, n_frames, n_features)``."""
    n = rows.shape[-1]
    if _BATCHED_OPTIONS <= set(opts):          # the same clear errors as the batched path
        _frame_sizes(n, fs, frame_length_ms, frame_shift_ms, opts)
        _check_values(n, fs, opts)
    feats = [kaldi.fbank(row[None, :], sample_frequency=fs, num_mel_bins=num_mel_bins,
                         frame_length=frame_length_ms, frame_shift=frame_shift_ms,
                         dither=dither, **given) for row in rows]
    return torch.stack(feats)
