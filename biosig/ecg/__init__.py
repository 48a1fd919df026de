"""ECG analysis: cleaning, QRS detection, heart rate, HRV, EC57 evaluation and batch scoring.

Functions follow NeuroKit2's ``ecg_<verb>`` naming and take the sampling rate ``fs`` explicitly::

    from biosig.ecg import ecg_clean, ecg_peaks, ecg_rate, hrv
    peaks = ecg_peaks(lead, fs=360.0)          # QrsPeaks: .samples, .times_s, .rr_ms
    heart_rate_bpm = ecg_rate(peaks, fs=360.0)
    stats = hrv(peaks.samples, fs=360.0)       # .time (SDNN, RMSSD...), .frequency (LF, HF)

Whole databases: :func:`score_qrs` (batch detection, resumable) and :func:`evaluate_qrs`
(ANSI/AAMI EC57 beat-by-beat Se, +P, F1).
"""

import lazy_loader as _lazy

# Declared once, loaded on first use (as biosig.pcg): detection needs numba and the DSP filters,
# batch scoring wfdb and biosig.batch; the EC57 evaluation needs neither. The modules are
# attributes too (biosig.ecg.peaks), except hrv: biosig.ecg.hrv is the function.
__getattr__, __dir__, _ = _lazy.attach(__name__, submodules=[
    "clean", "evaluation", "morphology", "peaks", "rate", "rhythm", "scoring", "simulate"],
    submod_attrs={
    "clean": ["ecg_clean"],
    "evaluation": ["BEAT_LABELS", "BeatCounts", "QrsEvaluation", "RecordScore", "compare_beats",
        "evaluate_qrs", "match_beats"],
    "hrv": ["Hrv", "HrvFrequency", "HrvTime", "RRIntervals", "coefficient_of_sample_entropy",
        "hrv", "hrv_frequency", "hrv_time", "rr_intervals", "rr_statistics"],
    "morphology": ["MORPHOLOGY_KEYS", "beat_morphology"],
    "peaks": ["QrsPeaks", "ecg_peaks"],
    "rate": ["ecg_rate"],
    "rhythm": ["RR_PATTERN_KEYS", "beat_shape", "beat_shape_keys", "rr_patterns"],
    "scoring": ["SCORE_COLUMNS", "score_qrs", "score_record", "write_qrs_annotations"],
    "simulate": ["SimulatedEcg", "ecg_simulate", "write_wfdb_record"],
})

__all__ = [
    "ecg_clean", "ecg_peaks", "QrsPeaks", "ecg_rate", "hrv", "hrv_time", "hrv_frequency",
    "rr_intervals", "Hrv", "HrvTime", "HrvFrequency", "RRIntervals", "BEAT_LABELS", "BeatCounts",
    "RecordScore", "QrsEvaluation", "match_beats", "compare_beats", "evaluate_qrs", "score_qrs",
    "score_record", "write_qrs_annotations", "SCORE_COLUMNS", "ecg_simulate", "SimulatedEcg",
    "write_wfdb_record", "rr_statistics", "coefficient_of_sample_entropy", "beat_morphology",
    "MORPHOLOGY_KEYS", "rr_patterns", "RR_PATTERN_KEYS", "beat_shape", "beat_shape_keys",
]
