"""Dictation as a local service: an ASGI app (Starlette) with a WebSocket endpoint that several
clients stream to at once, sharing one loaded model, and a web page at ``/`` (static files in
``biosig/asr/static``: microphone capture through an AudioWorklet that resamples to 16 kHz,
partial text apart from the committed, editable document, .txt download, latency; no build
step, no CDN).

Protocol (``/ws``)
------------------
Client -> server:

- text ``{"type": "start", "options": {...}}`` first (optional ``options``: ``language``,
  ``vocab``: a list of terms, ``vocab_correct``: bool);
- binary frames: 16 kHz mono signed 16-bit little-endian PCM, at most ``max_frame_bytes``;
- text ``{"type": "flush"}``: commit what is pending now (as at a pause);
- text ``{"type": "stop"}``: end of audio; the server commits the rest, sends ``done`` and
  closes.

Server -> client (JSON text): ``{"type": "ready", "session": ..., "version": ...}``; the events
of ``biosig dictate --events`` (``partial`` and ``final``, with ``text``, ``start``, ``end``,
``emitted_at``); ``{"type": "done", "document": ..., "stats": {...}}`` (the committed text
with the dictation commands applied, and the session's counts: ``audio_s``, ``decodes``,
``dropped_s``, ``committed_by``: words per commit rule, see
:attr:`~biosig.asr.streaming.DictationEngine.committed_by`); ``{"type": "error", "message":
...}`` for a bad frame or message (the session goes on); ``{"type": "busy"}`` then close code
1013 when ``max_sessions`` are open.

Reconnecting: a session's clock (``start``/``end``) starts at its first sample. A client keeps
the audio it sent after the ``end`` of the last ``final`` event; when the connection is lost (a
server restart closes every WebSocket with code 1012), it opens a new session and sends that
audio first, so the words being spoken are not lost and committed ones are not repeated
(the page and :func:`stream_to_server` both do this).

Scheduling: every session's decodes go through one FIFO lock, so sessions take turns (one
decode each in arrival order) and a decode of one session never runs inside another's.
Decoding the waiting sessions as one CTranslate2 batch instead does not pay on CPU
(``bench/serve_batching.py``, Whisper base int8 on 2 cores: 0.9-1.2x the throughput, a longer
wait for every session's words, and other transcripts, since CTranslate2 needs every prompt cut
to the shortest one and every buffer padded to the longest).

Security: the server binds to 127.0.0.1 unless told otherwise; bound elsewhere it refuses to
start without a bearer token (``Authorization: Bearer ...`` or ``?token=``). A WebSocket whose
``Origin`` is not the server's own (or one given in ``allowed_origins``) is refused, against
cross-site WebSocket hijacking. Logs hold session ids, durations and counts, never audio or text.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from biosig.asr.audio import ASR_FS
from biosig.config import ConfigModel, Int
from biosig.errors import ConfigError

__all__ = ["ServeConfig", "create_app", "stream_to_server", "websocket_url", "ServerRefused",
           "serve_in_thread", "free_port", "log_config", "JsonLogFormatter", "LOOPBACK_HOSTS"]

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServeConfig(ConfigModel):
    """Settings of :func:`create_app` (a :class:`~biosig.config.ConfigModel`: unknown keys and
    values out of range are :class:`~biosig.errors.ConfigError` naming the key).

    Attributes
    ----------
    host, port : str, int
        Where the server listens (for the Origin check and the token rule).
    token : str or None
        Bearer token clients must present; required when ``host`` is not a loopback address.
    max_sessions : int >= 1
        Streams served at once; one more is told ``busy``.
    max_frame_bytes : int
        Largest binary frame (default 64 KiB: 2 s of audio).
    max_session_s : float
        Longest stream (audio seconds); past it the session ends as if stopped.
    allowed_origins : tuple of str
        Origins allowed besides the server's own (``http://host:port``).
    vocab_terms : tuple of str
        Default vocabulary of every session (``--vocab``).
    stream : dict
        :class:`~biosig.asr.streaming.StreamingConfig` keys for every session.
    """

    host: str = "127.0.0.1"
    port: Int = Field(default=8765, ge=1, le=65535)
    token: str | None = None
    max_sessions: Int = Field(default=4, ge=1)
    max_frame_bytes: Int = Field(default=65536, ge=2)
    max_session_s: float = Field(default=4 * 3600.0, gt=0)
    allowed_origins: tuple[str, ...] = ()
    vocab_terms: tuple[str, ...] = ()
    stream: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _token_off_loopback(self):
        if self.host not in LOOPBACK_HOSTS and not self.token:
            raise ValueError(f"host {self.host}: not a loopback address, so a token is "
                             "required (--token or BIOSIG_SERVE_TOKEN)")
        return self

    def origins(self) -> set[str]:
        hosts = {self.host, "127.0.0.1", "localhost"} if self.host in LOOPBACK_HOSTS \
            else {self.host}
        own = {f"{scheme}://{h}:{self.port}" for h in hosts for scheme in ("http", "https")}
        return own | set(self.allowed_origins)


def session_stats(engine, audio_s: float) -> dict:
    """A session's counts (numbers only, never audio or text): for ``done`` and the log."""
    return {"audio_s": round(audio_s, 3), "decodes": engine.n_decodes,
            "dropped_s": round(engine.n_dropped_s, 3), "committed_by": dict(engine.committed_by)}


