"""Dictation as a local service: an ASGI app (Starlette) with a WebSocket endpoint that several
clients stream to at once, sharing one loaded model, and a web page at ``/`` (static files in
``biosig/asr/static``: microphone capture through an AudioWorklet that resamples to 16 kHz,
partial text apart from the committed, editable document, .txt download, latency; no build
step, no CDN). Its client, what ``biosig dictate --server`` runs, is :mod:`biosig.asr.client`.

:func:`create_app` puts together the routes (:func:`_routes`), the state the sessions share
(:class:`_Service`: model, settings, open sessions, the decode lock) and one
:class:`_Session` per accepted WebSocket (receiving in :meth:`_Session.run`, decoding in
:meth:`_Session.decode_loop`).

Protocol (``/ws``)
------------------
Client -> server:

- text ``{"type": "start", "options": {...}}`` first (optional ``options``: ``language``,
  ``vocab``: a list of terms, ``vocab_correct``: bool, ``speaker``: an enrolled speaker whose
  model decodes this session, see :mod:`biosig.asr.speakers`; an unknown one is an ``error``
  event naming it, and the session goes on with the server's model);
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
(the page and :func:`biosig.asr.client.stream_to_server` both do this).

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
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

import biosig
from biosig.asr.audio import ASR_FS, pcm16_to_float
from biosig.asr.streaming import DictationEngine, StreamingConfig
from biosig.asr.vocab import Vocabulary
from biosig.config import ConfigModel, Int
from biosig.errors import ConfigError
from biosig.extras import require

__all__ = ["ServeConfig", "create_app", "serve_in_thread", "free_port", "log_config",
           "JsonLogFormatter", "LOOPBACK_HOSTS"]

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


_STATIC = Path(__file__).with_name("static")     # the page: no build step, no CDN


def create_app(model, config: ServeConfig | None = None, *, speakers=None):
    """The ASGI app: ``/ws`` (the protocol above), ``/health``, ``/version`` and the page at
    ``/``.

    Parameters
    ----------
    model : AsrModel
        Loaded once (:func:`biosig.asr.load_model`), shared by every session.
    config : ServeConfig, optional
    speakers : SpeakerModels, optional
        Enrolled speakers' models (:class:`biosig.asr.speakers.SpeakerModels`), for sessions
        whose ``start`` names a ``speaker``; each is loaded once and shared.
    """
    require("starlette", extra="serve")
    from starlette.applications import Starlette  # optional extra: serve (required above)
    return Starlette(routes=_routes(_Service(model, config or ServeConfig(), speakers)))


class _Service:
    """What the sessions of one app share: the model, the settings, the open sessions and the
    FIFO lock on which their decodes take turns."""

    def __init__(self, model, cfg: ServeConfig, speakers=None):
        self.model = model
        self.cfg = cfg
        self.speakers = speakers
        self.stream_cfg = StreamingConfig.validate_mapping(cfg.stream or {}, source="serve")
        self.decode_lock = asyncio.Lock()         # FIFO: sessions take turns
        self.sessions: dict[str, _Session] = {}
        self.allowed = cfg.origins()

    def refusal(self, ws) -> str | None:
        """Why ``ws`` may not open a session (a foreign origin, no or a wrong token), or None."""
        origin = ws.headers.get("origin")
        if origin is not None and origin not in self.allowed:
            return "foreign origin"
        if not _authorised(ws, self.cfg.token):
            return "missing or wrong token"
        return None


def _authorised(ws, token: str | None) -> bool:
    """Whether ``ws`` presents ``token`` (``Authorization: Bearer ...`` or ``?token=``)."""
    if not token:
        return True
    auth = ws.headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else \
        ws.query_params.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def _routes(service: _Service) -> list:
    """The app's routes: ``/`` (the page), ``/health``, ``/version``, ``/ws``, ``/static``."""
    from starlette.responses import FileResponse, JSONResponse  # optional extra: serve
    from starlette.routing import Mount, Route, WebSocketRoute  # optional extra: serve
    from starlette.staticfiles import StaticFiles  # optional extra: serve

    async def page(request):
        return FileResponse(_STATIC / "index.html")

    async def health(request):
        return JSONResponse({"status": "ok", "sessions": len(service.sessions),
                             "max_sessions": service.cfg.max_sessions})

    async def version(request):
        return JSONResponse({"biosig": biosig.__version__,
                             "model": getattr(service.model, "name", "")})

    async def ws_endpoint(ws):
        await _serve_websocket(service, ws)

    return [Route("/", page), Route("/health", health), Route("/version", version),
            WebSocketRoute("/ws", ws_endpoint),
            Mount("/static", StaticFiles(directory=_STATIC), name="static")]


