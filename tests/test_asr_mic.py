"""`biosig dictate --mic` end to end through a real capture stack: PortAudio (sounddevice) ->
ALSA -> a private PulseAudio server whose null sink's monitor is the default source, while
`paplay` plays a LibriSpeech recording into that sink in real time. Nothing is mocked: the
audio reaches the engine the way a microphone's would.

No fixed sleeps decide the outcome: the test waits (with generous deadlines) for the recording
stream to run, for `paplay` to finish, and for the engine to commit what it heard, then sends
Ctrl+C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from biosig.asr import error_rates

CLIP = "1089-134686-0000"


def _wait_until(condition, timeout_s: float, proc=None, poll_s: float = 0.1) -> bool:
    """Poll ``condition()`` until it is true (True) or ``timeout_s`` passes (False); stop
    early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(poll_s)
    return condition()


def _recording_stream_runs(env) -> bool:
    """PulseAudio has an uncorked recording stream (PortAudio opened and started it)."""
    out = subprocess.run(["pactl", "list", "source-outputs"], env=env, capture_output=True,
                         text=True).stdout
    return "Corked: no" in out


def _all_heard_is_committed(events_path) -> bool:
    """The engine committed something and nothing is pending: the last event is a final one
    or an empty partial (the hypothesis cleared after the final)."""
    import json
    if not events_path.exists():
        return False
    events = [json.loads(ln) for ln in events_path.read_text().splitlines() if ln.strip()]
    if not any(e["type"] == "final" for e in events):
        return False
    last = events[-1]
    return last["type"] == "final" or not last["text"].strip()


def _have_portaudio() -> str | None:
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"sounddevice/PortAudio not usable ({exc}); pip install sounddevice and " \
               "apt-get install libportaudio2"
    return None


@pytest.fixture
def pulse(tmp_path):
    missing = [b for b in ("pulseaudio", "pactl", "paplay") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install pulseaudio "
                    "pulseaudio-utils libasound2-plugins)")
    why = _have_portaudio()
    if why:
        pytest.skip(why)
    run = tmp_path / "xdg"
    run.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "PULSE_RUNTIME_PATH": str(run / "pulse"),
           "HOME": str(tmp_path)}
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
                    "--load=module-null-sink sink_name=biosig_mic",
                    "--load=module-native-protocol-unix", "--log-target=stderr"],
                   env=env, check=True, timeout=30, capture_output=True)
    try:
        assert _wait_until(lambda: subprocess.run(["pactl", "info"], env=env,
                                                  capture_output=True).returncode == 0, 30.0), \
            "the private PulseAudio server did not come up"
        subprocess.run(["pactl", "set-default-sink", "biosig_mic"], env=env, check=True)
        subprocess.run(["pactl", "set-default-source", "biosig_mic.monitor"], env=env,
                       check=True)
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=30)


@pytest.mark.slow
@pytest.mark.realtime
def test_dictate_mic_transcribes_live_audio(pulse, whisper_model_dir, data_root, tmp_path):
    import numpy as np
    import soundfile as sf

    from biosig.asr import load_audio
    d = data_root / "speech" / "librispeech_test_clean_mini" / "test-clean" / "1089" / "134686"
    ref = [ln.split(" ", 1)[1] for ln in (d / "1089-134686.trans.txt").read_text().splitlines()
           if ln.startswith(CLIP)][0]
    wav = tmp_path / "speech.wav"
    x = load_audio(d / f"{CLIP}.flac")
    sf.write(wav, np.concatenate([x, np.zeros(16000 * 2, np.float32)]), 16000)
    events = tmp_path / "events.jsonl"
    env = {**pulse, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "biosig", "dictate", "--mic", "--model", str(whisper_model_dir),
         "--threads", "2", "--events", str(events)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a test run started in the background (`cmd &`) ignores SIGINT and the child would
        # inherit that; Ctrl+C is what this test sends, so the child gets the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # wait until the process records from PulseAudio (model loaded, stream running)
        running = _wait_until(lambda: _recording_stream_runs(env), 120.0, proc)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert running, "dictate --mic never started a recording stream"
        subprocess.run(["paplay", str(wav)], env=env, check=True, timeout=60)  # real time
        # the recording ends with 2 s of silence: wait for the engine to commit the speech
        # (bounded; Ctrl+C then decodes whatever is still queued anyway)
        _wait_until(lambda: _all_heard_is_committed(events), 60.0, proc, poll_s=0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert error_rates([ref], [out]).wer < 0.25, out
    lines = events.read_text().splitlines()
    assert any('"final"' in ln for ln in lines)
