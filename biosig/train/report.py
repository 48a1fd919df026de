"""The validation report of a trained run (``biosig report RUN_DIR``): ``RUN_DIR/report/report.md``
with the PNGs it shows (and ``report.html`` on request), after TRIPOD+AI (Collins et al., BMJ 385
(2024) e078378): the data, the headline metric with its 95 % CI, per-class Se/Sp/PPV/NPV/F1,
confusion matrix, ROC and PR curves, calibration before and after a correction fitted on the
validation split, performance in every subgroup the manifest records, operating points at the
test prevalence and at a clinic's, and the test data's distance from the training data.

It describes the model the run adopted, the one ``biosig score model`` applies: the hybrid
stage where the run adopted it and the decision rule tuned on validation where it has one
(:func:`biosig.train.hybrid.adopted_model`), with the network alone beside it. It reads what
the run folder holds: ``report.json`` (or ``cv_report.json`` and its folds' reports), the
resolved ``config.yaml``, the test and validation predictions of the run's model
(``test_predictions.csv`` and ``valid_predictions.csv``, or ``hybrid_*_predictions.csv`` where
the hybrid was adopted; a K-fold run's folds pooled), ``calibration.json`` and
``drift_reference.npz`` (written at the end of training since this release; for an older run
the sections that need them say so), and the run's manifest for the data and the subgroups.
The math is in :mod:`biosig.metrics`, :mod:`biosig.calibration` and :mod:`biosig.drift`. The
report is a list of blocks (:class:`Heading`, :class:`Paragraph`, :class:`Table`,
:class:`Figures`, :class:`Bullets`) that :func:`render_markdown` and :func:`render_html` both
write.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from biosig import metrics as M
from biosig.calibration import (
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from biosig.errors import ConfigError, InputError, ManifestError
from biosig.fileio import load_yaml, write_text_atomic
from biosig.manifests import field_value
from biosig.progress import Progress
from biosig.train.config import upgrade_run_config, validate_config
from biosig.train.data import (
    SPLITS,
    assign_example_splits,
    carve_select_split,
    kfold_assign,
    load_examples,
)
from biosig.train.drift import REFERENCE_FILE, load_reference
from biosig.train.evaluation import (
    CALIBRATION_FILE,
    apply_calibration,
    compute_metrics,
    fit_calibration,
    metric_functions,
    positive_class,
)
from biosig.train.hybrid import (
    HYBRID_FILE,
    adopted_model,
    candidate_settings_text,
    selection_text,
)
from biosig.train.plots import (
    plot_confusion,
    plot_drift,
    plot_pr,
    plot_reliability,
    plot_roc,
    plot_subgroups,
)

__all__ = ["write_report", "ReportResult", "headline_metric", "subgroup_fields",
           "render_markdown", "render_html", "Heading", "Paragraph", "Table", "Figures",
           "Bullets"]

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


# ------------------------------------------------------------------------- the document
# The report is a list of blocks; render_markdown and render_html write the same blocks.

@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Text with inline ``**bold**``, ``*italic*`` and ```code``` spans."""

    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Figures:
    """PNGs of the report folder shown side by side: ``(caption, file name)``."""

    items: list[tuple[str, str]]


@dataclass
class Bullets:
    items: list[str]


