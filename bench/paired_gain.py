"""How sure a gain between two runs on the same test items is: the paired bootstrap of the
difference of a metric between two prediction files (same items, same classes).

Both models are scored on each resample of the items (:func:`biosig.metrics.bootstrap_ci`,
paired), with the run's own metric functions (:func:`biosig.train.evaluation.metric_functions`
of RUN_B's config: the challenge score, accuracy, macro F1 ...). Run::

    python bench/paired_gain.py RUN_A/hybrid_test_predictions.csv \
        RUN_B/hybrid_test_predictions.csv --run RUN_B [--metric cinc2017_f1]

prints the metric of A and B, how many items changed their call (to the right class, away from
it), and the difference B - A with its 95 % CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosig.errors import InputError  # noqa: E402
from biosig.fileio import load_yaml  # noqa: E402
from biosig.metrics import bootstrap_ci  # noqa: E402
from biosig.train.config import upgrade_run_config, validate_config  # noqa: E402
from biosig.train.evaluation import metric_functions, read_predictions  # noqa: E402


def paired_gain(pred_a: Path, pred_b: Path, cfg, metric: str, *, n_bootstrap: int = 2000,
                seed: int = 0) -> dict:
    """The figures the script prints, as a dict (see the module's docstring)."""
    fns = metric_functions(cfg)
    if metric not in fns:
        raise InputError(None, f"is {metric!r}, expected one of {sorted(fns)}", what="--metric")
    classes = list(cfg.data.classes)
    pa, ya, ids_a = read_predictions(pred_a, classes)
    pb, yb, ids_b = read_predictions(pred_b, classes)
    order = {k: i for i, k in enumerate(ids_b)}
    if sorted(ids_a) != sorted(ids_b) or any(ya[i] != yb[order[k]] for i, k in enumerate(ids_a)):
        raise InputError(pred_b, f"does not hold the same items and labels as {pred_a}")
    idx = np.array([order[k] for k in ids_a])
    pb, fn = pb[idx], fns[metric]
    ca, cb = pa.argmax(axis=1), pb.argmax(axis=1)
    ci = bootstrap_ci(lambda y, a, b: fn(y, b) - fn(y, a), ya, pa, pb,
                      n_bootstrap=n_bootstrap, seed=seed)
    return {"metric": metric, "n_items": len(ya), "a": fn(ya, pa), "b": fn(ya, pb),
            "changed": int((ca != cb).sum()), "to_right": int(((ca != ya) & (cb == ya)).sum()),
            "away": int(((ca == ya) & (cb != ya)).sum()), "difference": ci.to_dict()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pred_a", type=Path)
    ap.add_argument("pred_b", type=Path)
    ap.add_argument("--run", type=Path, required=True, help="run folder whose config.yaml "
                    "gives the classes and metrics")
    ap.add_argument("--metric", default=None, help="default: the run's train.monitor")
    ap.add_argument("--n-bootstrap", type=int, default=2000)
    a = ap.parse_args(argv)
    cfg_path = a.run / "config.yaml"
    if not cfg_path.is_file():
        ap.error(f"--run: {cfg_path} not found")
    cfg = validate_config(upgrade_run_config(load_yaml(cfg_path.read_text(encoding="utf-8"))),
                          source=str(cfg_path))
    r = paired_gain(a.pred_a, a.pred_b, cfg, a.metric or cfg.train.monitor,
                    n_bootstrap=a.n_bootstrap)
    d = r["difference"]
    print(f"{r['metric']} on {r['n_items']} items: A {r['a']:.4f}, B {r['b']:.4f}; "
          f"{r['changed']} changed their call ({r['to_right']} to the right class, "
          f"{r['away']} away from it)")
    print(f"B - A {d['estimate']:+.4f} (95 % CI {d['low']:+.4f} to {d['high']:+.4f}, "
          f"{d['n_bootstrap']} paired resamples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