def pcm16_to_float(frame: bytes) -> np.ndarray:
    """Signed 16-bit little-endian PCM -> float32 in [-1, 1]; an odd byte count is an error."""
    if len(frame) % 2:
        raise ValueError(f"odd byte count ({len(frame)}): expected 16-bit samples")
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(x) -> bytes:
    """float samples in [-1, 1] (clipped) -> signed 16-bit little-endian PCM: what a client
    sends (the inverse of :func:`pcm16_to_float`)."""
    return (np.clip(np.asarray(x, np.float32), -1, 1) * 32767).astype("<i2").tobytes()


def create_app(model, config: ServeConfig | None = None):
    """The ASGI app: ``/ws`` (the protocol above), ``/health``, ``/version``.

    Parameters
    ----------
    model : AsrModel
        Loaded once (:func:`biosig.asr.load_model`), shared by every session.
    config : ServeConfig, optional
    """
    from biosig.extras import require
    require("starlette", extra="serve")
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    import biosig
    from biosig.asr.streaming import DictationEngine, StreamingConfig
    from biosig.asr.vocab import Vocabulary

    cfg = config or ServeConfig()
    stream_cfg = StreamingConfig.validate_mapping(cfg.stream or {}, source="serve")
    decode_lock = asyncio.Lock()         # FIFO: sessions take turns
    sessions: dict[str, dict] = {}
    allowed = cfg.origins()

    def authorised(ws) -> bool:
        if not cfg.token:
            return True
        auth = ws.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else \
            ws.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), cfg.token.encode())

    async def health(request):
        return JSONResponse({"status": "ok", "sessions": len(sessions),
                             "max_sessions": cfg.max_sessions})

    async def version(request):
        return JSONResponse({"biosig": biosig.__version__,
                             "model": getattr(model, "name", "")})

    async def ws_endpoint(ws: WebSocket):
        origin = ws.headers.get("origin")
        if origin is not None and origin not in allowed:
            log.warning("websocket refused: foreign origin")
            await ws.close(code=1008)
            return
        if not authorised(ws):
            log.warning("websocket refused: missing or wrong token")
            await ws.close(code=1008)
            return
        await ws.accept()
        if len(sessions) >= cfg.max_sessions:
            await ws.send_json({"type": "busy", "max_sessions": cfg.max_sessions})
            await ws.close(code=1013)
            return
        sid = uuid.uuid4().hex[:12]
        state = {"t0": time.monotonic(), "audio_s": 0.0}
        sessions[sid] = state
        log.info("session %s opened (%d open)", sid, len(sessions))
        engine = DictationEngine(model, stream_cfg, vocab=Vocabulary(cfg.vocab_terms)
                                 if cfg.vocab_terms else None,
                                 clock=lambda: time.monotonic() - state["t0"])
        await ws.send_json({"type": "ready", "session": sid, "version": biosig.__version__})

        pending: list[np.ndarray] = []      # audio received, not yet given to the engine
        wake = asyncio.Event()
        ctl = {"stop": False, "flush": False, "gone": False}

        async def decoder():
            """Decode whatever has arrived, one step at a time: audio that arrives during a
            decode is merged into the next one, so a slow machine means longer latency, never
            dropped or queued-up audio."""
            while True:
                await wake.wait()
                wake.clear()
                if ctl["gone"]:
                    return
                if pending:
                    engine.push(np.concatenate(pending))
                    pending.clear()
                # one step at a time, even for a backlog (engine.inbox_s: audio sent faster
                # than real time, or a machine far behind), so the other sessions take turns
                final = ctl["stop"] and not engine.inbox_s
                flush = ctl["flush"] and not engine.inbox_s
                if flush:
                    ctl["flush"] = False
                async with decode_lock:
                    evs = await asyncio.to_thread(
                        engine.finish if final else engine.step, None,
                        **({} if final else {"final": flush}))
                for ev in evs:
                    await ws.send_json(ev.to_dict())
                if final:
                    await ws.send_json({"type": "done", "document": engine.document,
                                        "stats": session_stats(engine, state["audio_s"])})
                    return
                if pending or ctl["stop"] or ctl["flush"] or engine.inbox_s:
                    wake.set()

        task = asyncio.create_task(decoder())
        started = False
        try:
            while not ctl["stop"]:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(msg.get("code", 1000))
                data, text = msg.get("bytes"), msg.get("text")
                if data is not None:
                    if len(data) > cfg.max_frame_bytes:
                        await ws.send_json({"type": "error", "message":
                                            f"frame of {len(data)} bytes: at most "
                                            f"{cfg.max_frame_bytes}"})
                        continue
                    try:
                        x = pcm16_to_float(data)
                    except ValueError as exc:
                        await ws.send_json({"type": "error", "message": str(exc)})
                        continue
                    pending.append(x)
                    state["audio_s"] += x.size / ASR_FS
                    if state["audio_s"] > cfg.max_session_s:
                        await ws.send_json({"type": "error", "message":
                                            f"session longer than {cfg.max_session_s:g} s: "
                                            "ended"})
                        ctl["stop"] = True
                    wake.set()
                    continue
                try:
                    msg_ctl = json.loads(text or "")
                    kind = msg_ctl.get("type") if isinstance(msg_ctl, dict) else None
                except json.JSONDecodeError:
                    kind = None
                if kind == "start" and not started:
                    started = True
                    opts = msg_ctl.get("options") or {}
                    if not isinstance(opts, dict):
                        await ws.send_json({"type": "error", "message":
                                            "start: options must be an object"})
                        continue
                    terms = opts.get("vocab")
                    if isinstance(terms, list) and terms:
                        try:
                            engine.vocab = Vocabulary(str(t) for t in terms)
                            engine.vocab_correct = bool(opts.get("vocab_correct", False))
                        except ConfigError as exc:
                            await ws.send_json({"type": "error", "message": str(exc)})
                elif kind == "flush":
                    ctl["flush"] = True
                    wake.set()
                elif kind == "stop":
                    ctl["stop"] = True
                    wake.set()
                else:
                    await ws.send_json({"type": "error", "message":
                                        "expected a binary PCM frame or a JSON message with "
                                        "type start, flush or stop"})
            await task
            await ws.close()
        except WebSocketDisconnect:
            log.info("session %s: client left", sid)
            ctl["gone"] = True
            wake.set()
            task.cancel()
        finally:
            sessions.pop(sid, None)
            log.info("session %s closed: %s (%d open)", sid,
                     session_stats(engine, state["audio_s"]), len(sessions))

    static = Path(__file__).with_name("static")

    async def page(request):
        return FileResponse(static / "index.html")

    return Starlette(routes=[Route("/", page), Route("/health", health),
                             Route("/version", version), WebSocketRoute("/ws", ws_endpoint),
                             Mount("/static", StaticFiles(directory=static), name="static")])


