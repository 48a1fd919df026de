"""Rhythm patterns (:func:`biosig.ecg.rr_patterns`, :func:`biosig.ecg.beat_shape`) on beat
trains with known answers: sinus rhythm, bigeminy, isolated premature beats with their pauses,
and random (AF-like) intervals."""

from __future__ import annotations

import numpy as np
import pytest

from biosig.ecg import RR_PATTERN_KEYS, beat_shape, beat_shape_keys, rr_patterns
from biosig.errors import InputError

FS = 300.0


def _peaks(rr_s) -> np.ndarray:
    return np.round(np.concatenate([[0.5], 0.5 + np.cumsum(rr_s)]) * FS).astype(np.int64)


def test_sinus_rhythm_is_regular_with_no_premature_beat():
    out = rr_patterns(_peaks(np.full(40, 0.8)), fs=FS)
    assert set(out) == set(RR_PATTERN_KEYS)
    assert out["rr_short_frac"] == out["rr_long_frac"] == out["rr_premature_pause_frac"] == 0
    assert out["rr_ratio_p05"] == out["rr_ratio_p95"] == pytest.approx(1.0)
    assert out["rr_regular_run_frac"] == 1.0                  # one run covers every interval
    assert out["rr_p05_s"] == out["rr_p95_s"] == pytest.approx(0.8)
    assert out["rr_lorenz_cells"] == pytest.approx(1 / 38)   # every point in the origin cell


def test_bigeminy_alternates_and_isolated_premature_beats_pause():
    big = rr_patterns(_peaks(np.tile([0.5, 1.1], 20)), fs=FS)
    assert big["rr_ac1"] == pytest.approx(-1.0, abs=0.05)
    assert big["rr_ac2"] == pytest.approx(1.0, abs=0.1)
    assert big["rr_turning_point_ratio"] == 1.0
    rr = np.full(40, 0.8)
    rr[[8, 20, 32]] = 0.5                                    # three premature beats,
    rr[[9, 21, 33]] = 1.1                                    # each with its compensatory pause
    pvc = rr_patterns(_peaks(rr), fs=FS)
    assert pvc["rr_short_frac"] == pvc["rr_long_frac"] == pytest.approx(3 / 40)
    assert pvc["rr_premature_pause_frac"] == pytest.approx(3 / 39)
    assert pvc["rr_ratio_p05"] < 0.7 and pvc["rr_ratio_p95"] > 1.3
    assert pvc["rr_regular_run_frac"] == pytest.approx(10 / 40)    # intervals 10-19 or 22-31


def test_random_intervals_turn_about_two_thirds_of_the_time_and_scatter():
    rng = np.random.default_rng(0)
    af = rr_patterns(_peaks(rng.uniform(0.4, 1.0, size=600)), fs=FS)
    assert af["rr_turning_point_ratio"] == pytest.approx(2 / 3, abs=0.05)
    assert abs(af["rr_ac1"]) < 0.1
    assert af["rr_lorenz_cells"] > 0.2
    sinus = rr_patterns(_peaks(0.8 + 0.005 * rng.normal(size=600)), fs=FS)
    assert sinus["rr_lorenz_cells"] < 0.02


def test_too_few_beats_give_nan():
    assert all(np.isnan(v) for v in rr_patterns(_peaks([0.8, 0.8, 0.8]), fs=FS).values())


def _beat(t, *, ectopic: bool) -> np.ndarray:
    if ectopic:                                              # wide, inverted: ventricular
        return -0.8 * np.exp(-0.5 * (t / 0.04) ** 2)
    return (np.exp(-0.5 * (t / 0.012) ** 2) + 0.15 * np.exp(-0.5 * ((t + 0.16) / 0.025) ** 2)
            + 0.3 * np.exp(-0.5 * ((t - 0.25) / 0.05) ** 2))


def test_beat_shape_finds_the_premature_beats_that_look_ventricular():
    rng = np.random.default_rng(1)
    t = np.arange(int(0.7 * FS)) / FS - 0.25
    rr = np.full(30, 0.8)
    rr[[10, 20]] = 0.5                                       # beats 11 and 21 come early
    peaks = _peaks(rr)
    ectopic = {11, 21}
    beats = np.array([_beat(t, ectopic=i in ectopic) + 0.005 * rng.normal(size=t.size)
                      for i in range(peaks.size)])
    out = beat_shape(beats, peaks, peaks, n_points=7)
    assert tuple(out) == beat_shape_keys(7)
    assert out["beat_low_corr_frac"] == pytest.approx(2 / 31)
    assert out["beat_premature_low_corr_frac"] == 1.0
    assert out["beat_premature_corr_mean"] < 0.5
    # the median beat at 7 points across the 0.7 s window: R (0.25 s in) lands between the 2nd
    # and 3rd point, so the largest value is under 1 and positive there; the ends are flat
    tmpl = np.array([out[f"beat_template_{i:02d}"] for i in range(7)])
    assert np.argmax(np.abs(tmpl)) in (2, 3) and tmpl.max() > 0
    assert abs(tmpl[0]) < 0.05 and abs(tmpl[-1]) < 0.05
    # the same beats with the ectopic ones on time: not premature, so that value is NaN
    even = _peaks(np.full(30, 0.8))
    assert np.isnan(beat_shape(beats, even, even)["beat_premature_low_corr_frac"])


def test_beat_shape_bad_input_is_named():
    t = np.arange(int(0.7 * FS)) / FS - 0.25
    beats = np.array([_beat(t, ectopic=False)] * 5)
    with pytest.raises(InputError, match="beat_samples"):
        beat_shape(beats, np.arange(4), np.arange(5))
    beats[2, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        beat_shape(beats, np.arange(5), np.arange(5))
    assert all(np.isnan(v) for v in beat_shape(beats[:2], np.arange(2), np.arange(2)).values())


def test_ecg_preset_adds_rhythm_features_only_when_asked(mitdb_100):
    import biosig.features as bf
    plain = bf.extract_features(mitdb_100, modality="ecg")
    row = bf.extract_features(mitdb_100, modality="ecg", rhythm_features=True)
    assert set(row) == set(plain) | set(RR_PATTERN_KEYS) | set(beat_shape_keys(20))
    assert {k: row[k] for k in plain} == pytest.approx(plain, nan_ok=True)
    # record 100 is sinus rhythm with a few premature atrial beats: mostly regular
    assert row["rr_short_frac"] < 0.05 and row["beat_low_corr_frac"] < 0.1
