"""Vocabulary biasing (biosig.asr.vocab): term matching by sound, the biased-decode guard,
fuzzy term restoration. The real-speech checks with the packaged Whisper are at the end."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jellyfish", reason="needs the [asr] extra (jellyfish)")

from biosig.asr.audio import ASR_FS  # noqa: E402
from biosig.asr.degenerate import looks_degenerate  # noqa: E402
from biosig.asr.models import AsrModel, DecodeOptions, DecodeResult  # noqa: E402
from biosig.asr.types import Segment, Word  # noqa: E402
from biosig.asr.vocab import (  # noqa: E402
    Vocabulary,
    correct_terms,
    decode_with_vocab,
    prompted_decode_guard,
    read_vocab,
    sound_similarity,
    vocab_guard,
    vocab_prompt,
)
from biosig.errors import ConfigError, InputError  # noqa: E402

TERMS = ["lisinopril", "apixaban", "diabetes mellitus", "atrial fibrillation", "metformin",
         "bisoprolol", "echocardiogram"]


def _w(texts, probs=None, step=0.5):
    probs = probs or [0.9] * len(texts)
    return [Word(t, k * step, k * step + 0.4, p) for k, (t, p) in enumerate(zip(texts, probs))]


@pytest.mark.parametrize("a, b, low, high", [
    ("listen april", "lisinopril", 0.8, 0.9),      # Metaphone LSTNPRL vs LSNPRL
    ("malitis", "mellitus", 1.0, 1.0),              # same key MLTS
    ("a pixaban", "apixaban", 1.0, 1.0),
    ("the", "metformin", 0.0, 0.2),
])
def test_sound_similarity(a, b, low, high):
    assert low <= sound_similarity(a, b) <= high


def test_candidates_find_misheard_terms_and_nothing_in_unrelated_text():
    v = Vocabulary(TERMS + ["Lisinopril"])          # duplicate ignoring case: dropped
    assert len(v) == len(TERMS)
    got = dict(v.candidates("he takes listen april ten milligrams and a pixaban"))
    assert {"lisinopril", "apixaban"} <= set(got)
    assert got["apixaban"] == 1.0
    assert v.candidates("the weather was lovely on our walk by the river") == []
    assert len(v.candidates("lisinopril apixaban metformin bisoprolol", max_terms=2)) == 2


def test_vocab_prompt_lists_terms_within_the_budget():
    assert vocab_prompt(["a", "b"]) == "Terms: a, b."
    assert vocab_prompt([]) is None
    p = vocab_prompt([f"term{k:03d}" for k in range(200)], max_chars=60)
    assert len(p) <= 60 and p.endswith(".")


def test_read_vocab(tmp_path):
    f = tmp_path / "terms.txt"
    f.write_text("# drugs\nlisinopril\n\nApixaban  # anticoagulant\nlisinopril\n")
    assert read_vocab(f) == ["lisinopril", "Apixaban"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="empty.txt"):
        read_vocab(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="missing.txt"):
        read_vocab(tmp_path / "missing.txt")
    with pytest.raises(ConfigError):
        Vocabulary(["", "  ", "123"])


def test_correct_terms_replaces_unsure_spans_only():
    v = Vocabulary(TERMS)
    words = _w([" started", " listen", " April,", " ten", " milligrams"],
               [0.95, 0.3, 0.4, 0.9, 0.9])
    out, fixed = correct_terms(words, v)
    assert [w.text for w in out] == [" started", " lisinopril,", " ten", " milligrams"]
    assert out[1].start_s == words[1].start_s and out[1].end_s == words[2].end_s
    assert [(c.start, c.end, c.term) for c in fixed] == [(1, 3, "lisinopril")]
    # the decoder was sure of those words: kept
    sure = _w([" started", " listen", " April,"], [0.95, 0.9, 0.9])
    assert correct_terms(sure, v) == (sure, [])
    # already the term, or nothing like one: kept
    ok = _w([" type", " two", " diabetes", " mellitus"], [0.2, 0.2, 0.2, 0.2])
    assert correct_terms(ok, v)[1] == []
    plain = _w([" the", " cat", " sat", " on", " the", " mat"], [0.1] * 6)
    assert correct_terms(plain, v)[1] == []
    article = _w([" a", " diabetes", " mellitus"], [0.1, 0.1, 0.1])
    assert correct_terms(article, v)[1] == []
    short = Vocabulary(["gout"])               # too short to restore: "got" stays
    assert correct_terms(_w([" I", " got", " it"], [0.1] * 3), short)[1] == []
    with pytest.raises(ConfigError, match="min_similarity"):
        correct_terms(words, v, min_similarity=0)


def test_a_repeated_sentence_is_degenerate():
    s = " the patient denies chest pain period".split()
    assert looks_degenerate(_w(s + s), audio_s=20.0) == "phrase repeated"
    assert looks_degenerate(_w(s), audio_s=20.0) is None
    # a phrase of three words said twice is speech
    assert looks_degenerate(_w("no chest pain no chest pain today".split()), audio_s=9) is None


class _Model(AsrModel):
    """Plain decodes give ``plain``; decodes whose prompt starts with "Terms:" give
    ``biased``. Records the prompts."""

    backend = name = "fake"

    def __init__(self, plain, biased):
        self.plain, self.biased, self.prompts = plain, biased, []

    def decode(self, audio, options=None):
        options = options or DecodeOptions()
        self.prompts.append(options.initial_prompt)
        text = self.biased if (options.initial_prompt or "").startswith("Terms:") \
            else self.plain
        words = tuple(_w([" " + t for t in text.split()]))
        seg = Segment(text, 0.0, audio.size / ASR_FS, words)
        return DecodeResult([seg], "en", 0.01)


AUDIO = np.zeros(4 * ASR_FS, np.float32)


def test_decode_with_vocab_biases_with_the_terms_it_heard():
    m = _Model("he takes listen april daily", "he takes lisinopril daily")
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(initial_prompt="Earlier text."),
                                  Vocabulary(TERMS))
    assert res.segments[0].text == "he takes lisinopril daily"
    # plain, listening with the whole list, biased with the terms heard in either (the
    # listening decode's "lisinopril" sounds a little like bisoprolol too: 0.62 >= 0.6)
    assert info == {"terms": 2, "narrowband": False, "biased": True, "rejected": None}
    assert m.prompts == ["Earlier text.", Vocabulary(TERMS).prompt() + " Earlier text.",
                         "Terms: lisinopril, bisoprolol. Earlier text."]


class _ListeningModel(AsrModel):
    """Three answers: no prompt of terms (``plain``), the whole list (``listened``), a short
    list (``biased``): the plain decode garbled the drugs beyond recognition, as CTranslate2's
    AVX2/AVX512 int8 kernels did on one clip where its GENERIC kernels did not."""

    backend = name = "fake"

    def __init__(self, plain, listened, biased, n_terms):
        self.texts, self.n_terms, self.prompts = (plain, listened, biased), n_terms, []

    def decode(self, audio, options=None):
        p = options.initial_prompt or ""
        self.prompts.append(p)
        k = 0 if not p.startswith("Terms:") else 1 if p.count(",") + 1 >= self.n_terms else 2
        text = self.texts[k]
        seg = Segment(text, 0.0, audio.size / ASR_FS, tuple(_w([" " + t for t in text.split()])))
        return DecodeResult([seg], "en", 0.01)


def test_decode_with_vocab_listens_with_the_whole_list_on_wideband_audio():
    """The candidates come from the listening decode when the plain one holds none: the
    biasing no longer depends on the plain decode's int8 arithmetic (the CPU)."""
    m = _ListeningModel("current medications colonized are 5,000 grams and a big 7 5,000 grams",
                        "current medications colonisoprilol 5mg and apixaban 5mg",
                        "current medications colon bisoprolol 5mg and apixaban 5mg",
                        n_terms=len(TERMS))
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(), Vocabulary(TERMS))
    assert info["biased"] and not info["narrowband"]
    assert res.segments[0].text == "current medications colon bisoprolol 5mg and apixaban 5mg"
    assert m.prompts[2] in ("Terms: apixaban, bisoprolol.", "Terms: bisoprolol, apixaban.")


