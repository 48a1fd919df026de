"""Whisper between CTranslate2 (faster-whisper) and transformers, without the original checkpoint.

- :mod:`~biosig.asr.ct2.reader` -- :func:`read_ct2_model`: every variable of a ``model.bin``
  (pure numpy, no CTranslate2 needed);
- :mod:`~biosig.asr.ct2.mapping` -- CTranslate2 Whisper variables to transformers parameter
  names, the architecture read off their shapes, ``WhisperConfig``/``GenerationConfig``;
- :mod:`~biosig.asr.ct2.tokenizer` -- the Whisper tokenizer completed with timestamp tokens;
- :mod:`~biosig.asr.ct2.export` -- :func:`import_ct2_whisper` (CTranslate2 -> transformers
  directory), :func:`export_ct2_whisper` (transformers -> CTranslate2), each written
  atomically.

The CLI commands are ``biosig asr import-ct2`` and ``biosig asr export-ct2``; transformers,
tokenizers and ctranslate2 (the ``asr`` extra) are imported only by the functions that use them.
``bench/whisper_ct2_agreement.py`` checks that an imported model decodes like the CTranslate2
model it came from.
"""

from biosig.asr.ct2.export import (
    EXPORT_QUANTIZATIONS,
    ImportResult,
    export_ct2_whisper,
    import_ct2_whisper,
    transformers_folder,
)
from biosig.asr.ct2.mapping import WhisperDims, ct2_whisper_state_dict, whisper_dims
from biosig.asr.ct2.reader import ConversionError, CT2Model, read_ct2_model

__all__ = ["CT2Model", "ConversionError", "read_ct2_model", "WhisperDims", "whisper_dims",
           "ct2_whisper_state_dict", "ImportResult", "import_ct2_whisper", "export_ct2_whisper",
           "transformers_folder", "EXPORT_QUANTIZATIONS"]