def render_markdown(blocks: list) -> str:
    """The report's blocks as Markdown (GitHub tables; figures as relative image links)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append(_table(b.header, b.rows))
        elif isinstance(b, Figures):
            out.append(" ".join(f"![{alt}]({name})" for alt, name in b.items))
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {x}" for x in b.items))
        else:
            raise TypeError(f"not a report block: {b!r}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_CODE = re.compile(r"`([^`]*)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")


def _inline_html(text) -> str:
    """The inline spans the report writes (code, bold, italic) as HTML; the rest escaped."""
    parts = str(text).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2 and i < len(parts) - 1:           # between a pair of backticks
            out.append(f"<code>{html_lib.escape(part)}</code>")
            continue
        part = html_lib.escape(("`" if i % 2 else "") + part, quote=False)
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        out.append(_ITALIC.sub(r"<em>\1</em>", part))
    return "".join(out)


def render_html(blocks: list, *, folder, title: str) -> str:
    """The report's blocks as one self-contained HTML page: tables as HTML tables, the PNGs of
    ``folder`` embedded as base64 ``data:`` URIs."""
    out = ["<!doctype html>", "<html><head><meta charset=\"utf-8\">",
           f"<title>{html_lib.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:64em;margin:auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
           "padding:2px 6px;text-align:left}figure{display:inline-block;margin:0.5em}"
           "img{max-width:30em}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Table):
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>"
                                                      for h in b.header) + "</tr></thead>")
            out.append("<tbody>" + "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>"
                for r in b.rows) + "</tbody></table>")
        elif isinstance(b, Figures):
            for alt, name in b.items:
                data = base64.b64encode((Path(folder) / name).read_bytes()).decode("ascii")
                out.append(f"<figure><img alt=\"{html_lib.escape(alt)}\" "
                           f"src=\"data:image/png;base64,{data}\"><figcaption>"
                           f"{html_lib.escape(alt)}</figcaption></figure>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in b.items)
                       + "</ul>")
        else:
            raise TypeError(f"not a report block: {b!r}")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ the run

@dataclass
class _Run:
    dir: Path
    cfg: object
    report: dict
    kfold: int
    model: object                  # biosig.train.hybrid.AdoptedModel
    calibration: dict | None
    drift_path: Path | None


def _load_run(run_dir: Path) -> _Run:
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file() and (run_dir / "fold-0" / "config.yaml").is_file():
        cfg_path = run_dir / "fold-0" / "config.yaml"         # a K-fold run: the folds share it
    if not cfg_path.is_file():
        raise InputError(cfg_path, "not found: RUN_DIR must be a run folder of biosig train")
    cfg = validate_config(upgrade_run_config(load_yaml(cfg_path.read_text(encoding="utf-8"))),
                          source=str(cfg_path))
    if (run_dir / "cv_report.json").is_file():
        rep = json.loads((run_dir / "cv_report.json").read_text(encoding="utf-8"))
        kfold = int(rep["folds"])
    elif (run_dir / "report.json").is_file():
        rep = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        kfold = 0
    else:
        raise InputError(run_dir, "holds neither report.json nor cv_report.json (training "
                                  "not finished?)")
    cal = run_dir / CALIBRATION_FILE
    drift = run_dir / REFERENCE_FILE
    return _Run(run_dir, cfg, rep, kfold, adopted_model(run_dir, cfg),
                json.loads(cal.read_text(encoding="utf-8")) if cal.is_file() else None,
                drift if drift.is_file() else None)


# --------------------------------------------------------------------------- subgroups

def _item_key(cfg, rec) -> str:
    """The id a record's prediction row carries (its group under ``eval.aggregate_by``)."""
    key = cfg.eval.aggregate_by
    if key is None:
        return rec.id
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

    The report describes the model the run adopted, the one ``biosig score model`` applies:
    the hybrid stage where the run adopted it (:mod:`biosig.train.hybrid`) and the decision
    rule tuned on validation where it has one, with the network alone beside it.

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
        Also write ``report.html``: the same content on one self-contained page (PNGs
        embedded as base64 ``data:`` URIs).
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
    run = _load_run(Path(run_dir))
    cfg = run.cfg
    classes = list(cfg.data.classes)
    dest = run.dir / "report"
    dest.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    missing: dict[str, str] = {}
    test = run.model.test
    pos = positive_class(cfg)
    metric = headline_metric(cfg)
    fns = _metric_fns(cfg)
    what = (f"pooled out-of-fold predictions of {run.kfold} folds (each item tested once by "
            f"the fold model that did not train on it)" if run.kfold else
            f"the {run.report.get('evaluated_split', 'test')} split")
    doc: list = [Heading(f"Validation report: {cfg.recipe}", 1),
                 Paragraph(f"Run `{run.dir}`; evaluated on {what}: {len(test.targets)} items "
                           f"scored by {cfg.eval.aggregate_by or 'record'}. Written by "
                           f"`biosig report` (git {run.report.get('git') or _fold_git(run)}); "
                           f"95 % percentile bootstrap CIs ({cfg.eval.n_bootstrap} resamples "
                           f"of the items).")]

    # ---- data
    doc.append(Heading("Data"))
    records, examples, split_of = _data_section(run, doc, missing)

    # ---- the model, headline and per-class
    doc.append(Heading("Performance"))
    _model_section(run, doc, metric)
    ci = run.model.metrics.get("ci", {})
    doc.append(Paragraph(f"Headline metric **{metric}**: **{_ci(ci[metric])}**" if metric in ci
                         else f"Headline metric {metric}: "
                              f"{_fmt(run.model.metrics.get(metric))}"))
    doc.append(Table(["metric", "estimate (95 % CI)"], [[n, _ci(v)] for n, v in ci.items()]))
    pc = compute_metrics(test.targets, test.decided, cfg)
    rule = "the tuned decision rule" if run.model.has_rule else "arg-max decision"
    doc.append(Paragraph(f"Per class (one vs rest, {rule}):"))
    doc.append(Table(["class", "n", "Se", "Sp", "PPV", "NPV", "F1"],
                     [[c, d["support"], _fmt(d["sensitivity"]), _fmt(d["specificity"]),
                       _fmt(d["ppv"]), _fmt(d["npv"]), _fmt(d["f1"])]
                      for c, d in pc["per_class"].items()]))
    t, p = test.targets, test.decided
    for name, fn in (("confusion_matrix.png",
                      lambda f: plot_confusion(pc["confusion"], classes, f)),
                     ("roc.png", lambda f: plot_roc(t, p, classes, f, positive=pos)),
                     ("pr.png", lambda f: plot_pr(t, p, classes, f, positive=pos))):
        fn(dest / name)
        pngs.append(dest / name)
    doc.append(Figures([("confusion matrix", "confusion_matrix.png"), ("ROC", "roc.png"),
                        ("PR", "pr.png")]))

    # ---- calibration
    doc.append(Heading("Calibration"))
    _calibration_section(run, doc, pngs, missing, pos, n_bins)

    # ---- subgroups
    doc.append(Heading("Subgroups"))
    _subgroup_section(run, doc, pngs, missing, records, test.ids, test.decided, test.targets,
                      metric, fns, progress)

    # ---- operating points
    doc.append(Heading("Operating points"))
    _operating_section(run, doc, pos, classes, prevalence, min_sensitivity)

    # ---- drift
    doc.append(Heading("Distance from the training data"))
    _drift_section(run, doc, pngs, missing)

    if missing:
        doc += [Heading("Missing sections"),
                Bullets([f"**{k_}**: {v}" for k_, v in missing.items()])]
    out_md = write_text_atomic(dest / "report.md", render_markdown(doc))
    out_html = None
    if html:
        out_html = write_text_atomic(dest / "report.html",
                                     render_html(doc, folder=dest,
                                                 title=f"{cfg.recipe} validation report"))
    return ReportResult(Path(out_md), Path(out_html) if out_html else None, pngs, missing)


