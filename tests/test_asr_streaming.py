"""The streaming engine's logic with a scripted recogniser (no Whisper): local agreement,
bounded buffer, merged pending audio, silence skipping, events and the simulated clock."""

import numpy as np
import pytest

from biosig.asr import ASR_FS, DictationEngine, StreamingConfig, simulate_stream
from biosig.asr.models import AsrModel, DecodeResult
from biosig.asr.types import Segment, Word
from biosig.errors import ConfigError

# A "speaker" saying one word every 0.5 s: word k spans [0.5 k, 0.5 k + 0.4].
SCRIPT = [(f" w{k}", 0.5 * k, 0.5 * k + 0.4) for k in range(40)]


class ScriptedModel(AsrModel):
    """Returns the script's words that lie fully inside the buffer; the word cut by the
    buffer end is returned with a wrong spelling (unstable, like a real recogniser)."""

    backend = "scripted"
    name = "scripted"

    def __init__(self, offsets):
        self.offsets = offsets  # list, one element per engine: absolute start of the buffer
        self.calls = []

    def decode(self, audio, options=None):
        start = self.offsets[0]()
        end = start + audio.size / ASR_FS
        self.calls.append((start, end, options.initial_prompt if options else None))
        groups = {}
        for k, (text, a, b) in enumerate(SCRIPT):  # segments of 4 words, like sentences
            if a >= start - 1e-9 and b <= end + 1e-9:
                groups.setdefault(k // 4, []).append(Word(text, a - start, b - start))
            elif a < end < b and a >= start:
                groups.setdefault(k // 4, []).append(Word(text + "x", a - start, end - start))
        segs = [Segment("".join(w.text for w in ws), ws[0].start_s, ws[-1].end_s, tuple(ws))
                for _, ws in sorted(groups.items())]
        return DecodeResult(segs, "en", 0.0)


def make_engine(model_cls=None, **cfg):
    holder = []
    model = (model_cls or ScriptedModel)(holder)
    eng = DictationEngine(model, StreamingConfig(vad=False, **cfg))
    holder.append(lambda: eng._buf_start / ASR_FS)
    return eng, model


def noise(seconds):
    return (np.random.default_rng(0).standard_normal(int(seconds * ASR_FS)) * 0.1
            ).astype(np.float32)


def test_local_agreement_commits_after_two_agreeing_decodes():
    eng, _ = make_engine(agreement=2)
    eng.push(noise(1.0))
    ev1 = eng.step(now=1.0)
    assert [e.type for e in ev1] == ["partial"]          # first hypothesis: nothing agreed
    eng.push(noise(1.0))
    ev2 = eng.step(now=2.0)
    finals = [e for e in ev2 if e.type == "final"]
    assert finals and finals[0].text == "w0 w1"          # w0, w1 in both hypotheses
    assert eng.commit_times == [2.0, 2.0]
    assert eng.committed_by == {"agreement": 2, "stable": 0, "forced": 0, "endpoint": 0,
                                "final": 0}


def test_agreement_one_commits_immediately_even_unstable_words():
    eng, _ = make_engine(agreement=1)
    eng.push(noise(1.2))
    eng.step(now=1.2)
    assert eng.text == "w0 w1 w2x"      # the word cut by the buffer end is committed as is
    eng.push(noise(0.8))
    eng.finish(now=2.5)
    assert eng.text == "w0 w1 w2x w3"   # and is not repeated afterwards
    assert eng.committed_by["agreement"] == 4 == sum(eng.committed_by.values())


def test_simulated_stream_commits_everything_in_order_with_monotonic_events():
    eng, model = make_engine()
    audio = noise(20.2)
    run = simulate_stream(eng, audio, chunk_s=1.0)
    assert run.text == " ".join(w[0].strip() for w in SCRIPT)
    finals = [e for e in run.events if e.type == "final"]
    times = [e.emitted_at for e in run.events]
    assert times == sorted(times)
    starts = [e.start for e in finals]
    assert starts == sorted(starts)
    for e in run.events:
        d = e.to_dict()
        assert set(d) == {"type", "text", "start", "end", "emitted_at"}
        assert d["type"] in ("partial", "final") and d["start"] <= d["end"]
    # every word is committed after it ends, at most a few chunks later
    lat = np.array(run.commit_times_s) - np.array([w.end_s for w in run.words])
    assert (lat > 0).all() and lat.max() < 3.5
    # the buffer was trimmed: no decode ever saw more than max_buffer_s + a chunk
    assert max(b - a for a, b, _ in model.calls) <= eng.config.max_buffer_s + 1.0
    # committed text before the buffer is fed back as the prompt
    assert any(p and p.startswith("w") for _, _, p in model.calls)
    # every committed word is counted once, under the rule that committed it
    assert sum(eng.committed_by.values()) == len(run.words)
    assert eng.committed_by["agreement"] > 0 and eng.committed_by["stable"] == 0


def test_pending_audio_is_merged_not_queued():
    eng, model = make_engine()
    for _ in range(5):          # five chunks arrive while the decoder is busy elsewhere
        eng.push(noise(1.0))
    eng.step(now=5.0)
    assert len(model.calls) == 1   # one decode over all of it
    assert model.calls[0][1] - model.calls[0][0] == pytest.approx(5.0)


def test_a_backlog_past_the_window_is_decoded_in_steps_not_lost():
    """Audio pushed far faster than real time (a file sent at once, a machine far behind):
    Whisper hears 30 s at most, so a step takes in at most max_buffer_s; the rest waits in the
    inbox and nothing is lost."""
    eng, model = make_engine()
    eng.push(noise(20.2))                 # the whole script at once
    assert eng.inbox_s == pytest.approx(20.2) and eng.audio_s == pytest.approx(20.2)
    eng.step(now=0.0)
    assert eng.inbox_s == pytest.approx(20.2 - eng.config.max_buffer_s)
    eng.finish(now=1.0)
    assert eng.inbox_s == 0 and eng.n_dropped_s == 0
    assert eng.text == " ".join(w[0].strip() for w in SCRIPT)
    assert max(b - a for a, b, _ in model.calls) <= eng.config.max_buffer_s + eng.config.min_chunk_s


def test_min_chunk_gates_decoding():
    eng, model = make_engine(min_chunk_s=0.5)
    eng.push(noise(0.2))
    assert eng.step() == [] and model.calls == []


def test_silence_is_skipped_with_vad():
    holder = []
    model = ScriptedModel(holder)
    eng = DictationEngine(model, StreamingConfig(vad=True))
    holder.append(lambda: eng._buf_start / ASR_FS)
    for _ in range(5):
        eng.push(np.zeros(ASR_FS, np.float32))
        eng.step()
    eng.finish()
    assert model.calls == [] and eng.text == ""
    assert eng.buffer_s <= 0.5     # the silence was dropped


def test_document_applies_commands():
    class Fixed(AsrModel):
        def decode(self, audio, options=None):
            ws = [Word(t, 0.1 * i, 0.1 * i + 0.05) for i, t in
                  enumerate([" stable", " period", " new", " paragraph", " plan"])]
            return DecodeResult([Segment("", 0, 1, tuple(ws))], "en", 0.0)
    eng = DictationEngine(Fixed(), StreamingConfig(vad=False))
    eng.push(noise(1.0))
    eng.finish()
    assert eng.text == "stable period new paragraph plan"
    assert eng.document == "Stable.\n\nPlan"


@pytest.mark.parametrize("key, value, match", [
    ("agreemnt", 2, r"key 'agreemnt': unknown key \(expected one of language, .*agreement"),
    ("agreement", 0, r"key 'agreement': Input should be greater than or equal to 1 \(got 0\)"),
    ("min_chunk_s", -0.5, r"key 'min_chunk_s': Input should be greater than or equal to 0 "
                          r"\(got -0\.5\)"),
    ("vad_threshold", 1.5, r"key 'vad_threshold': Input should be less than or equal to 1 "
                           r"\(got 1\.5\)"),
    ("beam_size", "5", r"key 'beam_size': Input should be a valid integer \(got '5'\)"),
    ("max_buffer_s", 45.0, r"key 'max_buffer_s': Input should be less than or equal to 30"),
    ("trim_buffer_s", 25.0, r"trim_buffer_s is 25, expected at most max_buffer_s \(20\)"),
    ("stable_min_probability", -0.1, r"key 'stable_min_probability'"),
    ("audio_ctx_pad_s", float("nan"), r"key 'audio_ctx_pad_s': Input should be a finite number"),
])
def test_config_ranges_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=rf"^streaming.yaml: {match}"):
        StreamingConfig.validate_mapping({key: value}, source="streaming.yaml")
    with pytest.raises(ConfigError, match=rf"^StreamingConfig: {match}"):
        StreamingConfig(**{key: value})


def test_config_validation():
    cfg = StreamingConfig.validate_mapping({"beam_size": 2.0, "min_chunk_s": 1}, source="s")
    assert cfg.beam_size == 2 and cfg.min_chunk_s == 1.0 and cfg == StreamingConfig(
        beam_size=2, min_chunk_s=1.0)
    with pytest.raises(ValueError, match="frozen"):
        cfg.agreement = 3
    with pytest.raises(ConfigError, match=r"s: expected a mapping of StreamingConfig keys"):
        StreamingConfig.validate_mapping(["agreement"], source="s")
    with pytest.raises(ConfigError, match="chunk_s"):
        simulate_stream(make_engine()[0], noise(1.0), chunk_s=0)


def test_cli_config_errors_name_the_file_and_key(tmp_path, capsys):
    # the streaming config is checked before the model or the audio is touched
    from biosig.cli import main
    p = tmp_path / "s.yaml"
    p.write_text("agreement: 2\nvad_threshold: 1.5\n")
    assert main(["dictate", "--model", "nope", "--file", str(tmp_path / "a.wav"),
                 "--config", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{p}: key 'vad_threshold': Input should be less than or equal to 1 (got 1.5)" in err
    assert len(err.splitlines()) == 1
    p.write_text("agreement: 2\n")
    assert main(["dictate", "--model", "nope", "--file", str(tmp_path / "a.wav"),
                 "--config", str(p), "--beam-size", "0"]) == 2
    assert "key 'beam_size': Input should be greater than or equal to 1 (got 0)" in \
        capsys.readouterr().err


def test_stdin_pcm_reader(monkeypatch):
    import io
    import sys

    from biosig.asr.live import stdin_chunks
    pcm = (np.arange(-8000, 8000, dtype=np.int16)).tobytes() + b"\x01"  # odd trailing byte
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(pcm)})())
    chunks = list(stdin_chunks(chunk_s=0.25))
    x = np.concatenate(chunks)
    assert x.size == 16000 and [c.size for c in chunks[:3]] == [4000] * 3
    assert x[0] == pytest.approx(-8000 / 32768) and x.dtype == np.float32


