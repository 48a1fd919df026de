"""Named results of speech recognition: words, segments, transcripts and streaming events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Word", "Segment", "Transcript", "StreamEvent"]


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds from the start of the audio.

    ``text`` keeps Whisper's leading space and punctuation (``" stable."``); use
    :func:`biosig.asr.metrics.normalize_text` to compare words.
    """

    text: str
    start_s: float
    end_s: float
    probability: float = 1.0

    def shifted(self, offset_s: float) -> Word:
        return Word(self.text, self.start_s + offset_s, self.end_s + offset_s, self.probability)


@dataclass(frozen=True)
class Segment:
    """A run of words the decoder emitted between two timestamp tokens."""

    text: str
    start_s: float
    end_s: float
    words: tuple[Word, ...] = ()

    def shifted(self, offset_s: float) -> Segment:
        return Segment(self.text, self.start_s + offset_s, self.end_s + offset_s,
                       tuple(w.shifted(offset_s) for w in self.words))


@dataclass
class Transcript:
    """The transcription of one recording.

    Attributes
    ----------
    text : str
        The whole text, segments joined with single spaces.
    segments : list of Segment
    language : str or None
    duration_s : float
        Length of the audio in seconds.
    decode_time_s : float
        Wall-clock time spent decoding (for the real-time factor).
    path : str or None
    """

    text: str
    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    duration_s: float = 0.0
    decode_time_s: float = 0.0
    path: str | None = None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def rtf(self) -> float:
        """Real-time factor: decode time over audio duration (``nan`` for empty audio)."""
        return self.decode_time_s / self.duration_s if self.duration_s > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "path": self.path, "text": self.text, "language": self.language,
            "duration_s": self.duration_s, "decode_time_s": self.decode_time_s,
            "segments": [{"text": s.text, "start_s": s.start_s, "end_s": s.end_s,
                          "words": [asdict(w) for w in s.words]} for s in self.segments],
        }


@dataclass(frozen=True)
class StreamEvent:
    """One event of the streaming engine.

    Attributes
    ----------
    type : {"partial", "final"}
        ``partial``: the current uncommitted hypothesis (may still change); ``final``: newly
        committed words (never change again).
    text : str
        The words of this event (raw recogniser text, dictation commands not applied).
    start, end : float
        Span of those words in the audio, in seconds from the start of the stream.
    emitted_at : float
        When the event was emitted, in seconds on the stream's clock (wall clock since the
        stream started, or the simulated clock of :func:`biosig.asr.streaming.simulate_stream`).
    words : tuple of Word
        The words themselves (not written to the JSON line).
    """

    type: str
    text: str
    start: float
    end: float
    emitted_at: float
    words: tuple[Word, ...] = ()

    def to_dict(self) -> dict:
        return {"type": self.type, "text": self.text, "start": round(self.start, 3),
                "end": round(self.end, 3), "emitted_at": round(self.emitted_at, 3)}