def _fold_git(run: _Run) -> str:
    for f in sorted(run.dir.glob("fold-*/report.json")):
        return json.loads(f.read_text(encoding="utf-8")).get("git") or "unknown"
    return "unknown"


def _metric_fns(cfg) -> dict:
    return metric_functions(cfg)


def _stage_text(run: _Run) -> str:
    """What the run's hybrid stage is (from ``hybrid.json`` of the run or its folds)."""
    dirs = [run.dir / f"fold-{k}" for k in range(run.kfold)] if run.kfold else [run.dir]
    what = []
    for d, m in zip(dirs, run.model.models):
        if m != "hybrid" or not (d / HYBRID_FILE).is_file():
            continue
        h = json.loads((d / HYBRID_FILE).read_text(encoding="utf-8"))
        w = h.get("network_weight")
        sel = h.get("selection")
        what.append(f"{'+'.join(h['inputs'])} into {h['classifier']}"
                    + candidate_settings_text(h)
                    + (f", averaged with the network (weight {w:g})" if w is not None else "")
                    + (f", chosen by {selection_text(sel, counts=False)}" if sel else ""))
    return "; ".join(dict.fromkeys(what))


def _rule_set_aside(run: _Run) -> str:
    """A sentence where ``eval.decision_crossfit`` set the tuned rule aside, else ''."""
    cf = (run.report.get("decision") or {}).get("crossfit") or {}
    if cf.get("kept", True):
        return ""
    dec = run.report["decision"]
    if cf.get("mean") is None:
        return (" The decision rule tuned on validation was set aside: validation has too few "
                "items to check it out of sample, so the run decides by arg-max.")
    return (f" The decision rule tuned on validation was set aside: fitted on "
            f"{cf['folds'] - 1} of {cf['folds']} parts of validation and scored on the part "
            f"left out it reached {_fmt(cf['mean'])} (mean of {len(cf['scores'])} shuffles) "
            f"against arg-max's {_fmt(dec['argmax_score'])}, so the run decides by arg-max.")