class ServerRefused(ConnectionError):
    """The server answered the WebSocket with something other than ``ready`` (``busy``)."""


class _ClientSession:
    """One WebSocket session of :func:`stream_to_server`: a reader thread collects the events;
    the audio sent and not yet committed is kept (to send again after a lost connection)."""

    def __init__(self, url, headers, options, emit):
        from websockets.sync.client import connect
        try:
            # entered as a context manager (websockets >= 17.1 warns otherwise); closed below
            self.ws = connect(url, additional_headers=headers, max_size=2 ** 22,
                              open_timeout=10).__enter__()
        except Exception as exc:  # the websockets exceptions differ by version
            raise ConnectionError(f"{url}: cannot open the WebSocket ({exc})") from None
        try:
            first = json.loads(self.ws.recv(timeout=30))
        except Exception as exc:
            self.ws.close()
            raise ConnectionError(f"{url}: no answer from the server ({exc})") from None
        if first.get("type") != "ready":
            self.ws.close()
            raise ServerRefused(f"{url}: server says {first.get('type')}")
        self.ws.send(json.dumps({"type": "start", "options": options or {}}))
        self.emit = emit
        self.lock = threading.Lock()
        self.unconfirmed: list[tuple[int, bytes]] = []   # (first sample, PCM) not committed
        self.sent = 0                                     # samples sent in this session
        self.finals: list[str] = []
        self.document: str | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for raw in self.ws:
                ev = json.loads(raw)
                if ev.get("type") == "done":
                    self.document = ev.get("document", "")
                    if self.emit is not None:
                        self.emit(ev)
                    return
                if ev.get("type") == "final":
                    self._confirm(float(ev.get("end", 0.0)))
                    self.finals.append(ev.get("text", ""))
                if self.emit is not None:
                    self.emit(ev)
        except Exception as exc:
            self.error = exc

    def _confirm(self, end_s: float) -> None:
        cut = int(round(end_s * ASR_FS))
        with self.lock:
            keep = []
            for start, pcm in self.unconfirmed:
                n = len(pcm) // 2
                if start + n <= cut:
                    continue
                if start < cut:
                    pcm, start = pcm[2 * (cut - start):], cut
                keep.append((start, pcm))
            self.unconfirmed = keep

    def send(self, pcm: bytes) -> None:
        with self.lock:
            self.unconfirmed.append((self.sent, pcm))
            self.sent += len(pcm) // 2
        self.ws.send(pcm)

    @property
    def alive(self) -> bool:
        return self.document is None and self.error is None and self.thread.is_alive()

    def pending_audio(self) -> list[bytes]:
        with self.lock:
            return [pcm for _, pcm in self.unconfirmed]

    def lost_text(self) -> str:
        """The committed text of a session that ended without ``done``, commands applied."""
        from biosig.asr.commands import CommandTable, apply_commands
        return apply_commands(" ".join(self.finals).split(), CommandTable.default())


