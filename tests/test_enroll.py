"""Per-speaker enrollment (issue 29, item 3): the folder checks, the speakers folder, a real
(two-step) enrollment of a tiny Whisper on LibriSpeech clips that `transcribe --speaker` then
uses, the base-model check, and speakers in the server's sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from biosig.asr.speakers import (
    SPEAKERS_ENV,
    SpeakerModels,
    check_speaker_name,
    load_speaker,
    speakers_dir,
)
from biosig.cli import main
from biosig.errors import ConfigError, InputError
from biosig.train.whisper.enroll import (
    EnrollSettings,
    enrollment_clips,
    gate_fold_of,
    held_out_indices,
)

CLIPS = ("1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001")


def _wav(path, seconds=3.0):
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)


def _folder(tmp_path, n=3, seconds=3.0):
    d = tmp_path / "rec"
    d.mkdir()
    for k in range(n):
        _wav(d / f"u{k}.wav", seconds)
        (d / f"u{k}.txt").write_text(f"sentence number {k}\n", encoding="utf-8")
    return d


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / "u1.txt").unlink(), r"1 recording\(s\) without their \.txt: u1\.wav"),
    (lambda d: (d / "extra.txt").write_text("hello"),
     r"1 \.txt file\(s\) without their recording: extra\.txt"),
    (lambda d: (d / "u2.txt").write_text("  \n"), r"1 empty \.txt file\(s\): u2\.txt"),
    (lambda d: (d / "u0.wav").write_bytes(b"RIFF not really"),
     r"1 recording\(s\) cannot be read: u0\.wav"),
    (lambda d: [p.unlink() for p in d.iterdir()], r"no recordings"),
])
def test_mismatched_folders_are_one_line_errors_naming_the_folder_and_file(
        tmp_path, damage, needle):
    d = _folder(tmp_path)
    damage(d)
    with pytest.raises(InputError, match=needle) as err:
        enrollment_clips(d, min_audio_s=1.0)
    assert str(err.value).startswith(str(d)) and "\n" not in str(err.value)


def test_too_little_audio_and_a_good_folder(tmp_path):
    d = _folder(tmp_path, n=3, seconds=2.0)
    with pytest.raises(InputError, match=r"6\.0 s of audio in 3 recording\(s\), expected at "
                                         r"least 15 s"):
        enrollment_clips(d)
    clips = enrollment_clips(d, min_audio_s=5.0)
    assert [c.id for c in clips] == ["u0", "u1", "u2"]
    assert clips[0].text_file == d / "u0.txt" and clips[0].duration_s == pytest.approx(2.0)


def test_cli_enroll_error_is_one_line(tmp_path, capsys):
    d = _folder(tmp_path)
    (d / "u1.txt").unlink()
    rc = main(["enroll", "dr-a", str(d), "--model", "packaged:whisper-base",
               "--speakers-dir", str(tmp_path / "spk")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "u1.wav" in err and str(d) in err
    assert not (tmp_path / "spk" / "dr-a").exists()


def test_speakers_folder_default_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.delenv(SPEAKERS_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert speakers_dir() == tmp_path / "xdg" / "biosig" / "speakers"
    monkeypatch.setenv(SPEAKERS_ENV, str(tmp_path / "env"))
    assert speakers_dir() == tmp_path / "env"
    assert speakers_dir(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(ConfigError, match=r"speaker 'nobody': not enrolled in .*env"):
        load_speaker("nobody")


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "", "x" * 65])
def test_bad_speaker_names(name):
    with pytest.raises(ConfigError, match="speaker name"):
        check_speaker_name(name)


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match="lr"):
        EnrollSettings(lr=-1.0)
    with pytest.raises(ConfigError, match="epoch"):
        EnrollSettings.validate_mapping({"epoch": 3}, source="--set")


@pytest.fixture(scope="module")
def enrolled(tiny_whisper_dir, librispeech_clip, tmp_path_factory):
    """Speaker dr-a enrolled on four LibriSpeech clips with the tiny Whisper: two optimizer
    steps (the tiny model learns nothing; the path is what is tested)."""
    import logging
    tmp = tmp_path_factory.mktemp("enroll")
    rec = tmp / "recordings"
    rec.mkdir()
    refs = []
    for cid in CLIPS:
        path, ref = librispeech_clip(cid)
        shutil.copy(path, rec / path.name)
        (rec / f"{cid}.txt").write_text(ref.capitalize() + ".\n", encoding="utf-8")
        refs.append(ref)
    spk = tmp / "speakers"
    handler = _Capture()
    logging.getLogger("biosig").addHandler(handler)
    logging.getLogger("biosig").setLevel(logging.DEBUG)
    try:
        rc = main(["enroll", "dr-a", str(rec), "--model", str(tiny_whisper_dir),
                   "--speakers-dir", str(spk), "--no-progress", "--set", "max_steps=2",
                   "--set", "epochs=1", "--set", "batch_size=2", "--set", "min_audio_s=5"])
    finally:
        logging.getLogger("biosig").removeHandler(handler)
    assert rc == 0
    return {"dir": spk, "recordings": rec, "refs": refs, "model": tiny_whisper_dir,
            "log": "\n".join(handler.lines)}


class _Capture(__import__("logging").Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_enrollment_writes_the_speaker_folder_with_provenance(enrolled):
    d = enrolled["dir"] / "dr-a"
    assert (d / "ct2" / "model.bin").is_file()
    assert (d / "adapter" / "adapter_model.safetensors").is_file()
    prov = json.loads((d / "speaker.json").read_text())
    assert prov["name"] == "dr-a" and prov["n_recordings"] == len(CLIPS)
    assert prov["base_model"]["name"] == str(enrolled["model"])
    assert prov["base_model"]["digest"].startswith("sha256:")
    assert prov["audio_s"] > 5 and prov["enroll_s"] > 0 and prov["biosig_version"]
    assert {"git", "created", "settings"} <= set(prov)
    assert prov["settings"]["max_steps"] == 2
    assert all(r["audio"].startswith("sha256:") and r["text"].startswith("sha256:")
               for r in prov["recordings"])
    # nothing of the text in the provenance or the log; no temporary folder left behind
    text = (d / "speaker.json").read_text().lower() + enrolled["log"].lower()
    for ref in enrolled["refs"]:
        assert ref.lower() not in text
    assert "turnips" not in text and "belly" not in text
    assert [p.name for p in enrolled["dir"].iterdir()] == ["dr-a"]


def _enroll_quick(enrolled, name, speakers, *settings) -> int:
    """``biosig enroll`` of the fixture's recordings with two optimizer steps, and ``settings``
    (``key=value``) on top."""
    extra = [a for kv in settings for a in ("--set", kv)]
    return main(["enroll", name, str(enrolled["recordings"]), "--model",
                 str(enrolled["model"]), "--speakers-dir", str(speakers), "--no-progress",
                 "--set", "max_steps=2", "--set", "epochs=1", "--set", "batch_size=2",
                 "--set", "min_audio_s=5", *extra])


def test_held_out_recordings_choose_the_epoch_and_the_adapter(enrolled, tmp_path):
    """``--set holdout=0.25``: one of the four recordings stays out of training and decides
    (epoch 0 is the base model); the provenance says what was kept and on what it was
    scored."""
    assert held_out_indices(4, 0.25) == {1} and held_out_indices(10, 0.3) == {1, 5, 9}
    assert held_out_indices(10, 0.0) == set() and held_out_indices(3, 0.01) == {1}
    assert _enroll_quick(enrolled, "dr-b", tmp_path, "holdout=0.25") == 0
    prov = json.loads((tmp_path / "dr-b" / "speaker.json").read_text())
    assert prov["n_held_out"] == 1 and prov["n_recordings"] == len(CLIPS)
    assert prov["wer_enrollment_clips"]["scored_on"] == "the held-out recordings"
    assert prov["kept"] == ("adapter" if prov["best_epoch"] > 0 else "base")
    same = json.loads((enrolled["dir"] / "dr-a" / "speaker.json").read_text())
    assert same["n_held_out"] == 0
    assert same["wer_enrollment_clips"]["scored_on"] == "the training recordings"
    with pytest.raises(ConfigError, match="holdout"):
        EnrollSettings.validate_mapping({"holdout": 1.0}, source="--set")


def test_cross_validated_gate_scores_every_recording_and_decides(enrolled, tmp_path):
    """``--set gate_folds=2``: two adapters, each trained on two of the four recordings and
    scored on the other two after every epoch; the pooled word errors decide the epoch count
    (0: the base model, nothing more trained, no model of the speaker's own)."""
    from biosig.asr.speakers import speaker_model
    assert gate_fold_of(5, 2) == [0, 1, 0, 1, 0]
    assert _enroll_quick(enrolled, "dr-g", tmp_path, "gate_folds=2") == 0
    prov = json.loads((tmp_path / "dr-g" / "speaker.json").read_text())
    gate = prov["gate"]
    assert gate["folds"] == 2 and set(gate["wer_by_epochs"]) == {"0", "1"}
    words = sum(len(r.split()) for r in enrolled["refs"])
    assert gate["n_ref_words"] == words                      # every recording judged once
    best = min(gate["wer_by_epochs"].values())
    assert gate["wer_by_epochs"][str(gate["epochs"])] == best
    assert gate["epochs"] == 0 or gate["wer_by_epochs"]["0"] > best   # a tie keeps the base
    assert prov["wer_enrollment_clips"]["scored_on"].endswith("2-fold cross-validated")
    if gate["epochs"] == 0:
        assert prov["kept"] == "base" and prov["model"] == {"format": "base"}
        assert not (tmp_path / "dr-g" / "ct2").exists()
        assert speaker_model("dr-g", model=str(enrolled["model"]), folder=tmp_path) \
            == str(enrolled["model"])
    else:
        assert (tmp_path / "dr-g" / "ct2" / "model.bin").is_file()
    text = (tmp_path / "dr-g" / "speaker.json").read_text().lower()
    assert not any(r.lower() in text for r in enrolled["refs"])


def test_a_speaker_kept_on_the_base_model_decodes_with_it(enrolled, tmp_path):
    from biosig.asr.speakers import load_speaker, speaker_model
    src = json.loads((enrolled["dir"] / "dr-a" / "speaker.json").read_text())
    d = tmp_path / "dr-base"
    d.mkdir()
    (d / "speaker.json").write_text(json.dumps({**src, "name": "dr-base", "kept": "base",
                                                "model": {"format": "base"}}))
    assert load_speaker("dr-base", folder=tmp_path).uses_base
    assert speaker_model("dr-base", model=str(enrolled["model"]), folder=tmp_path) \
        == str(enrolled["model"])
    (d / "speaker.json").write_text(json.dumps({**src, "name": "dr-base"}))   # ct2 missing
    with pytest.raises(ConfigError, match="holds no model.bin"):
        load_speaker("dr-base", folder=tmp_path)


@pytest.mark.parametrize("bad,match", [({"gate_folds": 1}, "gate_folds is 1"),
                                       ({"gate_folds": 2, "holdout": 0.3}, "use one of them")])
def test_gate_settings_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        EnrollSettings.validate_mapping(bad, source="--set")


def test_enrolling_again_needs_overwrite(enrolled, capsys):
    rc = main(["enroll", "dr-a", str(enrolled["recordings"]), "--model", str(enrolled["model"]),
               "--speakers-dir", str(enrolled["dir"])])
    assert rc == 2 and "already enrolled" in capsys.readouterr().err


def test_transcribe_with_the_speaker_and_the_env_folder(enrolled, librispeech_clip, tmp_path,
                                                       monkeypatch, capsys):
    from biosig.asr import DecodeOptions, load_model
    from biosig.asr.speakers import speaker_model
    # the tiny random model never stops talking: the command runs on a blip it skips, the
    # speaker's model decodes real speech with a token cap
    blip = tmp_path / "blip.wav"
    _wav(blip, 0.05)
    args = ["transcribe", str(blip), "--model", str(enrolled["model"]), "--speaker", "dr-a",
            "--threads", "1"]
    assert main(args + ["--speakers-dir", str(enrolled["dir"])]) == 0
    capsys.readouterr()
    monkeypatch.setenv(SPEAKERS_ENV, str(enrolled["dir"]))
    assert main(args) == 0
    m = load_model(speaker_model("dr-a", model=str(enrolled["model"])), cpu_threads=1)
    assert m.name == str(enrolled["dir"] / "dr-a" / "ct2")
    path, _ = librispeech_clip(CLIPS[1])
    from biosig.asr import load_audio
    r = m.decode(load_audio(path), DecodeOptions(beam_size=1, temperature_fallback=False,
                                                 word_timestamps=False, max_new_tokens=4))
    assert isinstance(r.segments, list)
    monkeypatch.setenv(SPEAKERS_ENV, str(enrolled["dir"].parent / "elsewhere"))
    assert main(args) == 2
    assert "speaker 'dr-a': not enrolled in" in capsys.readouterr().err


def test_speaker_of_another_base_model_is_refused(enrolled, whisper_model_dir, librispeech_clip,
                                                   capsys):
    path, _ = librispeech_clip(CLIPS[0])
    rc = main(["transcribe", str(path), "--model", str(whisper_model_dir), "--speaker", "dr-a",
               "--speakers-dir", str(enrolled["dir"])])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert "speaker 'dr-a': enrolled on base model" in err and str(whisper_model_dir) in err


def test_server_sessions_use_their_speaker(enrolled):
    pytest.importorskip("starlette", reason="needs the [serve] extra (starlette)")
    pytest.importorskip("httpx", reason="Starlette's test client needs httpx")
    from starlette.testclient import TestClient

    from biosig.asr.models import AsrModel, DecodeResult
    from biosig.asr.serve import ServeConfig, create_app
    from biosig.asr.types import Segment, Word
    loaded = []

    class _Tagged(AsrModel):
        """Says its tag once per second of audio."""

        def __init__(self, tag):
            self.name = self.tag = tag

        def decode(self, audio, options=None):
            n = int(audio.size / 16000)
            words = tuple(Word(f" {self.tag}", k + 0.1, k + 0.9, 0.9) for k in range(n))
            return DecodeResult([Segment("".join(w.text for w in words).strip(), 0.0,
                                         float(n), words)] if n else [], "en", 0.0)

    def load(folder):
        loaded.append(folder)
        return _Tagged("speakera")

    speakers = SpeakerModels(str(enrolled["model"]), folder=enrolled["dir"], load=load)
    assert speakers.get("dr-a") is speakers.get("dr-a") and len(loaded) == 1   # loaded once
    assert loaded[0] == str(enrolled["dir"] / "dr-a" / "ct2")
    app = create_app(_Tagged("base"), ServeConfig(stream={"vad": False}), speakers=speakers)
    pcm = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000) * 32767).astype("<i2")

    def session(c, options):
        with c.websocket_connect("/ws", headers={"origin": "http://127.0.0.1:8765"}) as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_text(json.dumps({"type": "start", "options": options}))
            ws.send_bytes(pcm.tobytes())
            ws.send_text(json.dumps({"type": "stop"}))
            msgs = []
            while not msgs or msgs[-1]["type"] != "done":
                msgs.append(ws.receive_json())
        return msgs

    with TestClient(app) as c:
        unknown = session(c, {"speaker": "dr-b"})
        known = session(c, {"speaker": "dr-a"})
        plain = session(c, {})
    err = [m for m in unknown if m["type"] == "error"]
    assert len(err) == 1 and "speaker 'dr-b': not enrolled" in err[0]["message"]
    assert unknown[-1]["document"].lower().split() == ["base", "base"]   # goes on
    assert known[-1]["document"].lower().split() == ["speakera", "speakera"]
    assert plain[-1]["document"].lower().split() == ["base", "base"]
    assert len(loaded) == 1