def test_decode_with_vocab_guard_keeps_the_plain_decode():
    sentence = "he takes listen april daily"
    m = _Model(sentence, " ".join(["he takes lisinopril daily"] * 3))
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(), Vocabulary(TERMS))
    assert res.segments[0].text == sentence
    assert info["rejected"] and not info["biased"]
    # on wideband audio a biased decode with no more of the prompted terms than the plain
    # one is not kept: words that merely sound like a term ("to foreigners") must not let the
    # prompt reword read speech
    sentence = "he was made famous to foreigners after a glowing account"
    m = _Model(sentence, "he was made famous, to four owners after a glowing account")
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(), Vocabulary(["metformin"]))
    assert info["terms"] == 1 and m.prompts == [None, "Terms: metformin.", "Terms: metformin."]
    assert res.segments[0].text == sentence and not info["biased"]
    assert info["rejected"] == "no more prompted terms than the plain decode"
    # no term heard, plainly or listening: no biased decode
    m = _Model("the weather is lovely today", "the weather is lovely today")
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(), Vocabulary(TERMS))
    assert m.prompts == [None, Vocabulary(TERMS).prompt()] and info["terms"] == 0
    with pytest.raises(ConfigError, match="hotwords"):
        decode_with_vocab(m, AUDIO, DecodeOptions(hotwords="x"), Vocabulary(TERMS))


