"""The validation report of a trained run (``biosig report RUN_DIR``): ``RUN_DIR/report/report.md``
with the PNGs it shows (and ``report.html`` on request), after TRIPOD+AI (Collins et al., BMJ 385
(2024) e078378): the data, the headline metric with its 95 % CI, per-class Se/Sp/PPV/NPV/F1,
confusion matrix, ROC and PR curves, calibration before and after a correction fitted on the
validation split, performance in every subgroup the manifest records, operating points at the
test prevalence and at a clinic's, and the test data's distance from the training data.

It reads what the run folder holds: ``report.json`` (or ``cv_report.json``), the resolved
``config.yaml``, ``test_predictions.csv`` (a K-fold run's pooled ``cv_test_predictions.csv``),
``valid_predictions.csv``, ``calibration.json`` and ``drift_reference.npz`` (written at the end
of training since this release; for an older run the sections that need them say so), and the
run's manifest for the data and the subgroups. The math is in :mod:`biosig.metrics`,
:mod:`biosig.calibration` and :mod:`biosig.drift`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig import metrics as M
from biosig.calibration import (
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from biosig.errors import ConfigError, InputError
from biosig.fileio import write_text_atomic

__all__ = ["write_report", "ReportResult", "headline_metric", "subgroup_fields"]

#: thresholds of the operating-point tables
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: most distinct values a field may take to be a subgroup variable (more: binned if numeric)
MAX_GROUPS = 12
#: manifest fields that are never subgroups (identifiers, file facts)
_NOT_SUBGROUPS = {"id", "path", "subject", "text", "fs", "num_samples", "duration_s",
                  "channels", "start_s", "end_s", "root", "source_fs", "annotations", "modality",
                  "split", "corpus"}


@dataclass
class ReportResult:
    """Where the report went and which sections could not be written (and why)."""

    markdown: Path
    html: Path | None
    pngs: list[Path]
    missing: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"written: {self.markdown}" + (f", {self.html}" if self.html else "")
                 + f" and {len(self.pngs)} PNG(s)"]
        lines += [f"missing: {k} ({v})" for k, v in self.missing.items()]
        return "\n".join(lines)


def headline_metric(cfg) -> str:
    """The recipe's headline metric: its challenge score when it has one, else the monitored
    validation metric."""
    return {"physionet2022": "weighted_accuracy", "physionet2016": "macc",
            "icbhi2017": "icbhi_score", "cinc2017": "cinc2017_f1"}.get(cfg.eval.challenge,
                                                                        cfg.train.monitor)


def _fmt(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}"


def _ci(d: dict) -> str:
    return f"{_fmt(d.get('estimate'))} ({_fmt(d.get('low'))}–{_fmt(d.get('high'))})"


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------ the run

@dataclass
class _Run:
    dir: Path
    cfg: object
    report: dict
    metrics: dict
    kfold: int
    test_csv: Path
    valid_csv: Path | None
    calibration: dict | None
    drift_path: Path | None


def _load_run(run_dir: Path) -> _Run:
    from biosig.fileio import load_yaml
    from biosig.train.config import upgrade_run_config, validate_config
    from biosig.train.drift import REFERENCE_FILE
    from biosig.train.evaluation import CALIBRATION_FILE
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file() and (run_dir / "fold-0" / "config.yaml").is_file():
        cfg_path = run_dir / "fold-0" / "config.yaml"         # a K-fold run: the folds share it
    if not cfg_path.is_file():
        raise InputError(cfg_path, "not found: RUN_DIR must be a run folder of biosig train")
    cfg = validate_config(upgrade_run_config(load_yaml(cfg_path.read_text(encoding="utf-8"))),
                          source=str(cfg_path))
    if (run_dir / "cv_report.json").is_file():
        rep = json.loads((run_dir / "cv_report.json").read_text(encoding="utf-8"))
        metrics, kfold = rep["pooled"]["metrics"], int(rep["folds"])
        test_csv, valid_csv = run_dir / "cv_test_predictions.csv", \
            run_dir / "cv_valid_predictions.csv"
    elif (run_dir / "report.json").is_file():
        rep = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        metrics, kfold = rep["metrics"], 0
        test_csv = run_dir / f"{rep.get('evaluated_split', 'test')}_predictions.csv"
        valid_csv = run_dir / "valid_predictions.csv"
    else:
        raise InputError(run_dir, "holds neither report.json nor cv_report.json (training "
                                  "not finished?)")
    if not test_csv.is_file():
        raise InputError(test_csv, "not found: the run's test predictions are needed")
    cal = run_dir / CALIBRATION_FILE
    drift = run_dir / REFERENCE_FILE
    return _Run(run_dir, cfg, rep, metrics, kfold, test_csv,
                valid_csv if valid_csv.is_file() else None,
                json.loads(cal.read_text(encoding="utf-8")) if cal.is_file() else None,
                drift if drift.is_file() else None)


# --------------------------------------------------------------------------- subgroups

def _item_key(cfg, rec) -> str:
    """The id a record's prediction row carries (its group under ``eval.aggregate_by``)."""
    key = cfg.eval.aggregate_by
    if key is None:
        return rec.id
    from biosig.manifests import field_value
    v = field_value(rec, key)
    return f"{v}" if v is not None else f"id:{rec.id}"


