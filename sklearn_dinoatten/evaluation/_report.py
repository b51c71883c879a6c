"""One self-contained HTML report of an evaluation run directory.

The ``cv`` command (cross-validation, or a held-out test set) writes a run directory
(:mod:`sklearn_dinoatten.evaluation`); :func:`write_report` turns it into a single HTML file
with every figure embedded as a PNG, readable offline and easy to share::

    from sklearn_dinoatten.evaluation import write_report

    write_report("runs/adni_cv")  # -> "runs/adni_cv/report.html"
"""

import html
import json
import os
import shlex
from numbers import Integral

import matplotlib
import numpy as np

from ..utils._files import atomic_write
from ._clinical_report import calibration_section, decision_section, subgroup_section
from ._figures import (
    N_BOOTSTRAP,
    confusion_figure,
    embedding_figure,
    profile_figure,
    roc_figure,
)
from ._html import image, metrics_table, note, paragraph
from ._markdown import PER_CLASS_KEYS, header, metric_text, no_spread_note
from ._registry import METRICS, TABLES, table_columns
from ._regression_report import REGRESSION_SECTIONS
from ._report_overlays import method_with, overlay_section, say
from ._runs import read_run

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{margin-bottom:.2em}h2{margin-top:2em;
border-bottom:1px solid #ddd}table{border-collapse:collapse}td,th{padding:.25em .7em;
border-bottom:1px solid #eee;text-align:left}code,pre{background:#f6f6f6;padding:.1em .3em}
img{max-width:100%}.note{color:#666;font-style:italic}figure{display:inline-block;
margin:.5em;vertical-align:top}figcaption{font-size:.9em;color:#444}
.warning{background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold}
pre{white-space:pre-wrap;overflow-wrap:anywhere}td{overflow-wrap:anywhere}
.metrics{font-size:.92em}.metrics td,.metrics th{padding:.3em .6em;vertical-align:top}
.metrics td.n{white-space:nowrap}.ci{color:#555;font-size:.85em}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}
h2,h3,h4{break-after:avoid}tr,figure,img{break-inside:avoid}.metrics{font-size:8.5pt}}"""


def write_report(run_dir, *, out=None, overlays=4, verbose=0):
    """Write the HTML report of an evaluation run directory.

    Parameters
    ----------
    run_dir : str or path
        A directory written by the ``cv`` command.
    out : str or path, default=None
        Where to write the report; ``<run_dir>/report.html`` by default.
    overlays : int, default=4
        How many scans to show with their attention overlaid, among those the reference
        method predicted with a probability of at least ``CONFIDENT`` (about half
        right, half wrong); ``0`` skips the backbone entirely. The scan files must
        exist: a missing one raises ``FileNotFoundError`` (pass ``0`` to do without).
    verbose : int, default=0
        With 1 or more, print a line per section and per overlay scan (overlays
        re-embed their scans, which takes a while).

    Returns
    -------
    out : str
        The path of the written file.

    Examples
    --------
    >>> from sklearn_dinoatten.evaluation import write_report
    >>> write_report("runs/adni_cv", overlays=0)  # doctest: +SKIP
    'runs/adni_cv/report.html'
    """
    if not isinstance(overlays, Integral) or overlays < 0:
        raise ValueError(f"overlays must be a non-negative integer; got {overlays!r}.")
    run = read_run(run_dir)
    overlaid = {"Attention overlays": lambda run: overlay_section(run, overlays, verbose)}
    if run.task == "regression":
        sections = {"Metrics": _metrics_section, **REGRESSION_SECTIONS,
                    "Subgroups": subgroup_section,
                    "Learned volume embeddings": _embedding_section,
                    "Slice attention by third of the target": _profile_section,
                    **overlaid}
    else:
        sections = {
            "Metrics": _metrics_section, "ROC curves": _roc_section,
            "Calibration": calibration_section, "Decision curves": decision_section,
            "Subgroups": subgroup_section,
            "Confusion matrices": _confusion_section,
            "Learned volume embeddings": _embedding_section,
            "Slice attention by class": _profile_section, **overlaid,
        }
    # The overlays first: a missing scan or weights file fails before the other figures.
    order = ["Attention overlays", *list(sections)[:-1]]
    contents = {}
    # Class and method names are drawn as written: "$...$" in a label is not TeX.
    with matplotlib.rc_context({"text.parse_math": False}):
        for title in order:
            say(verbose, f"report: {title}")
            contents[title] = sections[title](run)
    body = "".join(f"<h2>{title}</h2>{contents[title]}" for title in sections)
    out = os.path.join(run_dir, "report.html") if out is None else os.fspath(out)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Evaluation report</title><style>{_STYLE}</style></head>"
            f"<body>{_header(run)}{body}</body></html>")
    atomic_write(out, lambda f: f.write(page.encode("utf-8")))
    return out


def _header(run):
    info, data = run.info, run.info.get("data") or {}
    rows = {
        "Created": info.get("created"),
        "Data": data and (f"{data.get('root')} ({data.get('n_scans', len(run.labels))} scans"
                          + (f"; labels {data['labels_csv']}" if data.get("labels_csv")
                             else "") + ")"),
        **_what_is_predicted(run),
        "Protocol": info.get("protocol_description") or (
            info.get("folds") and f"{info['folds']}-fold cross-validation"),
        "Grouping": _grouping(run),
        "Training scans scored": info.get("training_scans_scored") is not None and (
            f"{info['training_scans_scored']} of the {len(run.labels)} scans trained the "
            "model (by content)"),
        "Scored scans": (f"{len(run.labels)}" if run.task == "regression" else ", ".join(
            f"{c} ({np.sum(run.labels == c)})" for c in run.classes)),
        "Reference": run.names[run.reference],
        "Command": info.get("command") and shlex.join(map(str, info["command"])),
        "Versions": ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items()),
    }
    table = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows.items() if v)
    params = json.dumps({"embedders" if info.get("embedders") else "embedder":
                         info.get("embedders") or info.get("embedder"),
                         "methods": info["methods"]}, indent=1, default=str)
    banner = ('<p class="warning">Random backbone weights: the slice methods\' scores show '
              "the machinery, not the foundation model's features.</p>"
              if info.get("random_weights") else "")
    if info.get("training_scans_scored"):
        banner += (f'<p class="warning">Not an external test: {info["training_scans_scored"]} '
                   f"of the {len(run.labels)} scans scored were used to train the model.</p>")
    return (f"<h1>Evaluation report</h1>{banner}<table>{table}</table><details><summary>"
            f"Parameters</summary><pre>{html.escape(params)}</pre></details>")


def _what_is_predicted(run):
    """The header's row that says what the run predicts: the positive class, or a
    regression's target and its range."""
    if run.task != "regression":
        return {"Positive class": run.positive
                or "none: more than two classes (macro averages)"}
    target = run.info.get("target") or {}
    return {"Target": f"{target.get('name', 'a number')} (regression): from "
                      f"{min(run.labels):.4g} to {max(run.labels):.4g}, mean "
                      f"{run.labels.mean():.4g}"}


def _grouping(run):
    """What the run's grouping by subject did, for its protocol: the folds (in
    cross-validation), the bootstrap, DeLong's test (two classes, several methods)."""
    info = run.info
    if not info.get("grouped"):
        return "none: every scan counted as independent"
    kept = {"cross-validation": ["the folds"], "held-out": ["the split"]}.get(
        info.get("protocol"), [])
    kept.append("the bootstrap intervals")
    if run.positive is not None and len(run.names) > 1:
        kept.append("DeLong's test")
    if run.task == "regression" and len(run.names) > 1:
        kept.append("the Wilcoxon test (of subjects' mean errors)")
    said = ", ".join(kept[:-1]) + " and " + kept[-1] if len(kept) > 1 else kept[0]
    return f"by subject ({info.get('n_subjects')} subjects): {said} respect subjects"


def _metrics_section(run):
    if run.metrics is None:
        return note("Skipped: the run directory has no metrics.csv.")
    caption = run.info.get("caption") or "From the scored scans' predictions."
    text = paragraph(caption) + _metric_tables(run, run.metrics, ("method",))
    if run.per_class:
        text += ("<h3>Each class against the rest</h3>" + paragraph(
            "The two-class metrics of each class's probability, one class against the "
            "others: a scan is called the class where it is the most probable, so the "
            "operating point is that of the multi-class predictions; CIs and DeLong's test "
            "as above.") + _metric_tables(run, run.per_class, PER_CLASS_KEYS, level=4))
    return text


def _metric_tables(run, rows, keys, level=3):
    """The registry's tables for metrics ``rows``, each row named by its ``keys``
    columns; a column without a value is left out, and a table without one."""
    tables, said = [], ""
    for title in TABLES[run.task]:
        columns = [c for c in table_columns(title) if c in rows[0]
                   and any(_cell(run, row, c) != MISSING for row in rows)]
        if columns:
            names = [*keys, *columns]
            cells = [[_cell(run, row, c) for c in names] for row in rows]
            tables.append(f"<h{level}>{title}</h{level}>" + metrics_table(
                [header(c, run.names[run.reference]) for c in names], cells))
            said = said or no_spread_note(cell for row in cells for cell in row)
    return "".join(tables) + (note(said) if tables and said else "")


MISSING = "\u2013"  # a metric without a value (NaN): an en dash


def _cell(run, row, column):
    """A metrics row's value as the report's tables show it (text)."""
    value = row.get(column) or ""
    if column == "method":
        return run.names.get(value, value)
    if column == "class":
        return str(value)
    if (column in METRICS and METRICS[column].compare
            and row["method"] in (run.reference, run.names[run.reference])):
        return "reference"
    text = metric_text(row, column)
    return MISSING if text == "-" else text


def _roc_section(run):
    if len(run.classes) != 2:
        return note(f"Skipped: ROC curves are drawn for two classes; this run has "
                     f"{len(run.classes)}.")
    y = run.labels == run.positive
    if y.all() or not y.any():
        return note("Skipped: every scan has the same label.")
    legends = {}
    for key in run.names:
        row = run.metrics_row(key)
        legends[key] = "no row in metrics.csv" if row is None else f"AUC {metric_text(row, 'auc')}"
    unit = "subjects" if run.groups is not None else "scans"
    return paragraph(
        f"One panel per method, positive class {run.positive}: its ROC curve, shaded the "
        f"95 % band of the true-positive rate over {N_BOOTSTRAP} bootstrap "
        f"resamples of the {unit}, stratified by class; in grey the reference method "
        f"({run.names[run.reference]}); dotted, chance. Legend: AUC [95 % CI] from the "
        "metrics table.") + image(roc_figure(run, legends))


def _confusion_section(run):
    called = ("the most probable" if run.positive is None else
              f"{run.positive} where its probability is at least the split's threshold, "
              "as in the metrics table")
    return paragraph(f"Rows: true class; columns: predicted class ({called}). Each "
                     "cell: the number of scans and, in brackets, their percentage of the "
                     "true class's row (the row's scans); colour follows the percentage."
                     ) + image(confusion_figure(run))


def _embedding_section(run):
    key = method_with(run, "embedding_")
    if key is None:
        return note("Skipped: outputs.npz has no volume embeddings.")
    if len(run.labels) < 3:
        return note("Skipped: fewer than 3 scans.")
    who = ("Each scan is embedded by the model of the fold that held it out: points of one "
           "fold share a model and may group by fold, which marker shapes show."
           if run.folds is not None else "One fitted model embedded every scored scan (no "
           "cross-validation folds).")
    colour = ("the third of the target" if run.task == "regression" else "true class")
    return paragraph(f"Volume embeddings of the scored scans by {run.names[key]}, projected to "
                     f"2D; colour: {colour}. {who}") + image(embedding_figure(run, key))


def _profile_section(run):
    keys = [k for k in run.names if f"attention_{k}" in run.outputs]
    if not keys or "n_slices" not in run.outputs:
        return note("Skipped: no method of this run has slice attention.")
    uniform = [k for k in keys if _uniform_attention(run, k)]
    text = ("Mean attention weight against the position of the slice among the slices the "
            "embedder kept, rescaled so that uniform attention is 1; band: ±1 sd over the "
            "scans of a " + ("third of the target (lowest, middle, highest)"
                             if run.task == "regression" else "class")
            + ", cut at 0. Tri-planar bags: one panel per orientation.")
    if uniform:
        text += (f" Left out: {', '.join(run.names[k] for k in uniform)}, whose attention is "
                 "the same on every slice of every scan (uniform by construction).")
    drawn = [k for k in keys if k not in uniform]
    return paragraph(text) + (image(profile_figure(run, drawn)) if drawn else "")


def _uniform_attention(run, key):
    """Whether a method gives every slice of each scan the same weight (mean pooling)."""
    return all(np.allclose(weights[:n], weights[0]) for weights, n in
               zip(run.outputs[f"attention_{key}"], run.outputs["n_slices"], strict=True))