def _model_section(run: _Run, doc: list, metric: str) -> None:
    """Which model the report describes, and the network alone beside it."""
    m = run.model
    aside = _rule_set_aside(run)
    if m.is_network and m.stage_metrics is None:
        doc.append(Paragraph("The run's model is the network (arg-max of its probabilities), "
                             "as `biosig score model` applies it." + aside))
        return
    classes = list(run.cfg.data.classes)
    parts = []
    if m.name == "hybrid":
        parts.append(f"the hybrid stage ({_stage_text(run)}) over the network's outputs and "
                     "hand-crafted features")
    elif m.name == "per fold":
        parts.append("per fold the model it adopted (" + ", ".join(
            f"fold {k}: {x}" for k, x in enumerate(m.models)) + f"; stage: {_stage_text(run)})")
    else:
        parts.append("the network")
    if m.has_rule:
        rule = ("each fold's decision rule tuned on its validation split" if run.kfold
                else "the decision rule tuned on validation (`decision.json`)")
        ws = [w for w in m.weights if w is not None]
        parts.append(f"{rule}: the class maximising *probability x weight*" + (
            ", weights " + ", ".join(f"{c} {w:g}" for c, w in zip(classes, ws[0]))
            if len(ws) == 1 else ""))
    doc.append(Paragraph("The run's model, as `biosig score model` applies it, is "
                         + " with ".join(parts) + ". Every section below describes it"
                         + (" (pooled out of fold)" if run.kfold else "")
                         + "; calibration and operating points use its probabilities (the "
                         "`p_<class>` columns of `biosig score model`)"
                         + (", before the decision rule" if m.has_rule else "") + "."
                         + aside))
    rows = [["network alone (arg-max)", m.network_metrics]]
    if m.stage_metrics is not None and (m.has_rule or m.name != "hybrid"):
        rows.append(["hybrid stage (arg-max" + (
            "" if "hybrid" in m.models
            else "; not adopted: no better than the network where the run compared them")
            + ")", m.stage_metrics])
    rows.append(["**the run's model**", m.metrics])
    others = [n for n in ("accuracy", "macro_f1", "roc_auc") if n != metric]
    doc.append(Paragraph(f"Test {metric} of the run's model beside the network alone:"))
    doc.append(Table(["model", f"{metric} (95 % CI)", *others],
                     [[name, _ci(r.get("ci", {}).get(metric, {"estimate": r.get(metric)})),
                       *[_fmt(r.get(n)) for n in others]] for name, r in rows]))