def _candidate_keys(records) -> list[str]:
    keys: list[str] = []
    for rec in records:
        d = rec.to_dict()
        for k, v in d.items():
            if k in ("labels", "meta") and isinstance(v, dict):
                keys += [f"{k}.{s}" for s, x in v.items()
                         if isinstance(x, (str, bool, int, float)) and f"{k}.{s}" not in keys]
            elif k not in _NOT_SUBGROUPS and k not in keys and isinstance(v, (str, bool)):
                keys.append(k)
    return keys


def _binned(values: list) -> tuple[list, str]:
    """Numeric values in quartile bins (labels ``[lo, hi)``), or as they are."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(set(nums)) <= MAX_GROUPS or len(nums) < len([v for v in values if v is not None]):
        return values, ""
    edges = np.unique(np.quantile(nums, [0, 0.25, 0.5, 0.75, 1.0]))
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        i = min(int(np.searchsorted(edges, v, side="right")) - 1, len(edges) - 2)
        out.append(f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == len(edges) - 2 else ')'}")
    return out, " (quartile bins)"


def subgroup_fields(cfg, records, item_ids: list[str]) -> dict[str, tuple[list, str]]:
    """Every categorical (or binned numeric) manifest field of the scored items.

    Parameters
    ----------
    cfg : TrainConfig
    records : list of Record
        The run's manifest records (after its filter).
    item_ids : list of str
        The prediction rows' ids (record ids, or ``eval.aggregate_by`` groups).

    Returns
    -------
    dict of str to (list, str)
        Field -> (value of each item, None where unknown or mixed within a group; a note).
        Fields with fewer than 2 or more than :data:`MAX_GROUPS` values, the training label,
        and fields that split the items exactly as an earlier field does are left out (the
        note of the earlier one names them).
    """
    from biosig.manifests import field_value
    by_item: dict[str, list] = {}
    for rec in records:
        by_item.setdefault(_item_key(cfg, rec), []).append(rec)
    recs = [by_item.get(i, []) for i in item_ids]
    out: dict[str, tuple[list, str]] = {}
    seen: dict[tuple, str] = {}
    for key in _candidate_keys([r for rs in recs for r in rs]):
        if key in (f"labels.{cfg.data.label}", cfg.eval.aggregate_by, cfg.data.group_by) \
                or key in cfg.data.filter:
            continue
        values = []
        for rs in recs:
            vs = {json.dumps(field_value(r, key)) for r in rs}
            values.append(json.loads(vs.pop()) if len(vs) == 1 else None)
        values, note = _binned(values)
        distinct = {str(v) for v in values if v is not None}
        if not 2 <= len(distinct) <= MAX_GROUPS:
            continue
        codes: dict[str, int] = {}
        sig = tuple(codes.setdefault(str(v), len(codes)) if v is not None else -1
                    for v in values)
        if sig in seen:
            first = seen[sig]
            out[first] = (out[first][0], out[first][1] + f"; same groups as {key}")
            continue
        seen[sig] = key
        mixed = sum(v is None for v in values)
        out[key] = (values, note + (f"; {mixed} item(s) without a single value" if mixed
                                    else ""))
    return out


# ----------------------------------------------------------------------------- writing

def write_report(run_dir, *, prevalence: float | None = None, min_sensitivity: float = 0.95,
                 html: bool = False, n_bins: int = 10, progress: bool = True) -> ReportResult:
    """Write ``RUN_DIR/report/report.md`` (and its PNGs; ``report.html`` with ``html``).

    Parameters
    ----------
    run_dir : str or PathLike
        A run folder of ``biosig train`` (a K-fold run: its pooled out-of-fold predictions).
    prevalence : float in (0, 1), optional
        Also give PPV and NPV at this prevalence (the clinic's), besides the test data's.
    min_sensitivity : float in (0, 1]
        The sensitivity the operating threshold must reach (chosen on the validation
        predictions, checked on the test predictions).
    html : bool
        Also write ``report.html`` (needs the ``markdown`` package).
    n_bins : int
        Bins of the reliability diagram and the ECE.
    progress : bool
        Progress of the subgroup bootstraps on stderr.

    Returns
    -------
    ReportResult
    """
    if prevalence is not None and not 0 < prevalence < 1:
        raise ConfigError(f"--prevalence is {prevalence!r}, expected a number in (0, 1)")
    if not 0 < min_sensitivity <= 1:
        raise ConfigError(f"--min-sensitivity is {min_sensitivity!r}, expected a number in "
                          f"(0, 1]")
    if html:
        try:
            import markdown as _markdown  # noqa: F401
        except ImportError:
            raise ConfigError("--html needs the 'markdown' package (pip install markdown)"
                              ) from None
    from biosig.train.evaluation import (
        apply_calibration,
        compute_metrics,
        positive_class,
        read_predictions,
    )
    run = _load_run(Path(run_dir))
    cfg = run.cfg
    classes = list(cfg.data.classes)
    k = len(classes)
    dest = run.dir / "report"
    dest.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    missing: dict[str, str] = {}
    probs, targets, ids = read_predictions(run.test_csv, classes)
    vprobs = vtargets = None
    if run.valid_csv is not None:
        vprobs, vtargets, _ = read_predictions(run.valid_csv, classes)
    pos = positive_class(cfg)
    metric = headline_metric(cfg)
    fns = _metric_fns(cfg)
    what = (f"pooled out-of-fold predictions of {run.kfold} folds (each item tested once by "
            f"the fold model that did not train on it)" if run.kfold else
            f"the {run.report.get('evaluated_split', 'test')} split")
    md: list[str] = [f"# Validation report: {cfg.recipe}", "",
                     f"Run `{run.dir}`; evaluated on {what}: {len(targets)} items scored "
                     f"by {cfg.eval.aggregate_by or 'record'}. Written by `biosig report` "
                     f"(git {run.report.get('git') or _fold_git(run)}); 95 % percentile "
                     f"bootstrap CIs ({cfg.eval.n_bootstrap} resamples of the items).", ""]

    # ---- data
    md += ["## Data", ""]
    records, examples, split_of = _data_section(run, md, missing)

    # ---- headline and per-class
    ci = run.metrics.get("ci", {})
    md += ["## Performance", "",
           f"Headline metric **{metric}**: **{_ci(ci.get(metric, {}))}**" if metric in ci
           else f"Headline metric {metric}: {_fmt(run.metrics.get(metric))}", ""]
    md += [_table(["metric", "estimate (95 % CI)"],
                  [[n, _ci(v)] for n, v in ci.items()]), ""]
    pc = compute_metrics(targets, probs, cfg)
    md += ["Per class (one vs rest, arg-max decision):", "",
           _table(["class", "n", "Se", "Sp", "PPV", "NPV", "F1"],
                  [[c, d["support"], _fmt(d["sensitivity"]), _fmt(d["specificity"]),
                    _fmt(d["ppv"]), _fmt(d["npv"]), _fmt(d["f1"])]
                   for c, d in pc["per_class"].items()]), ""]
    from biosig.train.plots import plot_confusion, plot_pr, plot_roc
    for name, fn in (("confusion_matrix.png",
                      lambda p: plot_confusion(pc["confusion"], classes, p)),
                     ("roc.png", lambda p: plot_roc(targets, probs, classes, p, positive=pos)),
                     ("pr.png", lambda p: plot_pr(targets, probs, classes, p, positive=pos))):
        fn(dest / name)
        pngs.append(dest / name)
    md += ["![confusion matrix](confusion_matrix.png) ![ROC](roc.png) ![PR](pr.png)", ""]

    # ---- calibration
    md += ["## Calibration", ""]
    _calibration_section(run, md, pngs, missing, probs, targets, vprobs, vtargets, pos, k,
                         n_bins, apply_calibration)

    # ---- subgroups
    md += ["## Subgroups", ""]
    _subgroup_section(run, md, pngs, missing, records, ids, probs, targets, metric, fns,
                      progress)

    # ---- operating points
    md += ["## Operating points", ""]
    _operating_section(run, md, probs, targets, vprobs, vtargets, pos, classes, prevalence,
                       min_sensitivity)

    # ---- drift
    md += ["## Distance from the training data", ""]
    _drift_section(run, md, pngs, missing, ids)

    if missing:
        md += ["## Missing sections", ""]
        md += [f"- **{k_}**: {v}" for k_, v in missing.items()] + [""]
    text = "\n".join(md).rstrip() + "\n"
    out_md = write_text_atomic(dest / "report.md", text)
    out_html = None
    if html:
        import markdown
        body = markdown.markdown(text, extensions=["tables"])
        out_html = write_text_atomic(
            dest / "report.html",
            "<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{cfg.recipe} validation report</title><style>body{{font-family:sans-serif;"
            "max-width:60em;margin:auto}}table{{border-collapse:collapse}}td,th{{border:1px "
            "solid #ccc;padding:2px 6px}}img{{max-width:32em}}</style></head><body>"
            f"{body}</body></html>\n")
    return ReportResult(Path(out_md), Path(out_html) if out_html else None, pngs, missing)


def _fold_git(run: _Run) -> str:
    for f in sorted(run.dir.glob("fold-*/report.json")):
        return json.loads(f.read_text(encoding="utf-8")).get("git") or "unknown"
    return "unknown"


def _metric_fns(cfg) -> dict:
    from biosig.train.evaluation import metric_functions
    return metric_functions(cfg)


def _data_section(run: _Run, md: list[str], missing: dict):
    """Counts per split (or fold) and class, and groups (patients); the records for the
    subgroups (None when the manifest cannot be read)."""
    cfg = run.cfg
    from biosig.errors import ManifestError
    from biosig.train.data import assign_example_splits, kfold_assign, load_examples
    try:
        examples, counts = load_examples(cfg.data)
    except (ManifestError, ConfigError, OSError) as exc:
        missing["data, subgroups"] = f"the run's manifest {cfg.data.manifest} cannot be read " \
                                     f"here ({exc})"
        md += [f"Manifest `{cfg.data.manifest}` not readable here: counts from the "
               f"predictions only ({len(run.metrics.get('confusion', []))} classes).", ""]
        return None, None, None
    fold = re.fullmatch(r"fold-(\d+)", run.dir.name)
    if run.kfold:
        folds = kfold_assign(examples, folds=run.kfold, seed=cfg.data.split_seed)
        split_of = [f"fold {f}" for f in folds]
    elif cfg.cv.folds and fold:          # one fold of a K-fold run: its own three splits
        k, n = int(fold.group(1)), cfg.cv.folds
        folds = kfold_assign(examples, folds=n, seed=cfg.data.split_seed)
        split_of = ["test" if f == k else "valid" if f == (k + 1) % n else "train"
                    for f in folds]
        md += [f"One fold ({k}) of a {n}-fold run: it tests on fold {k}, validates on fold "
               f"{(k + 1) % n} and trains on the rest.", ""]
    else:
        if cfg.data.splits == "auto":
            examples = assign_example_splits(examples, seed=cfg.data.split_seed,
                                             valid_frac=cfg.data.valid_frac,
                                             test_frac=cfg.data.test_frac)
        split_of = [e.split or "none" for e in examples]
    classes = list(cfg.data.classes)
    corpora = Counter(e.record.corpus or "?" for e in examples)
    md += [f"Corpus {', '.join(f'`{c}`' for c in corpora)}; manifest `{cfg.data.manifest}`: "
           f"{counts['read']} lines read, {counts['filtered_out']} filtered out "
           f"(`data.filter` {dict(cfg.data.filter) or 'none'}), {counts['without_class']} "
           f"without a class of `{cfg.data.label}`, {counts['kept']} kept. Groups (patients): "
           f"`{cfg.data.group_by}` (records without one are their own group).", ""]
    rows = []
    for s in sorted(set(split_of), key=lambda x: ({"train": 0, "valid": 1, "test": 2}
                                                  .get(x, 3), x)):
        ex = [e for e, sp in zip(examples, split_of) if sp == s]
        n_c = Counter(e.target for e in ex)
        rows.append([s, len(ex), *[n_c.get(i, 0) for i in range(len(classes))],
                     len({e.group for e in ex})])
    md += [_table(["split" if not run.kfold else "fold", "items", *classes, "groups"], rows),
           ""]
    if run.kfold:
        md += [f"{run.kfold}-fold cross-validation: fold k tests on fold k, validates on fold "
               f"k+1 and trains on the rest.", ""]
    return [e.record for e in examples], examples, split_of


def _calibration_section(run, md, pngs, missing, probs, targets, vprobs, vtargets, pos, k,
                         n_bins, apply_calibration) -> None:
    from biosig.train.evaluation import fit_calibration
    from biosig.train.plots import plot_reliability
    dest = run.dir / "report"
    which = pos                     # None (multi-class): the top-label confidence
    label = (f"probability of {run.cfg.data.classes[which]}" if which is not None
             else "top-label confidence (max probability; event: the arg-max is right)")
    cal = run.calibration
    if cal is None and vprobs is not None:
        cal = fit_calibration(vtargets, vprobs)
    variants = {"as trained": probs}
    if cal is not None:
        variants[f"temperature (T = {cal['temperature']:.2f})"] = apply_calibration(
            probs, cal, method="temperature")
        variants["isotonic"] = apply_calibration(probs, cal, method="isotonic")
    else:
        missing["calibration fit"] = ("no validation predictions in the run (trained before "
                                      "valid_predictions.csv was kept): only the test "
                                      "data's calibration as trained is shown")
    rows = []
    for name, p in variants.items():
        row = [name, _fmt(expected_calibration_error(targets, p, n_bins=n_bins,
                                                     positive=which)),
               _fmt(brier_score(targets, p, positive=which)),
               _fmt(brier_score(targets, p, positive=None))]
        if which is None:
            row.append(", ".join(_fmt(expected_calibration_error(targets, p, n_bins=n_bins,
                                                                 positive=c), 3)
                                 for c in range(k)))
        rows.append(row)
    header = ["probabilities", f"ECE ({n_bins} bins, {label.split(' (')[0]})",
              "Brier" + (f" ({run.cfg.data.classes[which]})" if which is not None
                         else " (top label)"), "Brier (all classes)"]
    if which is None:
        header.append("ECE per class (one vs rest: " + ", ".join(run.cfg.data.classes) + ")")
    fitted = (f"fitted on {cal.get('fitted_on', 'valid')} ({cal.get('n_items', '?')} items)"
              if cal is not None else "")
    md += [f"Reliability of the {label} on the test items, as trained and after the "
           f"corrections {fitted}; the run keeps them in `calibration.json` and "
           f"`biosig score model --calibrate` applies the temperature (the `method` there).",
           "", _table(header, rows), ""]
    curves = {n: reliability_bins(targets, p, n_bins=n_bins, positive=which)
              for n, p in variants.items()}
    plot_reliability(curves, dest / "reliability.png", xlabel=label.split(" (")[0])
    pngs.append(dest / "reliability.png")
    md += ["![reliability diagram](reliability.png)", ""]


def _subgroup_section(run, md, pngs, missing, records, ids, probs, targets, metric, fns,
                      progress) -> None:
    from biosig.progress import Progress
    from biosig.train.plots import plot_subgroups
    if records is None:
        return
    fields = subgroup_fields(run.cfg, records, ids)
    if not fields:
        missing["subgroups"] = ("the manifest records no categorical field with 2 to "
                                f"{MAX_GROUPS} values for the scored items")
        return
    fn, acc = fns[metric], fns["accuracy"]
    se_all = M.classification_report(targets, np.argmax(probs, axis=1),
                                     n_classes=len(run.cfg.data.classes)).sensitivity
    overall = float(fn(targets, probs))
    overall_acc = float(acc(targets, probs))
    cfg = run.cfg
    md += [f"Each manifest field with 2 to {MAX_GROUPS} values among the test items (numeric "
           f"fields in quartile bins): {metric} and accuracy with 95 % CIs. **below** marks a "
           f"subgroup whose interval lies entirely below the overall estimate ({metric} "
           f"{_fmt(overall)}, accuracy {_fmt(overall_acc)}; a subgroup of one class has no "
           f"{metric}: its accuracy is that class's sensitivity, compared with the class's "
           f"sensitivity over all test items).", ""]
    plot_rows = []
    bar = Progress(len(fields), desc="subgroups", unit="field", enabled=progress)
    for key, (values, note) in fields.items():
        # a subgroup of one class (e.g. the positives of an "asymptomatic" field) has no
        # headline metric worth the name: its accuracy is that class's sensitivity
        one_class = {str(v) for v in set(map(str, (v for v in values if v is not None)))
                     if len(set(targets[[str(x) == v for x in values]])) == 1}
        res = {r.value: r for r in M.subgroup_metrics(
            fn, [None if v is None or str(v) in one_class else v for v in values], targets,
            probs, overall=overall, n_bootstrap=cfg.eval.n_bootstrap, seed=cfg.seed)}
        res_acc = M.subgroup_metrics(acc, values, targets, probs, overall=overall_acc,
                                     n_bootstrap=cfg.eval.n_bootstrap, seed=cfg.seed)
        rows = []
        for ra in res_acc:
            r = res.get(ra.value)
            sub = targets[[str(v) == ra.value for v in values]]
            n_cls = ", ".join(f"{cfg.data.classes[c]} {int(np.sum(sub == c))}"
                              for c in range(len(cfg.data.classes)))
            acc_text = _ci(ra.ci.to_dict())
            if r is not None:
                below, head = r.below, _ci(r.ci.to_dict())
            else:                  # one class c: its sensitivity against c's overall one
                c = int(sub[0])
                below = bool(math.isfinite(ra.ci.high) and ra.ci.high < se_all[c])
                head = "n/a (one class)"
                acc_text += f" = Se of {cfg.data.classes[c]} (all: {_fmt(se_all[c])})"
            rows.append([ra.value, ra.n, n_cls, head, acc_text, "**below**" if below else ""])
            plot_rows.append((f"{key}={ra.value}", ra.ci.estimate, ra.ci.low, ra.ci.high, ra.n,
                              *((r.ci.estimate, r.ci.low, r.ci.high) if r is not None
                                else (np.nan,) * 3), below))
        md += [f"**{key}**{note}", "",
               _table([key, "n", "per class", metric, "accuracy", ""], rows), ""]
        bar.update(1)
    bar.close()
    if plot_rows:
        # the headline where most subgroups have one, else accuracy (defined in every one)
        head = sum(math.isfinite(r[5]) for r in plot_rows) * 2 >= len(plot_rows)
        plot_subgroups([(r[0], *(r[5:8] if head else r[1:4]), r[4], r[8]) for r in plot_rows],
                       overall if head else overall_acc,
                       run.dir / "report" / "subgroups.png",
                       metric=metric if head else "accuracy")
        pngs.append(run.dir / "report" / "subgroups.png")
        md += ["![subgroups](subgroups.png)", ""]


def _operating_section(run, md, probs, targets, vprobs, vtargets, pos, classes, prevalence,
                       min_sensitivity) -> None:
    which = [pos] if pos is not None else list(range(len(classes)))
    md += ["The rule *probability of the class >= threshold* (one vs rest). PPV and NPV at the "
           "test data's prevalence" + (f" and at the prevalence given ({prevalence:g})"
                                       if prevalence is not None else
                                       " (`--prevalence P` adds a clinic's)") + ".", ""]
    for c in which:
        y = (targets == c).astype(int)
        if y.min() == y.max():
            md += [f"{classes[c]}: one class only among the test items; no table.", ""]
            continue
        src = "validation" if vprobs is not None else "test (no validation predictions: " \
                                                       "optimistic)"
        vy, vs = ((vtargets == c).astype(int), vprobs[:, c]) if vprobs is not None \
            else (y, probs[:, c])
        thr = M.threshold_for_sensitivity(vy, vs, min_sensitivity) if vy.any() else math.nan
        ts = list(THRESHOLDS) + ([thr] if math.isfinite(thr) else [])
        op = M.operating_points(y, probs[:, c], ts, prevalence=prevalence)
        header = ["threshold", "Se", "Sp", "PPV", "NPV"]
        if prevalence is not None:
            header += [f"PPV at {prevalence:g}", f"NPV at {prevalence:g}"]
        rows = []
        for i, t in enumerate(op.thresholds):
            name = f"**{t:.3f}** (Se >= {min_sensitivity:g} on {src.split(' ')[0]})" \
                if i == len(THRESHOLDS) else f"{t:.1f}"
            row = [name, _fmt(op.sensitivity[i]), _fmt(op.specificity[i]), _fmt(op.ppv[i]),
                   _fmt(op.npv[i])]
            if prevalence is not None:
                row += [_fmt(op.ppv_at[i]), _fmt(op.npv_at[i])]
            rows.append(row)
        md += [f"**{classes[c]}** (test prevalence {op.prevalence:.3f}; the threshold for "
               f"Se >= {min_sensitivity:g} chosen on the {src} predictions and applied to "
               f"the test items):", "", _table(header, rows), ""]


def _drift_section(run, md, pngs, missing, ids) -> None:
    if run.drift_path is None:
        missing["distance from the training data"] = (
            "no drift_reference.npz in the run (trained before runs kept one); "
            "`biosig score model` cannot flag shifted records for it either")
        return
    from biosig.train.drift import load_reference
    from biosig.train.plots import plot_drift
    ref = load_reference(run.drift_path)
    q = [5, 50, 95]
    rows = [[name, *[_fmt(float(np.percentile(v, p)), 1) for p in q]]
            for name, v in (("file sampling rate (Hz)", ref.fs_hz),
                            ("duration (s)", ref.duration_s), ("RMS level (dB)", ref.level_db))]
    md += [f"`biosig score model` scores new recordings against the training data "
           f"(`drift_reference.npz`, {ref.how}): `ood_score` is the Mahalanobis distance of a "
           f"recording's feature statistics (mean and standard deviation of each front-end "
           f"bin) from the training recordings' (Ledoit-Wolf covariance); `ood_flag` is 1 "
           f"above {ref.threshold:.2f}, the {100 * ref.quantile:.0f}th percentile of held-out "
           f"training recordings ({len(ref.valid_scores)}). The training recordings:", "",
           _table(["", "5th pct", "median", "95th pct"], rows), ""]
    scores = {}
    if ref.test_scores is not None and len(ref.test_scores):
        n_flagged = int(np.sum(ref.test_scores > ref.threshold))
        flagged = n_flagged / len(ref.test_scores)
        scores["test recordings"] = ref.test_scores
        md += [f"Test recordings above the threshold: {n_flagged}"
               f" of {len(ref.test_scores)} ({100 * flagged:.1f} %; about "
               f"{100 * (1 - ref.quantile):.0f} % expected when they come from the training "
               f"distribution" + ("; cross-fitted, so this is by construction" if run.kfold
                                  else "") + ").", ""]
    plot_drift(ref.valid_scores, scores, ref.threshold, run.dir / "report" / "drift.png")
    pngs.append(run.dir / "report" / "drift.png")
    md += ["![drift](drift.png)", ""]
