"""Beat morphology (:func:`biosig.ecg.beat_morphology`) on beats with known answers: a P wave
in every beat, or fibrillatory waves of random phase in its place."""

from __future__ import annotations

import numpy as np
import pytest

from biosig.ecg import MORPHOLOGY_KEYS, beat_morphology
from biosig.errors import InputError

FS = 300.0
OFFSET_S = 0.25


def _beats(n: int, *, p_wave: bool, f_waves: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.7 * FS)) / FS - OFFSET_S            # seconds from R
    qrs = np.exp(-0.5 * (t / 0.012) ** 2)                   # R: 1 mV, about 28 ms wide
    twave = 0.3 * np.exp(-0.5 * ((t - 0.25) / 0.05) ** 2)
    pwave = 0.15 * np.exp(-0.5 * ((t + 0.16) / 0.025) ** 2) if p_wave else 0 * t
    out = []
    for _ in range(n):
        f = f_waves * np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 2 * np.pi))
        out.append(qrs + twave + pwave + f + 0.005 * rng.normal(size=t.size))
    return np.array(out)


def test_p_wave_present_or_replaced_by_fibrillatory_waves():
    sinus = beat_morphology(_beats(30, p_wave=True), fs=FS, offset_s=OFFSET_S)
    af = beat_morphology(_beats(30, p_wave=False, f_waves=0.08), fs=FS, offset_s=OFFSET_S)
    assert set(sinus) == set(MORPHOLOGY_KEYS)
    assert sinus["beat_p_corr_mean"] > 0.9 > 0.3 > af["beat_p_corr_mean"]
    assert sinus["beat_p_rel_amp"] == pytest.approx(0.15, abs=0.02)     # P 0.15 over R 1.0
    assert sinus["beat_t_rel_amp"] == pytest.approx(0.3, abs=0.03)
    assert af["beat_residual_af_power"] > 0.8 > 0.5 > sinus["beat_residual_af_power"]
    assert af["beat_p_residual_rel_rms"] > 3 * sinus["beat_p_residual_rel_rms"]
    assert sinus["beat_corr_mean"] > 0.99 and sinus["beat_corr_std"] < 0.01
    # the median beat's R is above half height for about 2.355 sigma = 28 ms
    assert sinus["beat_qrs_width_s"] == pytest.approx(0.028, abs=2 / FS)


def test_too_few_beats_give_nan_and_bad_input_is_named():
    assert all(np.isnan(v) for v in beat_morphology(_beats(2, p_wave=True), fs=FS,
                                                    offset_s=OFFSET_S).values())
    with pytest.raises(InputError, match="beats"):
        beat_morphology(np.zeros(10), fs=FS, offset_s=OFFSET_S)
    bad = _beats(5, p_wave=True)
    bad[1, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        beat_morphology(bad, fs=FS, offset_s=OFFSET_S)


def test_ecg_preset_features_carry_the_morphology(mitdb_100):
    import biosig.features as bf
    row = bf.extract_features(mitdb_100, modality="ecg")
    assert set(MORPHOLOGY_KEYS) <= set(row)
    assert row["beat_p_corr_mean"] > 0.5 and row["beat_corr_mean"] > 0.9   # sinus rhythm


def test_coefficient_of_sample_entropy_by_hand_and_on_rhythms():
    from biosig.ecg import coefficient_of_sample_entropy as cosen
    rr = np.array([1.0, 1.0, 1.5, 1.0, 1.0])
    # length-1 templates (the first four): pairs within 30 ms (0,1) (0,3) (1,3): B = 3; their
    # next intervals (1.0, 1.5) (1.0, 1.0) (1.5, 1.0): only (0,3) still matches, A = 1
    expected = -np.log(1 / 3) + np.log(0.06) - np.log(rr.mean())
    assert cosen(rr) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    sinus = 0.8 + 0.01 * rng.normal(size=60)             # regular: many matches
    af = rng.uniform(0.4, 1.0, size=60)                  # irregular: few
    assert cosen(af) > cosen(sinus) + 1
    assert np.isnan(cosen(rr[:3])) and np.isnan(cosen(np.array([0.5, 0.9, 1.4, 2.0, 2.6])))