def test_vocab_guard_rejects_a_copied_term_list():
    terms = ["wheeze", "pleuritic pain", "warfarin", "obstructive sleep apnoea", "ramipril"]

    def why(text):
        return vocab_guard(_w([" " + t for t in text.split()]), terms, audio_s=10.0)

    # the prompt's list carried into the transcript (Whisper base did both)
    assert why("no obstructive sleep apnoea, wheeze, pleuritic pain, warfarin.") == \
        "a list of vocabulary terms"
    assert why("known sleep apnoea on warfarin, warfarin. be a real") == \
        "a vocabulary term repeated"
    # dictation that mentions terms, even two in a row or one twice, is kept
    assert why("known obstructive sleep apnoea on warfarin comma now with worsening "
               "pleuritic pain period") is None
    assert why("wheeze and pleuritic pain, warfarin") is None
    assert why("current medications colon warfarin, ramipril, wheeze") is None   # a list of 3
    assert why("increase ramipril to 5 mg, ramipril twice daily") is None
    assert vocab_guard([], terms, audio_s=1.0) is None
    # and the decode falls back to the plain hypothesis
    heard = "he takes listen april a pick a ban met for men and bisoprolol"
    m = _Model(heard, "lisinopril, apixaban, metformin, bisoprolol.")
    res, info = decode_with_vocab(m, AUDIO, DecodeOptions(), Vocabulary(TERMS))
    assert res.segments[0].text == heard
    assert info["rejected"] == "a list of vocabulary terms"


def _band_limited_noise(fs, cutoff_hz, seconds=3.0, seed=0):
    from scipy.signal import butter, sosfiltfilt
    x = np.random.default_rng(seed).standard_normal(int(seconds * fs))
    return sosfiltfilt(butter(8, cutoff_hz, fs=fs, output="sos"), x).astype(np.float32)


def test_is_narrowband_known_answers():
    from biosig.asr.audio import is_narrowband
    assert not is_narrowband(_band_limited_noise(ASR_FS, 7000), fs=ASR_FS)
    assert is_narrowband(_band_limited_noise(ASR_FS, 3400), fs=ASR_FS)
    assert is_narrowband(np.zeros(8000, np.float32), fs=8000)      # 8 kHz audio: always
    assert not is_narrowband(np.zeros(ASR_FS, np.float32), fs=ASR_FS)   # silence: no
    assert not is_narrowband(np.ones(100, np.float32), fs=ASR_FS)       # too short to tell
    with pytest.raises(ConfigError, match=r"^fs is 0 Hz, expected a positive finite sampling "
                                          r"rate"):
        is_narrowband(np.zeros(ASR_FS), fs=0)


