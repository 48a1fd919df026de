"""The client of the dictation service (:mod:`biosig.asr.serve`): what ``biosig dictate
--server`` runs. :func:`stream_to_server` sends 16 kHz audio over the service's WebSocket
protocol (described in :mod:`biosig.asr.serve`), hands each event to a callback, and returns
the document; a lost connection is opened again and the audio not yet committed sent first.

Needs the ``serve`` extra (websockets), imported only when a stream starts.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from biosig.asr.audio import ASR_FS, float_to_pcm16
from biosig.asr.commands import CommandTable, apply_commands
from biosig.errors import ConfigError
from biosig.extras import require

__all__ = ["stream_to_server", "websocket_url", "ServerRefused", "float_to_pcm16"]


class ServerRefused(ConnectionError):
    """The server answered the WebSocket with something other than ``ready`` (``busy``)."""


class _ClientSession:
    """One WebSocket session of :func:`stream_to_server`: a reader thread collects the events;
    the audio sent and not yet committed is kept (to send again after a lost connection)."""

    def __init__(self, url, headers, options, emit):
        from websockets.sync.client import connect  # optional extra: serve
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
