"""bench/paired_gain.py on hand-made prediction files with known answers: the same file twice
gives no change, and one item moved to the right class is counted and raises the metric."""

import pytest

from biosig.errors import InputError


def _write(path, rows):
    lines = ["record,p_N,p_A,p_O,p_~,label,predicted"]
    for rec, label, pred in rows:
        p = {c: 0.9 if c == pred else 0.1 / 3 for c in "NAO~"}
        lines.append(f"{rec},{p['N']},{p['A']},{p['O']},{p['~']},{label},{pred}")
    path.write_text("\n".join(lines) + "\n")


def test_paired_gain_known_answers(tmp_path, bench_script, repo_root):
    from biosig.train.config import load_config
    bench = bench_script("paired_gain")
    cfg = load_config(repo_root / "recipes/ecg_af_cinc2017/config.yaml", profile="smoke")
    rows = [(f"r{i}", lab, lab) for i, lab in enumerate("NNNNAAOOO~")] + [("x", "O", "N")]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, rows)
    _write(b, list(reversed(rows[:-1])) + [("x", "O", "O")])     # other order, x put right
    same = bench.paired_gain(a, a, cfg, "cinc2017_f1", n_bootstrap=50)
    assert same["changed"] == 0 and same["difference"]["estimate"] == 0.0
    assert same["difference"]["low"] == same["difference"]["high"] == 0.0
    gain = bench.paired_gain(a, b, cfg, "cinc2017_f1", n_bootstrap=50)
    assert (gain["changed"], gain["to_right"], gain["away"]) == (1, 1, 0)
    assert gain["b"] == 1.0 and gain["difference"]["estimate"] == pytest.approx(1.0 - gain["a"])
    assert gain["difference"]["low"] >= 0.0
    with pytest.raises(InputError, match="--metric"):
        bench.paired_gain(a, b, cfg, "nonsense", n_bootstrap=5)
    _write(b, rows[:-1])                                           # an item missing
    with pytest.raises(InputError, match="same items"):
        bench.paired_gain(a, b, cfg, "cinc2017_f1", n_bootstrap=5)
