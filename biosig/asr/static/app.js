// biosig dictation page: microphone -> AudioWorklet (16 kHz PCM) -> WebSocket /ws -> events.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const doc = $("document"), partial = $("partial"), statusEl = $("status"), msg = $("message");
  const token = new URLSearchParams(location.search).get("token");
  let ws = null, ctx = null, node = null, stream = null, running = false;
  let t0 = 0, latencies = [], retry = 0, reconnecting = false;
  // audio captured while the connection is (re)opening: sent once it is open (at most 60 s)
  let backlog = [], backlogBytes = 0;
  const MAX_BACKLOG = 60 * 16000 * 2;
  // audio sent in this session and not yet committed ({buf, start}: start in samples of the
  // session): if the connection is lost it is sent again to the next session, so a server
  // restart loses neither committed text nor the words being spoken
  let unconfirmed = [], sessionSamples = 0;
  function trimBacklog() {
    while (backlogBytes > MAX_BACKLOG) backlogBytes -= backlog.shift().byteLength;
  }
  function send(buf) {
    ws.send(buf);
    unconfirmed.push({ buf: buf, start: sessionSamples });
    sessionSamples += buf.byteLength / 2;
  }
  function confirmUpTo(endS) {       // a final event committed the audio up to endS
    const cut = Math.round(endS * 16000);
    while (unconfirmed.length) {
      const u = unconfirmed[0], n = u.buf.byteLength / 2;
      if (u.start + n <= cut) { unconfirmed.shift(); continue; }
      if (u.start < cut) { unconfirmed[0] = { buf: u.buf.slice((cut - u.start) * 2), start: cut }; }
      break;
    }
  }
  function sendAudio(buf) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      while (backlog.length) send(backlog.shift());
      backlogBytes = 0;
      send(buf);
    } else if (running) {
      backlog.push(buf); backlogBytes += buf.byteLength;
      trimBacklog();
    }
  }

  function status(text, kind) { statusEl.textContent = text; statusEl.className = "status " + (kind || ""); }
  function message(text, kind) {
    if (!text) { msg.hidden = true; return; }
    msg.textContent = text; msg.className = "message " + (kind || ""); msg.hidden = false;
  }
  function wsUrl() {
    const u = new URL("ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (token) u.searchParams.set("token", token);
    return u.toString();
  }
  function append(text) {
    const t = text.trim();
    if (!t) return;
    const sep = doc.value && !/\s$/.test(doc.value) ? " " : "";
    doc.value += sep + t;
    doc.scrollTop = doc.scrollHeight;
  }
  function onEvent(ev) {
    if (ev.type === "ready") {
      retry = 0; status("listening", "");
      if (reconnecting) message("Reconnected. The committed text is kept; the audio not yet committed was sent again.", "ok");
      else message("");
      reconnecting = false;
      return;
    }
    if (ev.type === "partial") { partial.textContent = ev.text; return; }
    if (ev.type === "final") {
      confirmUpTo(ev.end);
      append(ev.text);
      partial.textContent = "";
      // latency: from when the last committed word was spoken to now
      const lat = (performance.now() - t0) / 1000 - ev.end;
      if (lat >= 0) {
        latencies.push(lat);
        if (latencies.length > 20) latencies.shift();
        const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
        $("latency").textContent = mean.toFixed(1) + " s";
      }
      return;
    }
    if (ev.type === "busy") { message("The server is busy (all " + ev.max_sessions + " sessions in use). Try again in a moment.", "error"); status("busy", "error"); stop(false); return; }
    if (ev.type === "error") { message("Server: " + ev.message, "warn"); return; }
    if (ev.type === "done") { status("idle", "idle"); }
  }
  function connect() {
    ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "start", options: {} }));
      unconfirmed = []; sessionSamples = 0;
      while (backlog.length) send(backlog.shift());
      backlogBytes = 0;
    };
    ws.onmessage = (e) => onEvent(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (!running) return;
      if (e.code === 1013) return;      // busy: already said
      // lost connection: committed text stays in the document; the audio not yet committed
      // goes first in the next session; reconnect with back-off
      backlog = unconfirmed.map((u) => u.buf).concat(backlog);
      backlogBytes = backlog.reduce((a, b) => a + b.byteLength, 0);
      trimBacklog();
      unconfirmed = []; sessionSamples = 0;
      partial.textContent = "";
      reconnecting = true;
      status("reconnecting", "warn");
      message("Connection lost. The committed text is kept; reconnecting\u2026", "warn");
      const wait = Math.min(8000, 500 * Math.pow(2, retry++));
      // the new session's clock starts with the audio held back since the loss
      setTimeout(() => { if (running) { t0 = performance.now() - backlogBytes / 32; connect(); } }, wait);
    };
  }
  async function start() {
    message("");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false } });
    } catch (err) {
      const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      message(denied ? "Microphone access was denied. Allow the microphone for this page and press Start again."
                     : "No microphone could be opened (" + (err && err.name) + ").", "error");
      status("no microphone", "error");
      return;
    }
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("static/worklet.js");
    const src = ctx.createMediaStreamSource(stream);
    node = new AudioWorkletNode(ctx, "pcm-resampler");
    node.port.onmessage = (e) => sendAudio(e.data);
    src.connect(node);
    running = true; latencies = []; t0 = performance.now();
    $("start").disabled = true; $("stop").disabled = false;
    status("connecting", "warn");
    connect();
  }
  function stop(sendStop) {
    running = false;
    $("start").disabled = false; $("stop").disabled = true;
    if (node) { node.port.onmessage = null; node.disconnect(); node = null; }
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    if (ctx) { ctx.close(); ctx = null; }
    if (ws && ws.readyState === WebSocket.OPEN && sendStop !== false) ws.send(JSON.stringify({ type: "stop" }));
  }
  $("start").onclick = start;
  $("stop").onclick = () => stop(true);
  $("download").onclick = () => {
    const blob = new Blob([doc.value + "\n"], { type: "text/plain" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "dictation-" + new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-") + ".txt";
    a.click();
    URL.revokeObjectURL(a.href);
  };
  window.biosigDictation = { start, stop, state: () => ({ running, document: doc.value, partial: partial.textContent }) };
})();