def test_realtime_chunks_release_each_chunk_when_it_would_have_been_recorded():
    """A recording played as a live source (``dictate --file --realtime``): the same samples,
    in ``chunk_s`` chunks, none handed out before its last sample's time."""
    import time

    from biosig.asr.live import realtime_chunks
    audio = noise(0.5)
    t0 = time.monotonic()
    chunks, released = [], []
    for c in realtime_chunks(audio, chunk_s=0.2):
        released.append(time.monotonic() - t0)
        chunks.append(c)
    assert [c.size for c in chunks] == [3200, 3200, 1600]
    np.testing.assert_array_equal(np.concatenate(chunks), audio)
    assert all(t >= end - 1e-3 for t, end in zip(released, [0.2, 0.4, 0.5]))


def test_run_live_merges_queued_chunks_and_finishes():
    """Chunks that arrive while a decode runs are decoded together: the first decode is held
    until the source has sent everything else (events, not sleeps, so it does not depend on the
    machine's speed)."""
    import threading

    from biosig.asr.live import run_live
    eng, model = make_engine()
    slow_decode = model.decode
    decoding, all_sent = threading.Event(), threading.Event()

    def decode(audio, options=None):      # the first decode lasts until every chunk is queued
        decoding.set()
        all_sent.wait(timeout=30)
        return slow_decode(audio, options)

    model.decode = decode

    def source():
        for k in range(6):
            yield noise(0.5)
            if k == 0:                    # the rest arrives while the first decode runs
                decoding.wait(timeout=30)
        all_sent.set()

    events = []
    run_live(eng, source(), events.append)
    assert decoding.is_set() and all_sent.is_set()
    assert eng.finished and eng.audio_s == pytest.approx(3.0)
    assert eng.text.split()[:4] == ["w0", "w1", "w2", "w3"]
    assert len(model.calls) < 6   # chunks queued during a decode were decoded together


