"""PCG heart-cycle segmentation: the HSMM decoder against brute force, the S1/S2 scores on
hand-made intervals, the segmenter on synthetic heart sounds with known S1/S2 times, the shipped
weights, ``biosig segment pcg`` on a real CirCor recording and its errors. No corpus needed."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from biosig.errors import InputError
from biosig.manifests import read_circor_segmentation
from biosig.pcg import (
    HeartCycle,
    PcgSegmenterWeights,
    _kernels,
    compare_heart_sounds,
    evaluate_pcg_segmentation,
    format_circor_tsv,
    pcg_cycle_features,
    pcg_envelopes,
    pcg_segment,
    states_to_intervals,
)
from biosig.synth import synth_pcg

CIRCOR = "pcg/circor2022/training_data"


def _synthetic(heart_rate_bpm: float, seed: int = 0, duration_s: float = 20.0):
    """A synthetic PCG and its full reference (S1 and S2 100 ms from their annotated onsets,
    systole and diastole between them)."""
    sig = synth_pcg(duration_s, fs=4000.0, heart_rate_bpm=heart_rate_bpm, seed=seed)
    on, lab = sig.annotations.onset_s, sig.annotations.labels
    rows = []
    for i in range(len(on)):
        state = 1 if lab[i] == "S1" else 3
        rows.append([on[i], on[i] + 0.1, state])
        if i + 1 < len(on):
            rows.append([on[i] + 0.1, on[i + 1], 2 if state == 1 else 4])
    return sig, np.array(rows)


# ----------------------------------------------------------------------------- decoder kernel

def _brute_force(log_em, log_dur, log_surv, min_d, max_d):
    """Best path by enumerating every segmentation of a short sequence."""
    k, n = log_em.shape
    best, best_states = -np.inf, None
    for first in range(k):
        for cuts in itertools.chain.from_iterable(
                itertools.combinations(range(1, n), m) for m in range(n)):
            bounds = [0, *cuts, n]
            score, states = np.log(1 / k), np.zeros(n, dtype=np.int64)
            ok = True
            for v, (a, b) in enumerate(itertools.pairwise(bounds)):
                j = (first + v) % k
                d = b - a
                first_or_last = v == 0 or b == n
                if not first_or_last and not min_d[j] <= d <= max_d[j]:
                    ok = False
                    break
                if first_or_last and d > max_d[j]:
                    ok = False
                    break
                if first_or_last:
                    score += log_surv[j, d]
                else:
                    score += log_dur[j, d]
                score += log_em[j, a:b].sum()
                states[a:b] = j
            if ok and score > best:
                best, best_states = score, states
    return best_states, best


def test_hsmm_viterbi_equals_brute_force():
    rng = np.random.default_rng(0)
    k, n = 4, 9
    min_d = np.array([1, 2, 1, 2], dtype=np.int64)
    max_d = np.array([2, 3, 2, 4], dtype=np.int64)
    p = rng.random((k, 6))
    d = np.arange(6)
    p[(d[None, :] < min_d[:, None]) | (d[None, :] > max_d[:, None])] = 0
    p /= p.sum(1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_dur = np.log(p)
    log_surv = np.log(np.maximum(np.cumsum(p[:, ::-1], 1)[:, ::-1], 1e-300))
    for trial in range(3):
        log_em = rng.normal(size=(k, n))
        got, score = _kernels.hsmm_viterbi_kernel(log_em, log_dur, log_surv, min_d, max_d)
        want, best = _brute_force(log_em, log_dur, log_surv, min_d, max_d)
        assert score == pytest.approx(best, abs=1e-9), trial
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- evaluation

def test_compare_heart_sounds_hand_made():
    ref = np.array([[0.0, 1.0, 0], [1.0, 1.1, 1], [1.1, 1.4, 2], [1.4, 1.5, 3], [1.5, 2.0, 4],
                    [2.0, 2.1, 1], [2.1, 2.4, 2], [2.4, 2.5, 3], [2.5, 3.0, 4],
                    [3.0, 4.0, 0]])
    det = np.array([[0.2, 0.3, 1],                   # outside the annotated stretch: ignored
                    [1.04, 1.14, 1],                 # S1 centre 1.09, 40 ms off: found
                    [1.47, 1.57, 3],                 # S2 centre 1.52, 70 ms off: extra + missed
                    [2.0, 2.1, 3],                   # an S2 where S1 is: extra S2, S1 missed
                    [2.42, 2.52, 3]])                # found
    ev = compare_heart_sounds(ref, det)
    assert (ev.s1.tp, ev.s1.fp, ev.s1.fn) == (1, 0, 1)
    assert (ev.s2.tp, ev.s2.fp, ev.s2.fn) == (1, 2, 1)
    assert ev.s1.f1 == pytest.approx(2 / 3)
    assert ev.s2.se == pytest.approx(0.5) and ev.s2.ppv == pytest.approx(1 / 3)
    assert ev.s2.f1 == pytest.approx(2 / 5)
    # a looser tolerance finds the 70 ms S2; pooling adds counts
    assert compare_heart_sounds(ref, det, tolerance_s=0.08).s2.tp == 2
    pooled = evaluate_pcg_segmentation([(ref, det), (ref, ref)])
    assert pooled.n_recordings == 2
    assert (pooled.s1.tp, pooled.s1.fp, pooled.s1.fn) == (3, 0, 1)
    assert pooled.s2.f1 == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))


def test_each_detection_matches_one_reference():
    ref = np.array([[1.0, 1.1, 1], [1.1, 1.2, 2], [1.2, 1.3, 1]])   # S1 centres 1.05, 1.25
    det = np.array([[1.1, 1.2, 1]])                  # centre 1.15: 100 ms from both
    ev = compare_heart_sounds(ref, det, tolerance_s=0.11)
    assert (ev.s1.tp, ev.s1.fp, ev.s1.fn) == (1, 0, 1)


def test_compare_accepts_annotations(data_root):
    ref = read_circor_segmentation(data_root / CIRCOR / "49823_PV.tsv")
    ev = compare_heart_sounds(ref, ref)
    assert ev.s1.f1 == 1.0 and ev.s2.f1 == 1.0 and ev.s1.tp > 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance_s"):
        compare_heart_sounds(np.zeros((0, 3)), np.zeros((0, 3)), tolerance_s=0)
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        compare_heart_sounds(np.zeros((2, 2)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="method"):
        pcg_segment(np.zeros(8000), fs=4000.0, method="viterbi")


# ----------------------------------------------------------------------------- segmenter

@pytest.mark.parametrize("heart_rate_bpm", [60.0, 75.0, 100.0])
def test_synthetic_heart_sounds_are_found(heart_rate_bpm):
    sig, ref = _synthetic(heart_rate_bpm, seed=1)
    seg = pcg_segment(sig.data[0], fs=sig.fs)
    ev = compare_heart_sounds(ref, seg)
    assert ev.s1.f1 >= 0.95 and ev.s2.f1 >= 0.95, str(ev)
    assert seg.heart_cycle.heart_rate_bpm == pytest.approx(heart_rate_bpm, rel=0.05)
    # the result's views agree with each other
    assert seg.states.shape == sig.data[0].shape and seg.states.dtype == np.int8
    iv = seg.intervals()
    assert iv[0, 0] == 0 and iv[-1, 1] == pytest.approx(20.0)
    np.testing.assert_allclose(iv[1:, 0], iv[:-1, 1])
    labelled = iv[iv[:, 2] > 0]
    assert seg.annotations.labels == [{1: "S1", 2: "systole", 3: "S2", 4: "diastole"}[int(s)]
                                      for s in labelled[:, 2]]
    # the states follow the cycle S1 -> systole -> S2 -> diastole
    s = labelled[:, 2].astype(int)
    assert np.all((s[1:] - s[:-1]) % 4 == 1)


def test_signal_and_array_give_the_same_answer():
    sig, _ = _synthetic(75.0, duration_s=8.0)
    a = pcg_segment(sig.data[0], fs=sig.fs)
    b = pcg_segment(sig)
    np.testing.assert_array_equal(a.states, b.states)


def test_silence_and_clipping_are_not_labelled():
    sig, ref = _synthetic(70.0, seed=2)
    x = sig.data[0].astype(np.float64)
    fs = sig.fs
    x[int(8 * fs):int(10 * fs)] = 0.0                  # drop-out
    x[int(14 * fs):int(14.3 * fs)] = np.abs(x).max() * 1.5   # clipped at full scale
    seg = pcg_segment(x, fs=fs)
    frames = seg.frame_states
    assert np.all(frames[int(8.1 * 50):int(9.9 * 50)] == 0)
    assert np.all(frames[int(14 * 50):int(14.3 * 50)] == 0)
    assert np.count_nonzero(frames) > 0.7 * frames.size
    ev = compare_heart_sounds(ref, seg)
    assert ev.s1.ppv >= 0.95 and ev.s2.ppv >= 0.95, str(ev)


def test_given_heart_cycle_is_used():
    sig, _ = _synthetic(75.0, duration_s=8.0)
    seg = pcg_segment(sig.data[0], fs=sig.fs, heart_cycle=HeartCycle(75.0, 0.25))
    assert seg.heart_cycle == HeartCycle(75.0, 0.25)


def test_bad_signals_raise_one_line_errors():
    with pytest.raises(ValueError, match="at least 1000"):
        pcg_segment(np.zeros(8000), fs=500.0)
    with pytest.raises(InputError, match="expected at least 1 s"):
        pcg_segment(np.ones(2000), fs=4000.0)
    x = np.random.default_rng(0).normal(size=8000)
    x[5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pcg_segment(x, fs=4000.0)
    with pytest.raises(ValueError, match="one channel"):
        pcg_envelopes(np.zeros((2, 8000)), fs=4000.0)


# ----------------------------------------------------------------------------- weights

def test_shipped_weights_load_and_round_trip(tmp_path):
    w = PcgSegmenterWeights.load()
    assert w.meta.get("corpus") == "circor2022" and w.meta.get("split") == "train"
    assert w.layers[-1][0].shape[0] == 4
    p = w.save(tmp_path / "w.json")
    w2 = PcgSegmenterWeights.load(p)
    np.testing.assert_array_equal(w2.layers[0][0], w.layers[0][0])
    assert w2.durations == w.durations and w2.emission_scale == w.emission_scale


def test_bad_weights_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="nothere.json: weights file not found"):
        PcgSegmenterWeights.load(tmp_path / "nothere.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="bad.json: not biosig PCG segmenter weights"):
        PcgSegmenterWeights.load(bad)


def test_weights_ship_with_the_package(repo_root):
    import subprocess
    tracked = subprocess.run(["git", "-C", str(repo_root), "ls-files", "biosig/pcg/weights"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "biosig/pcg/weights/springer2016_circor2022.json" in tracked
    text = (repo_root / "pyproject.toml").read_text(encoding="utf-8")
    assert '"biosig.pcg" = ["weights/*.json"]' in text


# ----------------------------------------------------------------------------- training

def test_train_on_the_slice_manifest(repo_root, data_root):
    """Springer's logistic regression trained on 9 of the slice's recordings segments the 4
    others (the slice manifest resolves paths through the data root)."""
    from biosig.pcg import circor_segmentation_examples, train_pcg_segmenter
    examples = list(circor_segmentation_examples(repo_root / "data_manifests/circor2022.jsonl",
                                                 split=None))
    assert len(examples) == 13 and examples[0][1] == 4000.0
    train, held_out = examples[:9], examples[9:]
    w = train_pcg_segmenter([e[:3] for e in train], hidden=(), context=(-2, 0, 2))
    assert len(w.layers) == 1 and w.layers[0][0].shape == (4, 12)
    assert 0.08 < w.durations["s1_mean_s"] < 0.16 and w.meta["recordings"] == 9
    ev = evaluate_pcg_segmentation(
        (ref, pcg_segment(x, fs=fs, weights=w)) for x, fs, ref, _ in held_out)
    assert ev.s1.f1 > 0.7 and ev.s2.f1 > 0.7, str(ev)     # 0.92 / 0.78 when written
    with pytest.raises(ValueError, match="on_error"):
        next(circor_segmentation_examples(repo_root / "data_manifests/circor2022.jsonl",
                                          on_error="ignore"))


# ----------------------------------------------------------------------------- real data, CLI

def test_real_recording_against_its_reference(data_root):
    import biosig
    sig = biosig.load(data_root / CIRCOR / "49823_PV.wav")
    ref = read_circor_segmentation(data_root / CIRCOR / "49823_PV.tsv")
    seg = pcg_segment(sig)
    ev = compare_heart_sounds(ref, seg)
    assert ev.s1.f1 >= 0.8 and ev.s2.f1 >= 0.8, str(ev)


def test_cli_writes_circor_layout(data_root, tmp_path):
    from biosig.cli import main
    wav = data_root / CIRCOR / "49823_PV.wav"
    out = tmp_path / "out"
    assert main(["segment", "pcg", str(wav), "--out", str(out), "--no-progress"]) == 0
    tsv = out / "49823_PV.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines]
    assert all(len(r) == 3 for r in rows)
    starts = np.array([float(r[0]) for r in rows])
    ends = np.array([float(r[1]) for r in rows])
    states = [r[2] for r in rows]
    assert set(states) <= {"0", "1", "2", "3", "4"} and {"1", "2", "3", "4"} <= set(states)
    assert starts[0] == 0 and np.all(starts[1:] == ends[:-1]) and np.all(ends > starts)
    import biosig
    assert ends[-1] == pytest.approx(biosig.info(wav).duration_s, abs=1e-3)
    # it reads back with the CirCor reader, and the same text comes from the library
    ann = read_circor_segmentation(tsv)
    assert len(ann) == sum(s != "0" for s in states)
    seg = pcg_segment(biosig.load(wav))
    assert tsv.read_text(encoding="utf-8") == format_circor_tsv(seg)
    assert "49823_PV" in (out / "segments.csv").read_text(encoding="utf-8")
    # and `biosig evaluate pcg` scores it against the reference folder
    report = tmp_path / "eval.json"
    assert main(["evaluate", "pcg", str(wav.parent), str(out), "--out", str(report)]) == 0
    d = json.loads(report.read_text(encoding="utf-8"))
    ref = read_circor_segmentation(wav.with_suffix(".tsv"))
    assert d["pooled"] == compare_heart_sounds(ref, seg).to_dict()
    assert list(d["records"]) == ["49823_PV"]


def test_cli_batch_goes_on_after_bad_files(data_root, tmp_path, capsys):
    import soundfile as sf

    from biosig.cli import main
    good = data_root / CIRCOR / "49823_PV.wav"
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(size=4000) * 0.1, 4000)
    lowfs = tmp_path / "lowfs.wav"
    sf.write(lowfs, np.random.default_rng(0).normal(size=4000) * 0.1, 500)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    missing = tmp_path / "missing.wav"
    out = tmp_path / "out"
    argv = ["segment", "pcg", str(good), str(short), str(lowfs), str(corrupt), str(missing),
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert (out / "49823_PV.tsv").is_file()
    import csv
    with open(out / "errors.csv", encoding="utf-8", newline="") as f:
        reasons = {r["record"]: r["reason"] for r in csv.DictReader(f)}
    assert set(reasons) == {"short", "lowfs", "corrupt", "missing"}
    assert "short.wav" in reasons["short"] and "expected at least 2 s" in reasons["short"]
    assert "lowfs.wav" in reasons["lowfs"] and "1000" in reasons["lowfs"]
    assert "corrupt.wav" in reasons["corrupt"] and "missing.wav" in reasons["missing"]
    assert all("\n" not in r for r in reasons.values())
    # a rerun resumes: nothing left to do
    capsys.readouterr()
    assert main(argv) == 0
    assert "4 failed" not in capsys.readouterr().out


@pytest.mark.parametrize("name, make, match", [
    ("short.wav", lambda p: _wav(p, 4000, 4000),
     r"short\.wav: 1\.00 s long, expected at least 2 s"),
    ("lowfs.wav", lambda p: _wav(p, 4000, 500), r"lowfs\.wav: .*1000"),
    ("corrupt.wav", lambda p: p.write_bytes(b"RIFF\0\0\0\0WAVEjunk"), r"corrupt\.wav: "),
    ("missing.wav", lambda p: None, r"missing\.wav: "),
    ("nan.wav", lambda p: _wav(p, 12000, 4000, nan=True), r"nan\.wav: "),
])
def test_segment_record_raises_input_error_naming_the_file(tmp_path, name, make, match):
    from biosig.batch import BatchItem
    from biosig.pcg import segment_record
    path = tmp_path / name
    make(path)
    with pytest.raises(InputError, match=match) as info:
        segment_record(BatchItem(path.stem, str(path), 0), str(tmp_path / "out"))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out" / f"{path.stem}.tsv").exists()


def _wav(path, n, fs, nan=False):
    import soundfile as sf
    x = np.random.default_rng(0).normal(size=n) * 0.1
    if nan:
        x[100] = np.nan
    sf.write(path, x.astype(np.float32), fs, subtype="FLOAT" if nan else "PCM_16")


def test_cli_single_bad_file_is_a_one_line_error(tmp_path, capsys):
    from biosig.cli import main
    rc = main(["segment", "pcg", str(tmp_path / "nothere.wav"), "--out", str(tmp_path / "o"),
               "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("biosig: error: ") and "nothere.wav" in err[0]


def test_states_to_intervals():
    iv = states_to_intervals(np.array([0, 0, 1, 1, 1, 2, 0]), fs=2.0)
    np.testing.assert_allclose(iv, [[0, 1, 0], [1, 2.5, 1], [2.5, 3, 2], [3, 3.5, 0]])


# ----------------------------------------------------------------------------- cycle features

def test_cycle_features_see_a_systolic_murmur():
    quiet, ref = _synthetic(70.0, seed=3)
    loud = synth_pcg(20.0, fs=4000.0, heart_rate_bpm=70.0, murmur=True, seed=3)
    fq = pcg_cycle_features(quiet.data[0], ref, fs=quiet.fs)
    fl = pcg_cycle_features(loud.data[0], ref, fs=loud.fs)
    n_cycles = int(np.sum(ref[:, 2] == 4))
    assert fq.values.shape == (n_cycles, 4 + 2 * 4) and len(fq.names) == fq.values.shape[1]
    assert fq.summary()["s1_s"] == pytest.approx(0.1)
    k = fq.names.index("systole_100_200hz_db")
    assert fl.summary()[fq.names[k]] > fq.summary()[fq.names[k]] + 10
    # diastole is untouched by a systolic murmur
    d = fq.names.index("diastole_100_200hz_db")
    assert abs(fl.values[:, d].mean() - fq.values[:, d].mean()) < 3
    with pytest.raises(ValueError, match="bands_hz"):
        pcg_cycle_features(quiet.data[0], ref, fs=quiet.fs, bands_hz=[(100, 3000)])


def test_pcg_preset_heart_cycles_see_a_systolic_murmur():
    """``heart_cycles``: the preset segments the recording itself (the shipped segmenter) and
    summarises the phase features; a loud systolic murmur raises the systolic band energy."""
    import biosig.features as bf
    quiet = synth_pcg(20.0, fs=4000.0, heart_rate_bpm=70.0, murmur=False, seed=3)
    loud = synth_pcg(20.0, fs=4000.0, heart_rate_bpm=70.0, murmur=True, seed=3)
    rq = bf.extract_features(quiet, modality="pcg", heart_cycles=True)
    rl = bf.extract_features(loud, modality="pcg", heart_cycles=True)
    assert 18 <= rq["hc_n_cycles"] <= 24                  # 70 bpm for 20 s
    key = "hc_systole_100_200hz_db_median"
    assert rl[key] > rq[key] + 10 and rl["hc_systole_100_200hz_db_p75"] >= rl[key]
    assert not any(k.startswith("hc_") for k in bf.extract_features(quiet, modality="pcg"))
    # too short to segment: no cycle, NaN summaries, no error
    short = bf.extract_features(quiet.data[0, :2000], modality="pcg", fs=4000.0,
                                heart_cycles=True)
    assert short["hc_n_cycles"] == 0 and np.isnan(short[key])
