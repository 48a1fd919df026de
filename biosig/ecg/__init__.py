"""ECG analysis: cleaning, QRS detection, heart rate, HRV, EC57 evaluation and batch scoring.

Functions follow NeuroKit2's ``ecg_<verb>`` naming and take the sampling rate ``fs`` explicitly::

    from biosig.ecg import ecg_clean, ecg_peaks, ecg_rate, hrv
    peaks = ecg_peaks(lead, fs=360.0)          # QrsPeaks: .samples, .times_s, .rr_ms
    heart_rate_bpm = ecg_rate(peaks, fs=360.0)
    stats = hrv(peaks.samples, fs=360.0)       # .time (SDNN, RMSSD...), .frequency (LF, HF)

Whole databases: :func:`score_qrs` (batch detection, resumable) and :func:`evaluate_qrs`
(ANSI/AAMI EC57 beat-by-beat Se, +P, F1).
"""

from biosig.ecg.clean import ecg_clean
from biosig.ecg.evaluation import (
    BEAT_LABELS,
    BeatCounts,
    QrsEvaluation,
    RecordScore,
    compare_beats,
    evaluate_qrs,
    match_beats,
)
from biosig.ecg.hrv import (
    Hrv,
    HrvFrequency,
    HrvTime,
    RRIntervals,
    hrv,
    hrv_frequency,
    hrv_time,
    rr_intervals,
)
from biosig.ecg.peaks import QrsPeaks, ecg_peaks
from biosig.ecg.rate import ecg_rate
from biosig.ecg.scoring import SCORE_COLUMNS, score_qrs, score_record, write_qrs_annotations
from biosig.ecg.simulate import SimulatedEcg, ecg_simulate, write_wfdb_record

__all__ = [
    "ecg_clean", "ecg_peaks", "QrsPeaks", "ecg_rate", "hrv", "hrv_time", "hrv_frequency",
    "rr_intervals", "Hrv", "HrvTime", "HrvFrequency", "RRIntervals", "BEAT_LABELS", "BeatCounts",
    "RecordScore", "QrsEvaluation", "match_beats", "compare_beats", "evaluate_qrs", "score_qrs",
    "score_record", "write_qrs_annotations", "SCORE_COLUMNS", "ecg_simulate", "SimulatedEcg",
    "write_wfdb_record",
]