def _n_words(docs) -> int:
    # errors say how much was committed, never what (no transcript in messages or logs)
    return sum(len(d.split()) for d in docs)


def websocket_url(url: str) -> str:
    """The dictation WebSocket's address from what a user types: the server's address as
    ``biosig serve`` prints it (``http://127.0.0.1:8765/``), with or without a scheme, or the
    WebSocket's own (``ws://127.0.0.1:8765/ws``).

    An address without a path gets ``/ws``; ``http``/``https`` become ``ws``/``wss``; any
    other path is kept (a proxy may serve the WebSocket elsewhere). A scheme other than
    ws, wss, http or https is a ConfigError naming the address.

    >>> websocket_url("ws://127.0.0.1:8765")
    'ws://127.0.0.1:8765/ws'
    >>> websocket_url("127.0.0.1:8765/")
    'ws://127.0.0.1:8765/ws'
    >>> websocket_url("https://dictation.example/ws")
    'wss://dictation.example/ws'
    """
    from urllib.parse import urlsplit, urlunsplit
    text = url.strip()
    if "://" not in text:
        text = "ws://" + text
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigError(f"--server: {url!r} is not a WebSocket address (expected "
                          "ws://HOST:PORT/ws, or the server's http://HOST:PORT/)")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def stream_to_server(url: str, chunks, *, emit=None, token: str | None = None,
                     options: dict | None = None, reconnect_s: float = 30.0) -> str:
    """The client side of the protocol: send float32 16 kHz ``chunks`` (an iterable of
    arrays) to ``url`` (``ws://127.0.0.1:8765/ws``), call ``emit`` with each event (a dict),
    and return the document. ``url`` may be the server's address without ``/ws``
    (:func:`websocket_url`).

    A lost connection (a server restart) is opened again for up to ``reconnect_s`` seconds;
    the audio sent and not yet committed is sent again first, so nothing committed and nothing
    said is lost; ``emit`` gets ``{"type": "reconnecting"}`` and ``{"type": "reconnected",
    "resent_s": ...}``. The document is then the sessions' documents joined.

    Raises
    ------
    ConnectionError
        The server refused the session (:class:`ServerRefused` for ``busy``; token, origin),
        or stayed away longer than ``reconnect_s``.
    """
    from biosig.extras import require
    require("websockets", extra="serve")
    url = websocket_url(url)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    done_docs: list[str] = []
    held: list[bytes] = []          # audio to send first in the next session

    def open_session(first: bool) -> _ClientSession:
        if first:
            return _ClientSession(url, headers, options, emit)
        if emit is not None:
            emit({"type": "reconnecting"})
        t0, wait = time.monotonic(), 0.25
        while True:
            try:
                sess = _ClientSession(url, headers, options, emit)
                break
            except ConnectionError as exc:
                if isinstance(exc, ServerRefused) or time.monotonic() - t0 > reconnect_s:
                    raise ConnectionError(
                        f"{exc} (the connection was lost; {_n_words(done_docs)} words were "
                        "committed before)") from None
                time.sleep(wait)
                wait = min(2 * wait, 4.0)
        resent = sum(len(p) for p in held) / 2 / ASR_FS
        for pcm in held:
            sess.send(pcm)
        held.clear()
        if emit is not None:
            emit({"type": "reconnected", "resent_s": round(resent, 3)})
        return sess

    n_lost = 0

    def recover(sess: _ClientSession) -> _ClientSession:
        nonlocal n_lost
        n_lost += 1
        if n_lost > 10:
            raise ConnectionError(f"{url}: the connection was lost {n_lost} times: giving up "
                                  f"({_n_words(done_docs)} words were committed before)")
        sess.thread.join(timeout=5)
        held[:0] = sess.pending_audio()
        done_docs.append(sess.lost_text())
        try:
            sess.ws.close()
        except Exception:
            pass
        return open_session(False)

    sess = open_session(True)
    for x in chunks:
        pcm = float_to_pcm16(x)
        for k in range(0, len(pcm), 2 * ASR_FS):     # frames of at most 1 s
            frame = pcm[k:k + 2 * ASR_FS]
            if not sess.alive:
                held.append(frame)
                sess = recover(sess)
                continue
            try:
                sess.send(frame)
            except Exception:   # closed under us: the frame is in sess.unconfirmed
                sess = recover(sess)
    while True:
        try:
            if sess.alive:
                sess.ws.send(json.dumps({"type": "stop"}))
        except Exception:
            pass
        sess.thread.join()
        if sess.document is not None:
            sess.ws.close()
            return " ".join(d for d in [*done_docs, sess.document] if d)
        sess = recover(sess)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line (``ts``, ``level``, ``logger``, ``message``), for log
    collectors. The service's messages hold session ids, durations and counts, never audio or
    text."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out)