class _UnsureModel(ScriptedModel):
    """The scripted words, with word w2 uncertain (probability 0.3)."""

    def decode(self, audio, options=None):
        res = super().decode(audio, options)
        segs = [Segment(s.text, s.start_s, s.end_s, tuple(
            Word(w.text, w.start_s, w.end_s, 0.3 if w.text.strip() == "w2" else 1.0)
            for w in s.words)) for s in res.segments]
        return DecodeResult(segs, "en", 0.0)


def test_stable_margin_commits_on_first_sighting_unless_unsure():
    for min_p, expected in ((0.0, "w0 w1 w2 w3"), (0.5, "w0 w1")):
        holder = []
        model = _UnsureModel(holder)
        eng = DictationEngine(model, StreamingConfig(vad=False, stable_margin_s=0.5,
                                                     stable_min_probability=min_p))
        holder.append(lambda eng=eng: eng._buf_start / ASR_FS)
        eng.push(noise(2.5))
        eng.step(now=2.5)   # first decode: words ending by 2.0 s are deep enough
        assert eng.text == expected
        assert eng.committed_by["stable"] == len(expected.split())


def _words(texts, step=0.4):
    return [Word(f" {t}", k * step, k * step + 0.3) for k, t in enumerate(texts)]


@pytest.mark.parametrize("texts, audio_s, speech_end_s, why", [
    ("the patient is well".split(), 2.0, None, None),
    ("the the the the".split(), 2.0, None, "1-gram repeated"),
    ("the the the".split(), 2.0, None, None),                      # three times: speech
    ("of the day of the day of the day".split(), 5.0, None, "3-gram repeated"),
    (["a"] * 2 + [f"w{k}" for k in range(30)], 4.0, None, "too many words"),
    ("chest pain".split(), 10.0, 9.0, "stopped early"),             # words end at 0.7 s
    ("chest pain".split(), 10.0, 2.0, None),
])
def test_looks_degenerate(texts, audio_s, speech_end_s, why):
    from biosig.asr.streaming import looks_degenerate
    assert looks_degenerate(_words(texts), audio_s=audio_s, speech_end_s=speech_end_s) == why