def _data_section(run: _Run, doc: list, missing: dict):
    """Counts per split (or fold) and class, and groups (patients); the records for the
    subgroups (None when the manifest cannot be read)."""
    cfg = run.cfg
    try:
        examples, counts = load_examples(cfg.data)
    except (ManifestError, ConfigError, OSError) as exc:
        missing["data, subgroups"] = f"the run's manifest {cfg.data.manifest} cannot be read " \
                                     f"here ({exc})"
        doc.append(Paragraph(f"Manifest `{cfg.data.manifest}` not readable here: counts from "
                             f"the predictions only "
                             f"({len(run.model.metrics.get('confusion', []))} classes)."))
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
        doc.append(Paragraph(f"One fold ({k}) of a {n}-fold run: it tests on fold {k}, "
                             f"validates on fold {(k + 1) % n} and trains on the rest."))
    else:
        if cfg.data.splits == "auto":
            examples = assign_example_splits(examples, seed=cfg.data.split_seed,
                                             valid_frac=cfg.data.valid_frac,
                                             test_frac=cfg.data.test_frac)
        split_of = [e.split or "none" for e in examples]
    if cfg.train.select_frac is not None and not run.kfold:
        carved = carve_select_split([replace(e, split=s)
                                     for e, s in zip(examples, split_of)],
                                    frac=cfg.train.select_frac, seed=cfg.data.split_seed)
        split_of = [e.split for e in carved]
        doc.append(Paragraph(f"The network's best epoch was chosen on `select` "
                             f"(`train.select_frac` {cfg.train.select_frac:g} of train), so "
                             f"valid is out of sample for it."))
    classes = list(cfg.data.classes)
    corpora = Counter(e.record.corpus or "?" for e in examples)
    doc.append(Paragraph(
        f"Corpus {', '.join(f'`{c}`' for c in corpora)}; manifest `{cfg.data.manifest}`: "
        f"{counts['read']} lines read, {counts['filtered_out']} filtered out "
        f"(`data.filter` {dict(cfg.data.filter) or 'none'}), {counts['without_class']} "
        f"without a class of `{cfg.data.label}`, {counts['kept']} kept. Groups (patients): "
        f"`{cfg.data.group_by}` (records without one are their own group)."))
    rows = []
    order = {s: i for i, s in enumerate(SPLITS)}
    for s in sorted(set(split_of), key=lambda x: (order.get(x, len(SPLITS)), x)):
        ex = [e for e, sp in zip(examples, split_of) if sp == s]
        n_c = Counter(e.target for e in ex)
        rows.append([s, len(ex), *[n_c.get(i, 0) for i in range(len(classes))],
                     len({e.group for e in ex})])
    doc.append(Table(["split" if not run.kfold else "fold", "items", *classes, "groups"],
                     rows))
    if run.kfold:
        doc.append(Paragraph(f"{run.kfold}-fold cross-validation: fold k tests on fold k, "
                             f"validates on fold k+1 and trains on the rest."))
    return [e.record for e in examples], examples, split_of


def _calibration_section(run, doc, pngs, missing, pos, n_bins) -> None:
    dest = run.dir / "report"
    probs, targets = run.model.test.probs, run.model.test.targets
    k = probs.shape[1]
    which = pos                     # None (multi-class): the top-label confidence
    label = (f"probability of {run.cfg.data.classes[which]}" if which is not None
             else "top-label confidence (max probability; event: the arg-max is right)")
    cal = run.calibration
    if cal is None and run.model.valid is not None:
        cal = fit_calibration(run.model.valid.targets, run.model.valid.probs)
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
    whose = "" if run.model.is_network else " of the run's model"
    doc += [Paragraph(f"Reliability of the {label}{whose} on the test items, as trained and "
                      f"after the corrections {fitted}; the run keeps them in "
                      f"`calibration.json` and `biosig score model --calibrate` applies the "
                      f"temperature (the `method` there)."),
            Table(header, rows)]
    curves = {n: reliability_bins(targets, p, n_bins=n_bins, positive=which)
              for n, p in variants.items()}
    plot_reliability(curves, dest / "reliability.png", xlabel=label.split(" (")[0])
    pngs.append(dest / "reliability.png")
    doc.append(Figures([("reliability diagram", "reliability.png")]))


