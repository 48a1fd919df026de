"""Normaliser, WER/CER, term recall and latency statistics."""

import math

import numpy as np
import pytest

from biosig.asr.metrics import (
    align_word_times,
    error_rates,
    latency_stats,
    normalize_text,
    number_to_words,
    term_recall,
)


@pytest.mark.parametrize("text, expected", [
    ("Hello, World!", "hello world"),
    ("HE HOPED THERE WOULD BE STEW", "he hoped there would be stew"),
    ("lag behind by 25-30 years.", "lag behind by twenty five thirty years"),
    ("1,000 patients", "one thousand patients"),
    ("2.5 mg", "two point five mg"),
    ("the 3rd and 21st", "the third and twenty first"),
    ("50% better", "fifty percent better"),
    ("Don't stop", "don't stop"),
    ("O\u2019Brien & Smith", "o'brien and smith"),
    ("flour-fattened sauce", "flour fattened sauce"),
    ("  ", ""),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("n, words", [(0, "zero"), (13, "thirteen"), (40, "forty"),
                                      (115, "one hundred fifteen"),
                                      (2024, "two thousand twenty four"),
                                      (1_000_000, "one million")])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_error_rates_known_counts():
    er = error_rates(["the cat sat on the mat"], ["The cat sat on a mat."])
    assert er.substitutions == 1 and er.deletions == 0 and er.insertions == 0
    assert er.wer == pytest.approx(1 / 6)
    er = error_rates(["a b c", "d e"], ["a c", "d e f"])
    assert (er.deletions, er.insertions, er.n_ref_words) == (1, 1, 5)
    assert er.wer == pytest.approx(2 / 5)
    # digits and words agree after normalisation
    assert error_rates(["twenty five to thirty"], ["25 to 30"]).wer == 0.0


def test_error_rates_empty_sides():
    er = error_rates(["a b"], [""])
    assert er.wer == 1.0 and er.deletions == 2
    assert error_rates([""], [""]).wer == 0.0
    assert math.isinf(error_rates([""], ["x"]).wer)


def test_term_recall():
    hyp = "Patient has atrial fibrillation and hypertension."
    assert term_recall(["atrial fibrillation", "Hypertension", "metformin"], hyp) == (2, 3)
    assert term_recall(["tension"], hyp) == (0, 1)  # whole words only


def test_latency_stats_hand_made():
    # words end at 1, 2, 3, 4 s; committed at 2.5, 3.5, 5, 8 s -> latencies 1.5, 1.5, 2, 4
    st = latency_stats([2.5, 3.5, 5.0, 8.0], [1.0, 2.0, 3.0, 4.0], audio_end_s=7.0)
    assert st.n_words == 4
    assert st.mean_s == pytest.approx(2.25)
    assert st.p50_s == pytest.approx(1.75)
    assert st.p90_s == pytest.approx(np.percentile([1.5, 1.5, 2, 4], 90))
    assert st.max_s == pytest.approx(4.0)
    assert st.last_word_delay_s == pytest.approx(1.0)


def test_latency_stats_empty_and_mismatch():
    assert latency_stats([], [], audio_end_s=1.0).n_words == 0
    with pytest.raises(ValueError, match="differ in shape"):
        latency_stats([1.0], [1.0, 2.0], audio_end_s=1.0)


def test_align_word_times_uses_reference_for_matches():
    hyp = [" the", " cat", " zat", " on"]
    ref = [" The", " cat", " sat", " on", " mat"]
    out = align_word_times(hyp, [9, 9, 9, 9], ref, [1, 2, 3, 4, 5])
    assert out.tolist() == [1, 2, 9, 4]
