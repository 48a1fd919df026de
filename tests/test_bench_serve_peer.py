"""bench/serve.py's reading of WhisperLiveKit's updates (the peer's commit latency), on a
hand-made sequence of updates with known answers."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("websockets", reason="needs the [serve] extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _line(text, start, end, speaker=0):
    return {"text": text, "start": start, "end": end, "speaker": speaker}


def test_peer_word_times_spread_new_words_and_count_rewrites_once():
    from serve import peer_word_times
    updates = [
        (0.5, {"status": "active_transcription"}),                 # no lines: skipped
        (1.0, {"lines": [_line("hello there", "0:00:00.00", "0:00:01.00")]}),
        (2.0, {"lines": [_line("hello there, general", "0:00:00.00", "0:00:02.00")]}),
        (4.0, {"lines": [_line("hello there general kenobi", "0:00:00.00", "0:00:02.80"),
                         _line("", "0:00:02.80", "0:00:03.00", speaker=-2),   # silence
                         _line("next", "0:00:03.00", "0:00:03.50")]}),
        (5.0, {"lines": [_line("hello there general kenobis", "0:00:00.00", "0:00:02.90"),
                         _line("next", "0:00:03.00", "0:00:03.50")]}),
    ]
    times, text, rewritten = peer_word_times(updates)
    assert text == "hello there general kenobis next"
    # two words of a new line share its span; a word added to a line spans from the line's
    # previous end; "there," is "there" punctuated, not a new word; "kenobi" -> "kenobis"
    # arrives with its final form, and the words after it are counted again with it
    assert [a for a, _ in times] == [1.0, 1.0, 2.0, 5.0, 5.0]
    assert [e for _, e in times] == pytest.approx([0.5, 1.0, 2.0, 2.9, 3.5])
    assert rewritten == 2


def test_peer_clock():
    from serve import _clock_s
    assert _clock_s("1:02:03.25") == pytest.approx(3723.25)