class _LoopsOnShortWindow(ScriptedModel):
    """The scripted words on the full window; a repetition loop on a shortened one."""

    short_window = True

    def decode(self, audio, options=None):
        if options is not None and options.audio_ctx_pad_s is not None:
            self.calls.append(("short", audio.size / ASR_FS))
            return _loop_result(8, 0.1)
        return super().decode(audio, options)


def _loop_result(n, word_s):
    """A decode stuck in a loop: " and" ``n`` times."""
    loop = tuple(Word(" and", word_s * k, word_s * (k + 1)) for k in range(n))
    return DecodeResult([Segment("and " * n, 0.0, word_s * n, loop)], "en", 0.0)


def test_short_window_loop_is_decoded_again_on_the_full_window():
    eng, _ = make_engine(_LoopsOnShortWindow, audio_ctx_pad_s=1.0)
    run = simulate_stream(eng, noise(6.0), chunk_s=1.0)
    assert "and" not in run.text.split()
    assert run.text.split()[:4] == ["w0", "w1", "w2", "w3"]
    assert run.n_full_window_retries == run.n_decodes > 0


class _LoopsAtFirst(ScriptedModel):
    """A repetition loop on every window for the first three decodes, then the script."""

    def decode(self, audio, options=None):
        self.n = getattr(self, "n", 0) + 1
        if self.n <= 3:
            return _loop_result(60, 0.05)
        return super().decode(audio, options)


def test_a_loop_on_the_full_window_too_is_never_committed():
    eng, _ = make_engine(_LoopsAtFirst, agreement=1)
    run = simulate_stream(eng, noise(6.0), chunk_s=1.0)
    assert "and" not in run.text.split() and eng.n_degenerate_dropped >= 1
    assert run.text.split()[:4] == ["w0", "w1", "w2", "w3"]


def test_document_keeps_whisper_word_spacing():
    """Whisper splits "62-year" into the words " 62" and "-year"; the document must not put
    a space between them."""
    eng, _ = make_engine()
    eng.committed = [Word(" The", 0.0, 0.2), Word(" 62", 0.2, 0.4), Word("-year", 0.4, 0.6),
                     Word(" old", 0.6, 0.8), Word(" man", 0.8, 1.0), Word(" period", 1.0, 1.2)]
    assert eng.document == "The 62-year old man."