def _subgroup_section(run, doc, pngs, missing, records, ids, probs, targets, metric, fns,
                      progress) -> None:
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
    doc.append(Paragraph(
        f"Each manifest field with 2 to {MAX_GROUPS} values among the test items (numeric "
        f"fields in quartile bins): {metric} and accuracy with 95 % CIs. **below** marks a "
        f"subgroup whose interval lies entirely below the overall estimate ({metric} "
        f"{_fmt(overall)}, accuracy {_fmt(overall_acc)}; a subgroup of one class has no "
        f"{metric}: its accuracy is that class's sensitivity, compared with the class's "
        f"sensitivity over all test items)."))
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
        doc += [Paragraph(f"**{key}**{note}"),
                Table([key, "n", "per class", metric, "accuracy", ""], rows)]
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
        doc.append(Figures([("subgroups", "subgroups.png")]))


def _operating_section(run, doc, pos, classes, prevalence, min_sensitivity) -> None:
    probs, targets = run.model.test.probs, run.model.test.targets
    valid = run.model.valid
    which = [pos] if pos is not None else list(range(len(classes)))
    whose = ("the probability of the class" if run.model.is_network
             else "the run's model's probability of the class")
    doc.append(Paragraph(
        f"The rule *{whose} >= threshold* (one vs rest). PPV and NPV at the test data's "
        "prevalence" + (f" and at the prevalence given ({prevalence:g})"
                        if prevalence is not None else
                        " (`--prevalence P` adds a clinic's)") + "."))
    for c in which:
        y = (targets == c).astype(int)
        if y.min() == y.max():
            doc.append(Paragraph(f"{classes[c]}: one class only among the test items; no "
                                 f"table."))
            continue
        src = "validation" if valid is not None else "test (no validation predictions: " \
                                                      "optimistic)"
        vy, vs = ((valid.targets == c).astype(int), valid.probs[:, c]) if valid is not None \
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
        doc += [Paragraph(f"**{classes[c]}** (test prevalence {op.prevalence:.3f}; the "
                          f"threshold for Se >= {min_sensitivity:g} chosen on the {src} "
                          f"predictions and applied to the test items):"),
                Table(header, rows)]


def _drift_section(run, doc, pngs, missing) -> None:
    if run.drift_path is None:
        missing["distance from the training data"] = (
            "no drift_reference.npz in the run (trained before runs kept one); "
            "`biosig score model` cannot flag shifted records for it either")
        return
    ref = load_reference(run.drift_path)
    q = [5, 50, 95]
    rows = [[name, *[_fmt(float(np.percentile(v, p)), 1) for p in q]]
            for name, v in (("file sampling rate (Hz)", ref.fs_hz),
                            ("duration (s)", ref.duration_s), ("RMS level (dB)", ref.level_db))]
    doc += [Paragraph(
        f"`biosig score model` scores new recordings against the training data "
        f"(`drift_reference.npz`, {ref.how}): `ood_score` is the Mahalanobis distance of a "
        f"recording's feature statistics (mean and standard deviation of each front-end "
        f"bin) from the training recordings' (Ledoit-Wolf covariance); `ood_flag` is 1 "
        f"above {ref.threshold:.2f}, the {100 * ref.quantile:.0f}th percentile of held-out "
        f"training recordings ({len(ref.valid_scores)}). The training recordings:"),
        Table(["", "5th pct", "median", "95th pct"], rows)]
    scores = {}
    if ref.test_scores is not None and len(ref.test_scores):
        n_flagged = int(np.sum(ref.test_scores > ref.threshold))
        flagged = n_flagged / len(ref.test_scores)
        scores["test recordings"] = ref.test_scores
        doc.append(Paragraph(
            f"Test recordings above the threshold: {n_flagged} of {len(ref.test_scores)} "
            f"({100 * flagged:.1f} %; about {100 * (1 - ref.quantile):.0f} % expected when "
            f"they come from the training distribution"
            + ("; cross-fitted, so this is by construction" if run.kfold else "") + ")."))
    plot_drift(ref.valid_scores, scores, ref.threshold, run.dir / "report" / "drift.png")
    pngs.append(run.dir / "report" / "drift.png")
    doc.append(Figures([("drift", "drift.png")]))