async def _serve_websocket(service: _Service, ws) -> None:
    """One WebSocket: refused (close code 1008) for its origin or token, told ``busy`` (close
    code 1013) when ``max_sessions`` are open, else served as a :class:`_Session`."""
    reason = service.refusal(ws)
    if reason is not None:
        log.warning("websocket refused: %s", reason)
        await ws.close(code=1008)
        return
    await ws.accept()
    if len(service.sessions) >= service.cfg.max_sessions:
        await ws.send_json({"type": "busy", "max_sessions": service.cfg.max_sessions})
        await ws.close(code=1013)
        return
    await _Session(service, ws).run()


class _Session:
    """One dictation session on an accepted WebSocket: its engine (on a clock that starts at
    the session), the audio received and not yet given to the engine, and what the client
    asked for. :meth:`run` receives frames and messages while :meth:`decode_loop` decodes."""

    def __init__(self, service: _Service, ws):
        self.service, self.ws = service, ws
        self.sid = uuid.uuid4().hex[:12]
        self.t0 = time.monotonic()
        self.audio_s = 0.0                       # audio received (the session's length)
        terms = service.cfg.vocab_terms
        self.engine = DictationEngine(service.model, service.stream_cfg,
                                      vocab=Vocabulary(terms) if terms else None,
                                      clock=lambda: time.monotonic() - self.t0)
        self.pending: list[np.ndarray] = []      # audio received, not yet given to the engine
        self.wake = asyncio.Event()              # something for the decoder to do
        self.started = False                     # a start message came
        self.stop_asked = False                  # stop (or max_session_s): commit the rest
        self.flush_asked = False                 # flush: commit what is pending now
        self.gone = False                        # the client left

    async def run(self) -> None:
        """Receive until the client stops or leaves. The session is in ``service.sessions``
        meanwhile, and its counts are logged when it closes."""
        from starlette.websockets import WebSocketDisconnect  # optional extra: serve
        sessions = self.service.sessions
        sessions[self.sid] = self
        log.info("session %s opened (%d open)", self.sid, len(sessions))
        await self.ws.send_json({"type": "ready", "session": self.sid,
                                 "version": biosig.__version__})
        task = asyncio.create_task(self.decode_loop())
        try:
            while not self.stop_asked:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(msg.get("code", 1000))
                data = msg.get("bytes")
                if data is not None:
                    await self.on_audio(data)
                else:
                    await self.on_message(msg.get("text"))
            await task
            await self.ws.close()
        except WebSocketDisconnect:
            log.info("session %s: client left", self.sid)
            self.gone = True
            self.wake.set()
            task.cancel()
        finally:
            sessions.pop(self.sid, None)
            log.info("session %s closed: %s (%d open)", self.sid,
                     session_stats(self.engine, self.audio_s), len(sessions))

    async def decode_loop(self) -> None:
        """Decode whatever has arrived, one step at a time: audio that arrives during a
        decode is merged into the next one, so a slow machine means longer latency, never
        dropped or queued-up audio."""
        engine = self.engine
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.gone:
                return
            if self.pending:
                engine.push(np.concatenate(self.pending))
                self.pending.clear()
            # one step at a time, even for a backlog (engine.inbox_s: audio sent faster
            # than real time, or a machine far behind), so the other sessions take turns
            final = self.stop_asked and not engine.inbox_s
            flush = self.flush_asked and not engine.inbox_s
            if flush:
                self.flush_asked = False
            async with self.service.decode_lock:
                evs = await asyncio.to_thread(
                    engine.finish if final else engine.step, None,
                    **({} if final else {"final": flush}))
            for ev in evs:
                await self.ws.send_json(ev.to_dict())
            if final:
                await self.ws.send_json({"type": "done", "document": engine.document,
                                         "stats": session_stats(engine, self.audio_s)})
                return
            if self.pending or self.stop_asked or self.flush_asked or engine.inbox_s:
                self.wake.set()

    async def on_audio(self, data: bytes) -> None:
        """A binary frame: too long or an odd byte count is an ``error`` event; otherwise
        queued for the decoder, and past ``max_session_s`` the session ends as if stopped."""
        cfg = self.service.cfg
        if len(data) > cfg.max_frame_bytes:
            await self.ws.send_json({"type": "error", "message":
                                     f"frame of {len(data)} bytes: at most "
                                     f"{cfg.max_frame_bytes}"})
            return
        try:
            x = pcm16_to_float(data)
        except ValueError as exc:
            await self.ws.send_json({"type": "error", "message": str(exc)})
            return
        self.pending.append(x)
        self.audio_s += x.size / ASR_FS
        if self.audio_s > cfg.max_session_s:
            await self.ws.send_json({"type": "error", "message":
                                     f"session longer than {cfg.max_session_s:g} s: ended"})
            self.stop_asked = True
        self.wake.set()

    async def on_message(self, text: str | None) -> None:
        """A text message: ``start`` (the first one only), ``flush`` or ``stop``; anything
        else is an ``error`` event, and the session goes on."""
        try:
            msg = json.loads(text or "")
            kind = msg.get("type") if isinstance(msg, dict) else None
        except json.JSONDecodeError:
            kind = None
        if kind == "start" and not self.started:
            self.started = True
            await self.on_start(msg.get("options") or {})
        elif kind == "flush":
            self.flush_asked = True
            self.wake.set()
        elif kind == "stop":
            self.stop_asked = True
            self.wake.set()
        else:
            await self.ws.send_json({"type": "error", "message":
                                     "expected a binary PCM frame or a JSON message with "
                                     "type start, flush or stop"})

    async def on_start(self, opts) -> None:
        """The ``start`` options: an enrolled ``speaker``, a ``vocab`` (with ``vocab_correct``).
        A bad one is an ``error`` event naming it, and the session goes on without it."""
        if not isinstance(opts, dict):
            await self.ws.send_json({"type": "error", "message":
                                     "start: options must be an object"})
            return
        spk = opts.get("speaker")
        if spk is not None:
            err = await self.use_speaker(spk)
            if err is not None:
                await self.ws.send_json({"type": "error", "message": err})
        terms = opts.get("vocab")
        if isinstance(terms, list) and terms:
            try:
                self.engine.vocab = Vocabulary(str(t) for t in terms)
                self.engine.vocab_correct = bool(opts.get("vocab_correct", False))
            except ConfigError as exc:
                await self.ws.send_json({"type": "error", "message": str(exc)})

    async def use_speaker(self, spk) -> str | None:
        """Decode with the enrolled speaker ``spk``'s model (loaded once, shared); the reason
        it cannot, or None."""
        speakers = self.service.speakers
        if speakers is None:
            return f"speaker {spk!r}: this server serves no enrolled speakers"
        if not isinstance(spk, str):
            return f"start: options.speaker must be a name, got {spk!r}"
        try:
            self.engine.model = await asyncio.to_thread(speakers.get, spk)
        except ConfigError as exc:
            return str(exc)
        log.info("session %s: an enrolled speaker's model", self.sid)
        return None


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
