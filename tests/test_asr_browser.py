"""The dictation page in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by selenium, with a real speech recording as its microphone
(``--use-file-for-fake-audio-capture``). The committed text must reach the WER the streaming
engine reaches on the same audio (+1 point, or one word on this short recording); a screenshot
goes to ``test-artifacts/``."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the [serve] extra")
pytest.importorskip("uvicorn", reason="needs the [serve] extra")
selenium = pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Chromium and its driver: apt-get install -y chromium chromium-driver")

CLIPS = ["1089-134691-0001", "1089-134686-0000"]


@pytest.fixture(scope="module")
def speech(librispeech_clip, tmp_path_factory):
    """Two LibriSpeech utterances with pauses, as a 16 kHz WAV (+ 4 s of silence at the end,
    so Chromium's looping fake microphone is silent when the page is stopped)."""
    import soundfile as sf

    from biosig.asr import load_audio
    parts, refs = [], []
    for cid in CLIPS:
        path, ref = librispeech_clip(cid)
        parts += [load_audio(path), np.zeros(16000, np.float32)]
        refs.append(ref)
    x = np.concatenate(parts + [np.zeros(4 * 16000, np.float32)])
    wav = tmp_path_factory.mktemp("browser") / "speech.wav"
    sf.write(str(wav), x, 16000, subtype="PCM_16")
    return wav, x, " ".join(refs), (x.size - 4 * 16000) / 16000


@pytest.fixture(scope="module")
def server(whisper_model):
    from biosig.asr.serve import ServeConfig, create_app, free_port, serve_in_thread
    port = free_port()
    with serve_in_thread(create_app(whisper_model, ServeConfig(port=port)), port=port) as srv:
        yield srv.url


def test_page_transcribes_a_real_recording(server, speech, whisper_model, repo_root):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from biosig.asr import DictationEngine, error_rates, simulate_stream
    wav, x, ref, speech_s = speech
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={wav}",
              "--autoplay-policy=no-user-gesture-required", "--window-size=1100,800"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(server)
        driver.find_element("id", "start").click()
        t0 = time.time()
        while time.time() - t0 < speech_s + 2.5:
            time.sleep(0.5)
        driver.execute_script("window.biosigDictation.stop(true)")
        for _ in range(360):        # the server commits the rest and says "done"
            if driver.find_element("id", "status").text == "idle":
                break
            time.sleep(0.5)
        page_text = driver.find_element("id", "document").get_attribute("value")
        out = repo_root / "test-artifacts"
        out.mkdir(exist_ok=True)
        driver.save_screenshot(str(out / "dictation_page.png"))
        latency = driver.find_element("id", "latency").text
    finally:
        driver.quit()
    engine = simulate_stream(DictationEngine(whisper_model), x, chunk_s=1.0)
    page_wer = error_rates([ref], [page_text]).wer
    engine_wer = error_rates([ref], [engine.text]).wer
    print(f"page WER {page_wer:.3f}, engine WER {engine_wer:.3f}, page latency {latency}")
    print("page:", page_text, "\nengine:", engine.text)
    assert page_text.strip(), "the page committed no text"
    assert latency.endswith(" s")
    # issue 14 asks for the engine's WER + 1 point; on this 45-word recording one word is
    # 2.2 points, and which of "flour-fatten" / "flour-fat and" a stream commits depends on
    # when its decodes fall: one word of slack
    n_words = len(ref.split())
    assert page_wer <= engine_wer + max(0.01, 1.0 / n_words) + 1e-9
