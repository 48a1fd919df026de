"""The in-memory recording: :class:`Signal` and its :class:`Annotations`."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field, replace

import numpy as np

from biosig.errors import ConfigError
from biosig.validate import check_fs, check_signal

__all__ = ["Signal", "Annotations", "summary_fields", "as_signal", "check_fs", "signal_data",
           "seconds_to_samples"]


def seconds_to_samples(duration_s, *, fs: float):
    """The number of samples (or frames at rate ``fs``) nearest to ``duration_s`` seconds.

    The one place where biosig turns seconds into a sample count or index (crops, STFT frames
    and hops, beat windows and beat times, shifts, Welch segments): ``round(duration_s * fs)``,
    halves to even.

    Parameters
    ----------
    duration_s : float or array of float
    fs : float > 0

    Returns
    -------
    int, or np.ndarray of int64 for an array ``duration_s``

    >>> seconds_to_samples(1.0, fs=173.61), seconds_to_samples(0.064, fs=2000.0)
    (174, 128)
    >>> seconds_to_samples(np.array([0.5, 1.25]), fs=4.0)
    array([2, 5])
    """
    fs = check_fs(fs)
    if np.ndim(duration_s) == 0:
        return int(round(float(duration_s) * fs))
    return np.round(np.asarray(duration_s, dtype=np.float64) * fs).astype(np.int64)


def summary_fields(channels, fs: float, n_samples: int, units) -> str:
    """The shared part of one-line recording summaries: channels, rate, duration, units."""
    names = ",".join(channels[:4]) + (",..." if len(channels) > 4 else "")
    unit_set = ",".join(sorted(set(u for u in units if u))) or "-"
    return (f"{len(channels)} ch [{names}]  {fs:g} Hz  {n_samples / fs:.2f} s  "
            f"{n_samples} samples  units {unit_set}")


@dataclass(frozen=True)
class Annotations:
    """Events attached to a recording, in seconds from the recording's start.

    Attributes
    ----------
    onset_s : np.ndarray [shape=(n_events,), dtype=float64]
        Event onsets in seconds.
    duration_s : np.ndarray [shape=(n_events,), dtype=float64]
        Event durations in seconds (0 for point events such as beats).
    labels : list of str [length n_events]
        Event labels: WFDB beat symbols (``"N"``, ``"V"``, ``"+"`` ...), EDF+ texts (``"T0"``),
        segment names (``"S1"``, ``"systole"`` ...).
    aux : list of str [length n_events]
        Extra text per event (WFDB ``aux_note`` such as ``"(AFIB"``), empty strings otherwise.
    source : str
        Where the annotations came from, e.g. ``"100.atr"`` or ``"edf+"``.
    """

    onset_s: np.ndarray
    duration_s: np.ndarray
    labels: list[str]
    aux: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        onset = np.asarray(self.onset_s, dtype=np.float64).reshape(-1)
        duration = np.asarray(self.duration_s, dtype=np.float64).reshape(-1)
        if duration.size == 1 and onset.size != 1:
            duration = np.full_like(onset, duration.item())
        labels = [str(x) for x in self.labels]
        aux = [str(x) for x in self.aux] if self.aux else [""] * onset.size
        if not (onset.size == duration.size == len(labels) == len(aux)):
            raise ValueError(
                f"Annotations: onset_s ({onset.size}), duration_s ({duration.size}), labels "
                f"({len(labels)}) and aux ({len(aux)}) must have the same length"
            )
        object.__setattr__(self, "onset_s", onset)
        object.__setattr__(self, "duration_s", duration)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "aux", aux)

    def __len__(self) -> int:
        return self.onset_s.size

    def samples(self, fs: float) -> np.ndarray:
        """Onsets as sample indices at sampling rate ``fs`` (rounded to the nearest sample)."""
        return seconds_to_samples(self.onset_s, fs=fs)

    def intervals(self) -> np.ndarray:
        """Events as ``[start_s, end_s]`` rows ``[shape=(n_events, 2)]``."""
        return np.stack([self.onset_s, self.onset_s + self.duration_s], axis=1)

    def select(self, mask) -> Annotations:
        """Return the events where ``mask`` (boolean array or index array) selects them."""
        idx = np.arange(len(self))[mask]
        return Annotations(
            self.onset_s[idx], self.duration_s[idx], [self.labels[i] for i in idx],
            [self.aux[i] for i in idx], self.source,
        )

    def crop(self, start_s: float, end_s: float) -> Annotations:
        """Events whose onset lies in ``[start_s, end_s)``, re-referenced to ``start_s``."""
        keep = (self.onset_s >= start_s) & (self.onset_s < end_s)
        sub = self.select(keep)
        return replace(sub, onset_s=sub.onset_s - start_s)

    @classmethod
    def empty(cls, source: str = "") -> Annotations:
        return cls(np.zeros(0), np.zeros(0), [], [], source)


@dataclass(frozen=True)
class Signal:
    """A multichannel recording held in memory.

    Attributes
    ----------
    data : np.ndarray [shape=(channels, samples), dtype=float32]
        The samples, time on the last axis, in physical units where the format gives them
        (mV for ECG, uV for EEG, full scale [-1, 1] for audio).
    fs : float > 0
        Sampling rate in Hz.
    channels : list of str [length channels]
        Channel names.
    units : list of str [length channels]
        Physical unit of each channel (``""`` when unknown, ``"FS"`` for audio full scale).
    start_time : datetime.datetime or None
        Wall-clock time of the first sample, when the format records it.
    annotations : Annotations or None
        Events stored with the recording (WFDB annotation files, EDF+ annotations).
    path : str or None
        The file the signal was read from.
    """

    data: np.ndarray
    fs: float
    channels: list[str]
    units: list[str]
    start_time: _dt.datetime | None = None
    annotations: Annotations | None = None
    path: str | None = None

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise ValueError(f"Signal.data must have shape (channels, samples), got {data.shape}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "fs", float(self.fs))
        if len(self.channels) != data.shape[0] or len(self.units) != data.shape[0]:
            raise ValueError(
                f"Signal: {data.shape[0]} channels in data but {len(self.channels)} names and "
                f"{len(self.units)} units"
            )

    @property
    def n_channels(self) -> int:
        return self.data.shape[0]

    @property
    def n_samples(self) -> int:
        return self.data.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def channel(self, name_or_index: str | int) -> np.ndarray:
        """One channel's samples ``[shape=(samples,)]``, by name or index."""
        if isinstance(name_or_index, str):
            if name_or_index not in self.channels:
                raise ValueError(f"{self.path or 'signal'}: no channel {name_or_index!r}; "
                                 f"channels are {self.channels}")
            name_or_index = self.channels.index(name_or_index)
        return self.data[name_or_index]

    def pick(self, channels) -> Signal:
        """A signal with only the given channels (names or indices), in that order."""
        missing = [c for c in channels if isinstance(c, str) and c not in self.channels]
        if missing:
            raise ValueError(f"{self.path or 'signal'}: channels {missing} not found; channels "
                             f"are {self.channels}")
        idx = [self.channels.index(c) if isinstance(c, str) else int(c) for c in channels]
        bad = [i for i in idx if not -self.n_channels <= i < self.n_channels]
        if bad:
            raise IndexError(f"{self.path or 'signal'}: channel index {bad[0]} out of range; the "
                             f"recording has {self.n_channels} channels")
        return replace(self, data=self.data[idx], channels=[self.channels[i] for i in idx],
                       units=[self.units[i] for i in idx])

    def crop(self, start_s: float = 0.0, end_s: float | None = None) -> Signal:
        """The part of the signal in ``[start_s, end_s)`` seconds; annotations follow."""
        a = max(0, int(round(start_s * self.fs)))
        b = self.n_samples if end_s is None else min(self.n_samples, int(round(end_s * self.fs)))
        ann = None
        if self.annotations is not None:
            ann = self.annotations.crop(a / self.fs, b / self.fs)
        start = None
        if self.start_time is not None:
            start = self.start_time + _dt.timedelta(seconds=a / self.fs)
        return replace(self, data=self.data[:, a:b], start_time=start, annotations=ann)

    def summary(self) -> str:
        """One line: path, channels, sampling rate, duration, units, annotation count."""
        ann = f"{len(self.annotations)} annotations" if self.annotations is not None else "-"
        return (f"{self.path or '<memory>'}  "
                f"{summary_fields(self.channels, self.fs, self.n_samples, self.units)}  {ann}")


