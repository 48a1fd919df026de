"""The dictation service (biosig.asr.serve) through Starlette's test client: protocol,
security checks, bad frames, busy, a vanished client; its client (biosig.asr.client); then the
real Whisper base on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the [serve] extra (starlette)")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from biosig.asr.audio import ASR_FS  # noqa: E402
from biosig.asr.client import float_to_pcm16  # noqa: E402
from biosig.asr.models import AsrModel, DecodeResult  # noqa: E402
from biosig.asr.serve import ServeConfig, create_app, pcm16_to_float  # noqa: E402
from biosig.asr.types import Segment, Word  # noqa: E402
from biosig.errors import ConfigError  # noqa: E402

ORIGIN = {"origin": "http://127.0.0.1:8765"}


class _Echo(AsrModel):
    """One word per second of audio: "w0 w1 ..." (a stand-in that decodes instantly)."""

    backend = name = "echo"

    def decode(self, audio, options=None):
        n = int(audio.size / ASR_FS)
        words = tuple(Word(f" w{k}", k + 0.1, k + 0.9, 0.9) for k in range(n))
        segs = [Segment("".join(w.text for w in words).strip(), 0.0, float(n), words)] \
            if words else []
        return DecodeResult(segs, "en", 0.0)


def _pcm(seconds):
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * ASR_FS)) / ASR_FS))
    return (x * 32767).astype("<i2").tobytes()


def _client(**cfg):
    return TestClient(create_app(_Echo(), ServeConfig(stream={"vad": False}, **cfg)))


def test_stream_gets_events_and_the_document():
    with _client() as c, c.websocket_connect("/ws", headers=ORIGIN) as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["session"]
        ws.send_text(json.dumps({"type": "start", "options": {}}))
        for _ in range(3):
            ws.send_bytes(_pcm(1.0))
        ws.send_text(json.dumps({"type": "stop"}))
        msgs = []
        while True:
            m = ws.receive_json()
            msgs.append(m)
            if m["type"] == "done":
                break
    finals = " ".join(m["text"] for m in msgs if m["type"] == "final")
    assert finals.split() == ["w0", "w1", "w2"]
    assert msgs[-1]["document"].lower().split() == ["w0", "w1", "w2"]   # capitalised
    assert all({"start", "end", "emitted_at"} <= set(m) for m in msgs if m["type"] == "final")
    stats = msgs[-1]["stats"]          # counts only: no audio, no text
    assert stats["audio_s"] == 3.0 and stats["decodes"] >= 1 and stats["dropped_s"] == 0
    assert sum(stats["committed_by"].values()) == 3


def test_bad_frames_get_an_error_and_the_session_goes_on():
    with _client(max_frame_bytes=4000) as c, c.websocket_connect("/ws", headers=ORIGIN) as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00\x01\x02")                       # odd byte count
        assert "odd byte count" in ws.receive_json()["message"]
        ws.send_bytes(b"\x00" * 5000)                        # oversized
        assert "at most 4000" in ws.receive_json()["message"]
        ws.send_text("{not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_text(json.dumps({"type": "dance"}))
        assert ws.receive_json()["type"] == "error"
        ws.send_text(json.dumps({"type": "stop"}))
        while ws.receive_json()["type"] != "done":
            pass


def test_foreign_origin_and_missing_token_are_refused():
    with _client() as c:
        with pytest.raises(WebSocketDisconnect) as e, \
                c.websocket_connect("/ws", headers={"origin": "https://evil.example"}):
            pass
        assert e.value.code == 1008
    with _client(token="s3cret") as c:
        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/ws", headers=ORIGIN):
            pass
        with pytest.raises(WebSocketDisconnect), c.websocket_connect(
                "/ws", headers={**ORIGIN, "authorization": "Bearer wrong"}):
            pass
        with c.websocket_connect("/ws", headers={**ORIGIN, "authorization": "Bearer s3cret"}
                                 ) as ws:
            assert ws.receive_json()["type"] == "ready"
    with pytest.raises(ConfigError, match="token"):
        ServeConfig(host="0.0.0.0")
    with pytest.raises(ConfigError, match="max_sessions"):
        ServeConfig(max_sessions=0)
    with pytest.raises(ConfigError, match="max_frame"):
        ServeConfig(max_frames=1)                            # unknown key


def test_busy_when_full_and_a_vanished_client_frees_its_session():
    with _client(max_sessions=1) as c:
        with c.websocket_connect("/ws", headers=ORIGIN) as ws:
            ws.receive_json()
            ws.send_bytes(_pcm(1.0))
            with c.websocket_connect("/ws", headers=ORIGIN) as ws2:
                assert ws2.receive_json()["type"] == "busy"
            assert c.get("/health").json()["sessions"] == 1
        # the first client left without "stop": its session is freed (wait for it, bounded)
        import time
        deadline = time.monotonic() + 30
        while c.get("/health").json()["sessions"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/health").json() == {"status": "ok", "sessions": 0, "max_sessions": 1}
        assert c.get("/version").json()["model"] == "echo"


def test_pcm16_to_float():
    assert pcm16_to_float(np.array([0, 16384, -32768], "<i2").tobytes()).tolist() == \
        [0.0, 0.5, -1.0]
    # what a client sends: clipped to [-1, 1], full scale 32767
    pcm = np.frombuffer(float_to_pcm16(np.array([0.0, 1.0, -2.0, 0.5], np.float32)), "<i2")
    assert pcm.tolist() == [0, 32767, -32767, 16383]


def test_real_speech_through_the_server(whisper_model, librispeech_clip, caplog):
    import logging

    from biosig.asr import error_rates, load_audio
    caplog.set_level(logging.DEBUG)
    path, ref = librispeech_clip("1089-134691-0001")
    x = load_audio(path)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    with TestClient(create_app(whisper_model, ServeConfig())) as c, \
            c.websocket_connect("/ws", headers=ORIGIN) as ws:
        ws.receive_json()
        step = 2 * ASR_FS            # 1 s frames
        for k in range(0, len(pcm), step):
            ws.send_bytes(pcm[k:k + step])
        ws.send_text(json.dumps({"type": "stop"}))
        finals = []
        while True:
            m = ws.receive_json()
            if m["type"] == "final":
                finals.append(m["text"])
            if m["type"] == "done":
                break
    assert error_rates([ref], [" ".join(finals)]).wer < 0.2
    # the log names the session and counts, never what was said
    assert "session" in caplog.text
    for word in {w for w in ref.lower().split() if len(w) > 4}:
        assert word not in caplog.text.lower()


def test_page_and_static_files_are_served():
    with _client() as c:
        page = c.get("/")
        assert page.status_code == 200 and "biosig dictation" in page.text
        for name in ("app.js", "worklet.js", "style.css"):
            assert c.get(f"/static/{name}").status_code == 200
        for name in ("app.js", "worklet.js", "style.css"):       # no CDN, nothing remote
            assert "://" not in c.get(f"/static/{name}").text
        assert "://" not in page.text


@pytest.fixture()
def live_server():
    """A real uvicorn server on a free port in a thread, serving the stand-in model."""
    from biosig.asr.serve import free_port, serve_in_thread
    port = free_port()
    with serve_in_thread(create_app(_Echo(), ServeConfig(port=port, stream={"vad": False})),
                         port=port) as srv:
        yield srv.ws_url


@pytest.mark.realtime        # `dictate --server --file` sends the file at real-time pace
def test_python_client_and_dictate_server(live_server, tmp_path, capsys):
    pytest.importorskip("websockets", reason="needs the [serve] extra (websockets)")
    import soundfile as sf

    from biosig.asr.client import stream_to_server
    from biosig.cli import main
    events = []
    doc = stream_to_server(live_server, [pcm16_to_float(_pcm(1.5)), pcm16_to_float(_pcm(1.5))],
                           emit=events.append)
    assert doc.lower().split() == ["w0", "w1", "w2"]
    assert {e["type"] for e in events[:-1]} <= {"partial", "final"} and len(events) > 1
    assert events[-1]["type"] == "done" and events[-1]["stats"]["audio_s"] == 3.0
    wav = tmp_path / "a.wav"
    sf.write(str(wav), pcm16_to_float(_pcm(2.0)), ASR_FS)
    rc = main(["dictate", "--server", live_server, "--file", str(wav), "--chunk-s", "0.5",
               "--events", str(tmp_path / "ev.jsonl")])
    assert rc in (0, None)
    assert capsys.readouterr().out.lower().split() == ["w0", "w1"]
    done = json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[-1])
    assert done["type"] == "done" and "document" not in done and done["stats"]["decodes"] >= 1
    rc = main(["dictate", "--server", "ws://127.0.0.1:9/ws", "--file", str(wav)])
    assert rc == 2 and "cannot open the WebSocket" in capsys.readouterr().err
    # the server's address without /ws, as a user types it, reaches the WebSocket too
    bare = live_server.removesuffix("/ws")
    rc = main(["dictate", "--server", bare, "--file", str(wav), "--chunk-s", "0.5"])
    assert rc in (0, None) and capsys.readouterr().out.lower().split() == ["w0", "w1"]


@pytest.mark.parametrize("given, url", [
    ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
    ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
    ("ws://127.0.0.1:8765/ws", "ws://127.0.0.1:8765/ws"),
    ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
    ("127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
    ("wss://host.example/dictation/ws?token=x", "wss://host.example/dictation/ws?token=x"),
])
def test_websocket_url_accepts_the_server_address(given, url):
    from biosig.asr.client import websocket_url
    assert websocket_url(given) == url


def test_websocket_url_rejects_other_schemes():
    from biosig.asr.client import websocket_url
    with pytest.raises(ConfigError, match=r"--server: 'ftp://h:1' is not a WebSocket address"):
        websocket_url("ftp://h:1")


class _LevelModel(AsrModel):
    """Reads words off the signal: second k of the test audio is the constant level
    (k + 1) / 100, heard as the word "w<k>" when at least 0.8 s of it is in the buffer, so a
    word lost or repeated across sessions shows in the text."""

    backend = name = "level"

    def decode(self, audio, options=None):
        lev = np.round(np.asarray(audio) * 100).astype(int)
        edges = np.flatnonzero(np.diff(lev)) + 1
        words = []
        for a, b in zip(np.r_[0, edges], np.r_[edges, lev.size]):
            if b - a >= 0.8 * ASR_FS and lev[a] > 0:
                words.append(Word(f" w{lev[a] - 1}", a / ASR_FS + 0.05, b / ASR_FS - 0.05, 0.9))
        segs = [Segment("".join(w.text for w in words).strip(), 0.0, audio.size / ASR_FS,
                        tuple(words))] if words else []
        return DecodeResult(segs, "en", 0.0)


@pytest.mark.realtime        # a live source (chunks paced by the clock) and a server restart
def test_python_client_survives_a_server_restart():
    """The server is stopped after the first committed words and started again on the same
    port once the client has noticed and is reconnecting: the client reconnects, sends again
    the audio not yet committed, and the document holds every word once, in order. Every wait
    is for an event (a committed word, the client reconnecting), bounded by a deadline."""
    import threading
    import time

    from biosig.asr.client import stream_to_server
    from biosig.asr.serve import free_port, serve_in_thread
    port = free_port()
    cfg = ServeConfig(port=port, stream={"vad": False})
    servers = [serve_in_thread(create_app(_LevelModel(), cfg), port=port)]
    events = []
    committed, reconnecting = threading.Event(), threading.Event()

    def emit(ev):
        events.append(ev)
        if ev["type"] == "final":
            committed.set()
        elif ev["type"] == "reconnecting":
            reconnecting.set()

    def restart():
        # the client has lost the server and is trying again: start it (on the same port)
        if reconnecting.wait(timeout=20):
            servers.append(serve_in_thread(create_app(_LevelModel(), cfg), port=port))

    def chunks():
        for k in range(8):
            if k == 4:
                assert committed.wait(timeout=20), "no word committed before the restart"
                servers[0].stop()
                threading.Thread(target=restart, daemon=True).start()
            time.sleep(0.2)                  # a live source: one second of audio every 0.2 s
            yield np.full(ASR_FS, (k + 1) / 100, np.float32)

    try:
        doc = stream_to_server(servers[0].ws_url, chunks(), emit=emit, reconnect_s=20)
    finally:
        for s in servers:
            s.stop()
    kinds = [e["type"] for e in events]
    assert "reconnecting" in kinds and "reconnected" in kinds
    assert doc.lower().split() == [f"w{k}" for k in range(8)]


def test_json_log_lines():
    import logging
    import logging.config

    from biosig.asr.serve import JsonLogFormatter, log_config
    rec = logging.LogRecord("biosig.asr.serve", logging.INFO, __file__, 1,
                            "session %s opened (%d open)", ("abc", 2), None)
    line = json.loads(JsonLogFormatter().format(rec))
    assert line["message"] == "session abc opened (2 open)" and line["level"] == "INFO"
    for as_json in (False, True):   # both configurations are valid dictConfigs
        cfg = log_config(as_json)
        assert cfg["loggers"]["uvicorn.access"]["handlers"] == []
        logging.config.dictConfig(cfg)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                               "loggers": {n: {"propagate": True, "handlers": []} for n in
                                           ("biosig", "uvicorn", "uvicorn.error")}})