def test_is_narrowband_on_real_speech_and_its_telephone_copy(repeat_clip):
    from biosig.asr import load_audio
    from biosig.asr.audio import is_narrowband, prepare_audio
    from biosig.synth.dictation import TELEPHONE_FS, telephone_channel
    x = load_audio(repeat_clip[0])
    assert not is_narrowband(x, fs=ASR_FS)
    tel = telephone_channel(x, fs=ASR_FS, snr_db=15.0, rng=np.random.default_rng(0))
    assert is_narrowband(tel, fs=TELEPHONE_FS)
    assert is_narrowband(prepare_audio(tel, fs=TELEPHONE_FS), fs=ASR_FS)


def test_decode_with_vocab_listens_for_the_whole_list_on_narrowband_audio():
    """Telephone audio: the plain decode hears no term, the decode with the whole list as its
    prompt does, and its terms go into the biased decode's prompt."""

    class Model(_Model):
        def decode(self, audio, options=None):
            res = super().decode(audio, options)
            if (options.initial_prompt or "").startswith("Terms: lisinopril, apixaban, "):
                seg = res.segments[0]
                words = tuple(_w([" he", " takes", " listen", " april"]))
                res = DecodeResult([Segment("he takes listen april", seg.start_s, seg.end_s,
                                            words)], "en", 0.01)
            return res

    vocab = Vocabulary(TERMS)
    narrow = _band_limited_noise(ASR_FS, 3000)
    m = Model("he takes the weather", "he takes lisinopril daily")
    res, info = decode_with_vocab(m, narrow, DecodeOptions(), vocab)
    assert info == {"terms": 1, "narrowband": True, "biased": True, "rejected": None}
    assert m.prompts == [None, vocab_prompt(vocab.terms), "Terms: lisinopril."]
    assert res.segments[0].text == "he takes lisinopril daily"
    # narrow-band: a biased decode is kept even without a term (the plain one is no baseline)
    m = Model("he takes the weather", "he takes the tablets daily")
    res, info = decode_with_vocab(m, narrow, DecodeOptions(), vocab)
    assert info["biased"] and res.segments[0].text == "he takes the tablets daily"
    # wideband audio is listened to as well (which terms a plain decode garbles depends on
    # the CPU's int8 kernels), and a biased decode that holds the term is kept...
    wide = _band_limited_noise(ASR_FS, 7000)
    m = Model("he takes the weather", "he takes lisinopril daily")
    res, info = decode_with_vocab(m, wide, DecodeOptions(), vocab)
    assert m.prompts == [None, vocab_prompt(vocab.terms), "Terms: lisinopril."]
    assert not info["narrowband"] and info["biased"]
    # ...but there, one without more of the terms than the plain decode is not
    m = Model("he takes the weather", "he takes the tablets daily")
    res, info = decode_with_vocab(m, wide, DecodeOptions(), vocab)
    assert res.segments[0].text == "he takes the weather" and not info["biased"]


def test_transcribe_vocab_correct_needs_a_vocabulary():
    from biosig.asr import transcribe
    with pytest.raises(ConfigError, match="vocab_correct"):
        transcribe(AUDIO, fs=ASR_FS, model=_Model("a", "b"), vocab_correct=True)


def test_streaming_engine_drops_a_degenerate_biased_decode():
    from biosig.asr.streaming import DictationEngine, StreamingConfig
    m = _Model("he takes listen april daily", " ".join(["he takes lisinopril daily"] * 3))
    eng = DictationEngine(m, StreamingConfig(vad=False, audio_ctx_pad_s=None, agreement=1),
                          vocab=Vocabulary(TERMS), vocab_correct=True)
    eng.push(AUDIO)
    eng.step()
    eng.push(AUDIO)
    eng.step()
    assert eng.n_vocab_rejected >= 1
    assert "lisinopril" not in " ".join(p or "" for p in m.prompts[:1])


# -- real speech with the packaged Whisper base ----------------------------------------------

#: "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM": with the clinic's 119-term list as the prompt
#: and as faster-whisper hotwords (the previous release's ``--vocab``), Whisper base returned
#: this 8-word sentence three times over (20 words) after 2.5 minutes of temperature fallbacks.
REPEAT_CLIP = "1089-134686-0001"


@pytest.fixture(scope="module")
def repeat_clip(librispeech_clip):
    return librispeech_clip(REPEAT_CLIP)


