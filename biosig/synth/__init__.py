"""Synthetic data: what biosig generates when no real recording is at hand.

- :mod:`biosig.synth.signals` -- small signals with known answers, one per modality
  (:func:`synth_ecg`, :func:`synth_pcg`, ... re-exported here), for the demo without data and
  for tests with analytic targets;
- :mod:`biosig.synth.dictation` -- a synthesized clinical dictation corpus: phrase banks,
  text-to-speech voices (espeak-ng, festival), a telephone channel, and the audio with its
  manifest (``biosig data synth-dictation``). Imported on its own (it needs :mod:`biosig.asr`),
  never by ``import biosig.synth``.
"""

import lazy_loader as _lazy

# Declared once, loaded on first use: the signals need numba's DSP filters and biosig.ecg,
# the dictation corpus biosig.asr and a text-to-speech voice.
__getattr__, __dir__, _ = _lazy.attach(__name__, submodules=["dictation"], submod_attrs={
    "signals": ["MODALITIES", "synth_cough", "synth_ecg", "synth_eeg", "synth_lung", "synth_pcg",
        "synth_signal"],
})

__all__ = ["synth_ecg", "synth_pcg", "synth_eeg", "synth_lung", "synth_cough", "synth_signal",
           "MODALITIES"]
