"""Whisper end to end on real speech (LibriSpeech), offline: transcription, streaming, CLI,
robustness and log hygiene. The model comes from the ``whisper_model_dir`` fixture (conftest);
the tests skip when its packages are absent."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from biosig.asr import (
    ASR_FS,
    DecodeOptions,
    DictationEngine,
    StreamingConfig,
    error_rates,
    format_transcript,
    load_audio,
    simulate_stream,
    transcribe,
    transcribe_file,
)
from biosig.cli import main
from biosig.errors import InputError

CLIP = "1089-134691-0001"   # "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE ..."


@pytest.fixture(scope="module")
def clip(librispeech_clip):
    return librispeech_clip(CLIP)


@pytest.fixture(scope="module")
def offline(whisper_model, clip):  # noqa: F811
    return transcribe_file(clip[0], model=whisper_model)


def test_packaged_model_is_assembled(whisper_model_dir):  # noqa: F811
    names = {p.name for p in whisper_model_dir.iterdir()}
    assert {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"} <= names


def test_transcribe_real_clip(offline, clip):
    assert error_rates([clip[1]], [offline.text]).wer < 0.15
    words = offline.words
    assert len(words) >= 10
    starts = [w.start_s for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w.start_s <= w.end_s <= offline.duration_s + 0.5 for w in words)
    assert offline.rtf > 0


def test_output_formats(offline):
    srt = format_transcript(offline, "srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    vtt = format_transcript(offline, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:0")
    d = json.loads(format_transcript(offline, "json"))
    assert d["segments"][0]["words"][0]["start_s"] >= 0


def test_streaming_short_clip_commits_full_text(whisper_model, clip, offline):  # noqa: F811
    x = load_audio(clip[0])
    run = simulate_stream(DictationEngine(whisper_model), x, chunk_s=1.0)
    assert error_rates([clip[1]], [run.text]).wer < 0.2
    assert error_rates([offline.text], [run.text]).wer < 0.2
    finals = [e for e in run.events if e.type == "final"]
    assert finals and " ".join(e.text for e in finals) == run.text
    times = [e.emitted_at for e in run.events]
    assert times == sorted(times)
    assert [e.start for e in finals] == sorted(e.start for e in finals)
    for e in run.events:
        d = e.to_dict()
        assert set(d) == {"type", "text", "start", "end", "emitted_at"}
        assert d["start"] <= d["end"]
    # every word committed no earlier than it is heard (the clock counts audio time)
    assert all(c >= w.start_s for c, w in zip(run.commit_times_s, run.words))
    assert run.end_clock_s >= run.audio_s


@pytest.mark.parametrize("kind", ["empty", "silent"])
def test_empty_and_silent_arrays(whisper_model, kind):  # noqa: F811
    x = np.zeros(0 if kind == "empty" else 3 * ASR_FS, np.float32)
    tr = transcribe(x, fs=ASR_FS, model=whisper_model)
    assert tr.text == "" and tr.segments == []
    eng = DictationEngine(whisper_model)
    run = simulate_stream(eng, x, chunk_s=1.0)
    assert run.text == ""


def test_clipped_and_telephone_audio(whisper_model, clip):  # noqa: F811
    x = load_audio(clip[0])
    clipped = np.clip(x * 8.0, -1.0, 1.0)         # hard clipping
    tr = transcribe(clipped, fs=ASR_FS, model=whisper_model)
    assert error_rates([clip[1]], [tr.text]).wer < 0.4
    from biosig.dsp import resample
    tel = resample(x, fs=ASR_FS, target_fs=8000).astype(np.float32)   # 8 kHz telephone band
    tr8 = transcribe(tel, fs=8000, model=whisper_model)
    assert error_rates([clip[1]], [tr8.text]).wer < 0.4


def test_corrupt_and_empty_files_give_one_line_errors(tmp_path, whisper_model, capsys):  # noqa: F811
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(InputError, match="bad.wav") as ei:
        transcribe_file(bad, model=whisper_model)
    assert "\n" not in str(ei.value)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), ASR_FS)
    with pytest.raises(InputError, match="empty.wav"):
        transcribe_file(empty, model=whisper_model)


def test_cli_transcribe_formats_and_bad_file(tmp_path, clip, whisper_model_dir, capsys):  # noqa: F811
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio at all")
    rc = main(["transcribe", str(clip[0]), str(bad), "--model", str(whisper_model_dir),
               "--format", "srt", "--out", str(tmp_path / "out"), "--threads", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("biosig: error:")]
    assert len(lines) == 1 and "bad.flac" in lines[0]
    srt = (tmp_path / "out" / f"{CLIP}.srt").read_text()
    assert "-->" in srt


def test_cli_dictate_file_events_and_document(tmp_path, clip, whisper_model_dir, capsys):  # noqa: F811
    ev = tmp_path / "events.jsonl"
    rc = main(["dictate", "--file", str(clip[0]), "--model", str(whisper_model_dir),
               "--events", str(ev), "--threads", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    events = [json.loads(ln) for ln in ev.read_text().splitlines()]
    assert events and {e["type"] for e in events} <= {"partial", "final"}
    finals = " ".join(e["text"] for e in events if e["type"] == "final")
    assert error_rates([clip[1]], [out]).wer < 0.2
    assert error_rates([finals], [out]).wer < 0.05


def test_cli_dictate_needs_one_source(whisper_model_dir, capsys):  # noqa: F811
    rc = main(["dictate", "--model", str(whisper_model_dir)])
    assert rc == 2
    assert "exactly one of --file AUDIO, --mic, --stdin" in capsys.readouterr().err


def test_cli_asr_eval_manifest(tmp_path, clip, whisper_model_dir, capsys):  # noqa: F811
    man = tmp_path / "m.jsonl"
    line = {"id": CLIP, "path": str(clip[0]), "modality": "speech", "fs": 16000.0,
            "num_samples": 1, "duration_s": 1 / 16000, "channels": ["audio"], "subject": None,
            "labels": {"terms": "hour; waiting; stethoscope"}, "text": clip[1]}
    man.write_text(json.dumps(line) + "\n")
    out = tmp_path / "eval.json"
    rc = main(["asr", "eval", str(man), "--model", str(whisper_model_dir), "--streaming",
               "--out", str(out), "--threads", "2"])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["mode"] == "streaming" and rep["n_recordings"] == 1
    assert rep["wer"] < 0.2 and rep["term_recall"] == pytest.approx(2 / 3)
    lat = rep["latency"]
    assert lat["n_words"] > 5 and lat["p50_s"] <= lat["p90_s"] <= lat["max_s"]
    assert "hypothesis" not in rep["items"][0]        # no text unless --with-text


def test_no_transcript_text_in_logs(whisper_model, clip, caplog):  # noqa: F811
    with caplog.at_level(logging.DEBUG, logger="biosig"):
        tr = transcribe_file(clip[0], model=whisper_model,
                             options=DecodeOptions(vad=True, beam_size=1))
        eng = DictationEngine(whisper_model, StreamingConfig())
        simulate_stream(eng, load_audio(clip[0])[: 4 * ASR_FS], chunk_s=1.0)
    logged = " ".join(r.getMessage().lower() for r in caplog.records)
    words = [w for w in tr.text.lower().split() if len(w) > 4]
    assert words and not any(w.strip(".,") in logged for w in words)


def test_long_input_is_cut_into_bounded_windows_at_pauses(clip):
    from biosig.asr.transcribe import speech_windows
    x = load_audio(clip[0])                              # ~5 s of speech
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(30):                                  # ~4 min: speech, pause, speech ...
        parts += [x, np.zeros(int(rng.uniform(0.3, 2.0) * ASR_FS), np.float32)]
    long_x = np.concatenate(parts)
    wins = speech_windows(long_x, max_window_s=28.0)
    assert all(0 < b - a <= 28.0 * ASR_FS for a, b in wins)
    assert wins[0][0] == 0 and wins[-1][1] == long_x.size   # nothing dropped
    assert all(b == a2 for (_, b), (a2, _) in zip(wins, wins[1:]))
    assert speech_windows(np.zeros(60 * ASR_FS, np.float32)) == []   # silence is skipped
    # no window starts or ends inside a clip: cuts fall in the pauses
    starts = np.cumsum([0] + [p.size for p in parts])[:-1:2]
    for a, _ in wins:
        for s in starts:
            assert not (s + 0.5 * ASR_FS < a < s + x.size - 0.5 * ASR_FS)


def test_speech_regions_drop_long_silences_only(clip):
    from biosig.asr.transcribe import speech_regions
    x = load_audio(clip[0])
    z = lambda s: np.zeros(int(s * ASR_FS), np.float32)  # noqa: E731
    y = np.concatenate([x, z(10.0), x, z(3.0), x])
    regs = speech_regions(y, min_silence_s=8.0)
    assert len(regs) == 2
    (a0, b0), (a1, b1) = regs
    assert a0 <= 0.5 * ASR_FS and x.size - ASR_FS < b0 < x.size + 1.0 * ASR_FS
    start2 = x.size + 10 * ASR_FS
    assert start2 - ASR_FS < a1 < start2 + 0.5 * ASR_FS and b1 >= y.size - ASR_FS // 2
    assert len(speech_regions(y, min_silence_s=2.0)) == 3
    assert speech_regions(z(30.0)) == []


def test_vad_hears_quiet_speech_after_loud_speech(clip):
    """Silero's recurrent state, run over a long stream, can miss quiet speech that follows
    loud speech; speech_probabilities restarts it every few seconds."""
    from biosig.asr.vad import VAD_FRAME, speech_probabilities
    d = clip[0].parent.parent / "134686"
    x = load_audio(d / "1089-134686-0000.flac")          # 10.4 s of continuous speech
    x = x / np.abs(x).max()
    loud, quiet = 0.9 * x, 0.004 * x                     # about -48 dBFS peak
    y = np.concatenate([loud, loud, loud, quiet])
    y = y[: y.size // VAD_FRAME * VAD_FRAME]
    alone = (speech_probabilities(quiet[: quiet.size // VAD_FRAME * VAD_FRAME]) >= 0.5).mean()
    n = quiet.size // VAD_FRAME
    one_run = (speech_probabilities(y, reset_s=None)[-n:] >= 0.5).mean()
    restarted = (speech_probabilities(y)[-n:] >= 0.5).mean()
    assert alone > 0.6
    assert one_run < 0.1                                 # the failure being guarded against
    assert restarted > 0.7 * alone