@pytest.mark.slow
def test_vocab_never_makes_real_speech_repeat_or_worse(whisper_model, repeat_clip):
    from biosig.asr import error_rates, load_audio, transcribe
    from biosig.synth.dictation import clinic_terms
    path, ref = repeat_clip
    x = load_audio(path)
    plain = transcribe(x, fs=ASR_FS, model=whisper_model)
    biased = transcribe(x, fs=ASR_FS, model=whisper_model, vocab=Vocabulary(clinic_terms()),
                        vocab_correct=True)
    n_ref = len(ref.split())
    assert len(biased.text.split()) <= n_ref + 2, "the biased transcript runs long"
    assert looks_degenerate(biased.words, audio_s=x.size / ASR_FS) is None
    assert error_rates([ref], [biased.text]).wer <= error_rates([ref], [plain.text]).wer


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None,
                    reason="needs espeak-ng (apt-get install -y espeak-ng)")
def test_vocab_restores_a_drug_name_whisper_mishears(whisper_model):
    """Synthesized dictation (the tuning voice): plain Whisper base mishears the drug names;
    the biased decode spells them."""
    from biosig.asr import transcribe
    from biosig.asr.metrics import term_recall
    from biosig.synth.dictation import clinic_terms, render
    text = "current medications colon bisoprolol five milligrams and apixaban five milligrams"
    x = render(text, "espeak-en-us-m7")
    plain = transcribe(x, fs=ASR_FS, model=whisper_model)
    biased = transcribe(x, fs=ASR_FS, model=whisper_model, vocab=Vocabulary(clinic_terms()))
    terms = ["bisoprolol", "apixaban"]
    assert term_recall(terms, biased.text)[0] > term_recall(terms, plain.text)[0]


def test_cli_transcribe_with_vocab(whisper_model_dir, repeat_clip, tmp_path, capsys):
    from biosig.cli import main
    terms = tmp_path / "terms.txt"
    terms.write_text("lisinopril\napixaban\nmetformin\n")
    rc = main(["transcribe", str(repeat_clip[0]), "--model", str(whisper_model_dir),
               "--vocab", str(terms), "--vocab-correct"])
    assert rc in (0, None)
    assert "belly" in capsys.readouterr().out.lower()
    rc = main(["transcribe", str(repeat_clip[0]), "--model", str(whisper_model_dir),
               "--vocab-correct"])
    assert rc == 2
    assert "--vocab-correct: needs --vocab" in capsys.readouterr().err


def test_streaming_with_vocab_on_real_speech(whisper_model, repeat_clip):
    from biosig.asr import DictationEngine, error_rates, load_audio, simulate_stream
    from biosig.synth.dictation import clinic_terms
    path, ref = repeat_clip
    eng = DictationEngine(whisper_model, vocab=Vocabulary(clinic_terms()), vocab_correct=True)
    run = simulate_stream(eng, load_audio(path), chunk_s=1.0)
    assert len(run.text.split()) <= len(ref.split()) + 2
    assert error_rates([ref], [run.text]).wer <= 0.25


def test_prompted_decode_guard_known_answers():
    """The guard of any prompted decode against the plain one (``decode_with_vocab``'s, and
    ``bench/enroll_context.py``'s prompt of a speaker's texts): a degenerate hypothesis or one
    with far more words than the plain decode gives way; a like-sized sane one stays."""
    from types import SimpleNamespace

    def result(text):
        words = _w([" " + t for t in text.split()], step=0.3)
        return SimpleNamespace(segments=[Segment(text, 0.0, 5.0, tuple(words))])

    plain = result("he nodded his head and smiled")
    assert prompted_decode_guard(plain, result("he nodded his head and smiled"), [],
                                 audio_s=5.0) is None
    assert prompted_decode_guard(
        plain, result("he nodded his head and smiled he nodded his head and smiled"), [],
        audio_s=5.0) == "phrase repeated"
    assert prompted_decode_guard(
        plain, result("he nodded his head slowly and then smiled at every single one of the "
                      "people in the room"), [], audio_s=5.0) == \
        "far more words than the plain decode"
    # a vocabulary term said twice back to back is the vocabulary check's (vocab_guard)
    assert prompted_decode_guard(result("on warfarin daily"), result("on warfarin, warfarin"),
                                 ["warfarin"], audio_s=5.0) == "a vocabulary term repeated"