def log_config(json_lines: bool = False) -> dict:
    """A :func:`logging.config.dictConfig` for ``biosig serve`` (uvicorn's loggers included):
    plain lines, or :class:`JsonLogFormatter` lines with ``json_lines``. Access logs stay off
    (query strings may hold the token)."""
    fmt = {"()": f"{__name__}.JsonLogFormatter"} if json_lines else \
        {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "f", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["h"], "level": "INFO", "propagate": False}
               for name in ("biosig", "uvicorn", "uvicorn.error")}
    loggers["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"f": fmt},
            "handlers": {"h": handler}, "loggers": loggers}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    import socket
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class serve_in_thread:
    """Run an ASGI app under uvicorn in a background thread (tests, benchmarks, embedding).

    Examples
    --------
    >>> with serve_in_thread(create_app(model, ServeConfig(port=port)), port=port) as srv:
    ...     stream_to_server(srv.ws_url, chunks)                       # doctest: +SKIP
    """

    def __init__(self, app, *, port: int, host: str = "127.0.0.1", timeout_s: float = 20.0):
        from biosig.extras import require
        uvicorn = require("uvicorn", extra="serve")
        self.url = f"http://{host}:{port}/"
        self.ws_url = f"ws://{host}:{port}/ws"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > timeout_s or not self.thread.is_alive():
                raise RuntimeError(f"server on {host}:{port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
