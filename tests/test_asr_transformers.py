"""The transformers backend behind the same interface, on Whisper base rebuilt from the
CTranslate2 model (biosig.asr.ct2.import_ct2_whisper), so no download is needed."""

import pytest

from biosig.asr import DecodeOptions, error_rates, load_model, transcribe_file

CLIP = "1089-134691-0000"   # "HE COULD WAIT NO LONGER"


@pytest.fixture(scope="module")
def hf_dir(whisper_model_dir, tmp_path_factory):  # noqa: F811
    convert = pytest.importorskip("biosig.asr.ct2")
    out = tmp_path_factory.mktemp("hf") / "whisper-base-hf"
    convert.import_ct2_whisper(whisper_model_dir, out)
    return out


def test_transformers_backend_transcribes(hf_dir, data_root):
    m = load_model(str(hf_dir), cpu_threads=2)
    assert m.backend == "transformers"
    clip = (data_root / "speech" / "librispeech_test_clean_mini" / "test-clean" / "1089" /
            "134691" / f"{CLIP}.flac")
    tr = transcribe_file(clip, model=m, options=DecodeOptions(beam_size=1, vad=False,
                                                              initial_prompt="Clinical note."))
    assert error_rates(["HE COULD WAIT NO LONGER"], [tr.text]).wer <= 0.2
    words = tr.words
    assert words and words[0].start_s <= words[-1].end_s <= tr.duration_s + 0.5


def test_backend_mismatch_is_an_error(hf_dir):
    from biosig.errors import ConfigError
    with pytest.raises(ConfigError, match="is a transformers model"):
        load_model(str(hf_dir), backend="faster-whisper")


def test_bad_model_directory(tmp_path):
    from biosig.errors import ConfigError
    with pytest.raises(ConfigError, match="neither a CTranslate2 model"):
        load_model(str(tmp_path))
    with pytest.raises(ConfigError, match="compute_type"):
        load_model(str(tmp_path), compute_type="int3")