def as_signal(signal, fs: float | None = None) -> Signal:
    """``signal`` as a :class:`Signal`: a Signal as it is (``fs``, if given, must agree), or an
    array ``(samples,)`` / ``(channels, samples)`` with its sampling rate ``fs`` (channels named
    ``ch0``, ``ch1`` ..., units unknown). :class:`~biosig.errors.ConfigError` names a missing
    or inconsistent ``fs``, :class:`~biosig.errors.InputError` an array of the wrong shape or
    dtype."""
    if isinstance(signal, Signal):
        signal_data(signal, fs)
        return signal
    data, fs = signal_data(signal, fs)
    data = np.atleast_2d(check_signal(data, ndim=(1, 2), min_samples=0, allow_nan=True))
    n = data.shape[0]
    return Signal(data, fs, [f"ch{i}" for i in range(n)], [""] * n)


def signal_data(signal, fs: float | None = None, *, min_hz: float = 0.0,
                purpose: str = "") -> tuple[object, float]:
    """The samples and sampling rate of ``signal``, taken either way a function accepts it.

    ``signal`` is a :class:`Signal` (then ``fs`` may be omitted and, if given, must agree with
    ``signal.fs``) or an array-like ``(..., n_samples)`` with its rate ``fs``. The array is
    returned as given (no copy, no cast); ``fs`` is checked by :func:`check_fs`.

    Returns
    -------
    data : np.ndarray or array-like
        ``signal.data`` for a Signal, else ``signal``.
    fs : float
    """
    if isinstance(signal, Signal):
        if fs is not None and not math.isclose(float(fs), signal.fs, rel_tol=1e-9):
            raise ConfigError(f"fs is {fs!r} but the Signal's rate is {signal.fs:g} Hz (pass "
                              f"one or the other)")
        return signal.data, check_fs(signal.fs, min_hz=min_hz, purpose=purpose)
    if fs is None:
        raise ConfigError(f"signal is a {type(signal).__name__}: pass its sampling rate as fs= "
                          f"(or a biosig.Signal)")
    return signal, check_fs(fs, min_hz=min_hz, purpose=purpose)
