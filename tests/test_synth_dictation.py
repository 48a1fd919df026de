"""Synthesized dictation: phrase readers, TTS rendering, manifest lines and held-out splits."""

import json
import shutil

import numpy as np
import pytest

from biosig.errors import ConfigError, InputError
from biosig.synth.dictation import (
    VOICES,
    Phrase,
    dictation_phrases,
    read_phrases,
    render,
    split_held_out,
    synth_dictation,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")
needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None,
                                    reason="festival not installed (apt-get install festival "
                                           "festvox-kallpc16k)")


def test_builtin_dictation_phrases_have_documents_and_terms():
    ph = dictation_phrases()
    assert len(ph) >= 10 and len({p.id for p in ph}) == len(ph)
    assert all(p.document and p.terms for p in ph)
    assert all(t.lower() in p.text for p in ph for t in p.terms)
    assert any("\n\n" in p.document for p in ph)


def test_read_phrases_formats(tmp_path, data_root):
    csv_phrases = read_phrases(data_root / "speech" / "medical_speech_text" / "phrases.csv",
                               limit=5)
    assert len(csv_phrases) == 5 and all(p.text for p in csv_phrases)
    txt = tmp_path / "p.txt"
    txt.write_text("first phrase\n\nsecond phrase\nfirst phrase\n")
    assert [p.text for p in read_phrases(txt)] == ["first phrase", "second phrase"]
    js = tmp_path / "p.jsonl"
    js.write_text(json.dumps({"id": "a", "text": "x y", "terms": ["x"]}) + "\n")
    assert read_phrases(js) == [Phrase("a", "x y", None, ("x",), "p.jsonl")]
    notes = data_root / "speech" / "primock57_text" / "notes"
    assert read_phrases(notes, limit=2)[0].text
    with pytest.raises(InputError, match="nope.txt: no such file"):
        read_phrases(tmp_path / "nope.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="bad.csv: CSV needs a 'phrase' or 'text' column"):
        read_phrases(bad)


def test_unknown_voice_is_an_error():
    with pytest.raises(ConfigError, match="voice 'robot'"):
        render("hello", "robot")


@needs_espeak
def test_synth_writes_audio_and_manifest_and_resumes(tmp_path):
    from biosig.manifests import read_manifest
    phrases = dictation_phrases()[:2]
    res = synth_dictation(phrases, tmp_path, voices=["espeak-en-us", "espeak-en-gb-m3"],
                          noise_snr_db=20.0, long_form_s=5.0, progress=False)
    recs = list(read_manifest(res.manifest))
    assert res.n_written == 4 and len(recs) == 4
    import soundfile as sf
    for r in recs:
        x, fs = sf.read(tmp_path / r.path)
        assert fs == 16000 and x.ndim == 1 and r.num_samples == x.size
        assert r.subject == r.labels["voice"] and r.labels["noise_snr_db"] == 20.0
        assert r.text in {p.text for p in phrases}
        assert 0.01 < np.sqrt(np.mean(x ** 2)) < 0.9
    assert res.long_form and (tmp_path / "long_form.jsonl").is_file()
    again = synth_dictation(phrases, tmp_path, voices=["espeak-en-us", "espeak-en-gb-m3"],
                            progress=False)
    assert again.n_written == 0 and again.n_skipped == 4
    train, test = split_held_out(recs, test_voices=["espeak-en-gb-m3"],
                                 test_phrases=[phrases[1].id])
    assert [r.id for r in test] == [f"espeak-en-gb-m3--{phrases[1].id}"]
    assert [r.id for r in train] == [f"espeak-en-us--{phrases[0].id}"]


@needs_festival
def test_festival_voice_renders_16k():
    x = render("blood pressure is normal", "festival-kal-diphone")
    assert x.dtype == np.float32 and 0.5 < x.size / 16000 < 5


def test_voice_table_names_engines():
    assert {e for e, _ in VOICES.values()} == {"espeak-ng", "festival"}


def test_telephone_channel_is_narrowband_8khz_with_the_asked_snr():
    from scipy.signal import welch

    from biosig.synth.dictation import TELEPHONE_FS, telephone_channel
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)     # flat spectrum
    y = telephone_channel(x, fs=16000, snr_db=200.0, rng=rng)
    assert y.dtype == np.float32 and abs(y.size - x.size // 2) <= 1
    f, p = welch(y, fs=TELEPHONE_FS, nperseg=1024)
    inband = p[(f > 500) & (f < 3000)].mean()
    assert p[f < 100].mean() < inband / 100          # below the band: > 20 dB down
    assert p[f > 3850].mean() < inband / 100         # above it
    t = np.arange(3 * 16000) / 16000
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 47)).astype(np.float32)
    x *= 0.3 / np.max(np.abs(x))
    # the noise added at 10 dB SNR: residual power about a tenth of the speech's
    clean = telephone_channel(x, fs=16000, snr_db=200.0, rng=np.random.default_rng(1))
    noisy = telephone_channel(x, fs=16000, snr_db=10.0, rng=np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))
    assert 6.0 < snr < 14.0
    with pytest.raises(ConfigError, match="band_hz"):
        telephone_channel(x, fs=16000, snr_db=10, rng=rng, band_hz=(300, 5000))


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="needs espeak-ng (apt-get install -y espeak-ng)")
def test_synth_telephone_copies_are_8khz_and_resume(tmp_path):
    from biosig.manifests import read_manifest
    from biosig.synth.dictation import Phrase, synth_dictation
    phrases = [Phrase("p1", "chest pain"), Phrase("p2", "shortness of breath")]
    res = synth_dictation(phrases, tmp_path, voices=["espeak-en-us"], telephone_frac=1.0,
                          progress=False)
    recs = {r.id: r for r in read_manifest(res.manifest)}
    assert set(recs) == {"espeak-en-us--p1", "espeak-en-us--p1--tel", "espeak-en-us--p2",
                         "espeak-en-us--p2--tel"}
    tel = recs["espeak-en-us--p1--tel"]
    assert tel.fs == 8000 and tel.labels["channel"] == "telephone"
    assert 10 <= tel.labels["noise_snr_db"] <= 20
    assert recs["espeak-en-us--p1"].labels["channel"] == "wideband"
    import soundfile as sf
    assert sf.info(str(tmp_path / tel.path)).samplerate == 8000
    again = synth_dictation(phrases, tmp_path, voices=["espeak-en-us"], telephone_frac=1.0,
                            progress=False)
    assert again.n_written == 0 and again.n_skipped == 2


