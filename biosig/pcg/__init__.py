"""Phonocardiogram (heart-sound) analysis: heart-cycle segmentation into S1, systole, S2 and
diastole, its evaluation and training.

Functions follow NeuroKit2's ``pcg_<verb>`` naming and take the sampling rate ``fs``
explicitly::

    from biosig.pcg import pcg_segment, compare_heart_sounds
    seg = pcg_segment(x, fs=4000.0)          # PcgSegmentation: .states, .annotations, ...
    seg.intervals()                          # [start_s, end_s, state] rows (CirCor layout)
    compare_heart_sounds(reference, seg)     # S1/S2 Se, PPV, F1 (60 ms centre tolerance)

Whole folders: :func:`segment_pcg` (batch, resumable; ``biosig segment pcg``). Per-cycle,
per-phase features for murmur analysis: :func:`pcg_cycle_features`.
"""

import lazy_loader as _lazy

# Declared once, loaded on first use (as biosig.train): segmentation needs numba and the DSP
# filters, training scikit-learn; `import biosig.pcg` loads neither.
__getattr__, __dir__, _ = _lazy.attach(__name__, submod_attrs={
    "cycles": ["CycleFeatures", "pcg_cycle_features"],
    "evaluation": ["TOLERANCE_S", "HeartSoundCounts", "PcgSegmentEvaluation",
        "as_state_intervals", "compare_heart_sounds", "evaluate_pcg_folders",
        "evaluate_pcg_segmentation"],
    "features": ["HeartCycle", "PcgEnvelopes", "heart_cycle_candidates", "pcg_envelopes",
        "pcg_heart_cycle"],
    "scoring": ["SEGMENT_COLUMNS", "format_circor_tsv", "segment_pcg", "segment_record",
        "write_pcg_segmentation"],
    "segment": ["STATE_LABELS", "PcgSegmentation", "PcgSegmenterWeights", "decode_pcg_states",
        "pcg_segment", "states_to_intervals"],
    "training": ["circor_segmentation_examples", "fit_pcg_segmenter", "reference_frame_states",
        "train_pcg_segmenter"],
})

__all__ = [
    "pcg_segment", "PcgSegmentation", "PcgSegmenterWeights", "STATE_LABELS",
    "states_to_intervals", "pcg_envelopes", "PcgEnvelopes", "pcg_heart_cycle", "HeartCycle",
    "compare_heart_sounds", "evaluate_pcg_segmentation", "HeartSoundCounts",
    "PcgSegmentEvaluation", "as_state_intervals", "TOLERANCE_S", "train_pcg_segmenter",
    "fit_pcg_segmenter", "reference_frame_states", "circor_segmentation_examples",
    "segment_pcg", "segment_record", "write_pcg_segmentation", "format_circor_tsv",
    "SEGMENT_COLUMNS", "decode_pcg_states", "heart_cycle_candidates", "pcg_cycle_features",
    "CycleFeatures", "evaluate_pcg_folders",
]