def test_generated_dictation_balanced_terms_cover_the_clinic_vocabulary():
    from biosig.synth.dictation import clinic_terms, generated_dictation
    vocab = set(clinic_terms())
    plain = generated_dictation(120, seed=7)
    balanced = generated_dictation(120, seed=7, balance_terms=True)
    count = {t: sum(t in p.terms for p in balanced) for t in vocab}
    # uniform draws leave terms out; balanced draws speak every term, about equally often
    assert set().union(*(p.terms for p in plain)) < vocab
    assert min(count.values()) >= 1 and max(count.values()) - min(count.values()) <= 3
    assert all(t in p.text for p in balanced for t in p.terms)
    assert all(p.id.startswith("genb-7-") for p in balanced)       # never the same ids
    assert len({p.text for p in balanced}) == 120
    assert generated_dictation(120, seed=7) == plain               # seeded, unchanged
    assert read_phrases("generated-balanced:120:7") == balanced
    assert read_phrases("generated:120:7") == plain
    with pytest.raises(ConfigError, match="expected generated-balanced:N or"):
        read_phrases("generated-balanced:x")
    with pytest.raises(ConfigError, match="expected generated:N or"):
        read_phrases("generated:3:1:2")


def test_write_held_out_split_keeps_only_the_asked_lines(tmp_path):
    """A synth folder reused by several runs: only this run's voices and phrases are split."""
    from biosig.manifests import ManifestWriter, Record
    from biosig.synth.dictation import write_held_out_split
    man = tmp_path / "manifest.jsonl"
    with ManifestWriter(man) as w:
        for v in ("va", "vb", "vt"):
            for p in ("p1", "p2", "old", "pt"):
                w.write(Record(id=f"{v}--{p}", path=f"audio/{v}/{p}.wav", modality="speech",
                               fs=16000.0, num_samples=16000, duration_s=1.0,
                               channels=["audio"], subject=v, text="x",
                               labels={"voice": v, "phrase_id": p}))
    tr, te, n_tr, n_te = write_held_out_split(man, test_voices=["vt"], test_phrases=["pt"],
                                              only_voices=["va", "vt"],
                                              only_phrases=["p1", "p2", "pt"])
    train = sorted(json.loads(x)["id"] for x in tr.read_text().splitlines())
    test = sorted(json.loads(x)["id"] for x in te.read_text().splitlines())
    assert train == ["va--p1", "va--p2"] and test == ["vt--pt"] and (n_tr, n_te) == (2, 1)
