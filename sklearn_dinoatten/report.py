"""One self-contained HTML report of an evaluation run directory.

The ``cv`` command (cross-validation, or a held-out test set) writes a run directory
(:mod:`sklearn_dinoatten.runs`); :func:`write_report` turns it into a single HTML file
with every figure embedded as a PNG, readable offline and easy to share::

    from sklearn_dinoatten.report import write_report

    write_report("runs/adni_cv")  # -> "runs/adni_cv/report.html"
"""

import base64
import html
import io
import json
import os
import shlex
from numbers import Integral

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import ConfusionMatrixDisplay, roc_curve
from threadpoolctl import threadpool_limits

from ._files import atomic_write
from .embedding import DinoSliceEmbedder
from .metrics import bootstrap_resamples
from .runs import read_run
from .slicing import AXIS_NAMES, axes_of
from .volumes import load_volume

RANDOM_STATE = 0
N_BOOTSTRAP = 500
FPR_GRID = np.linspace(0, 1, 101)
POSITION_GRID = np.linspace(0, 1, 50)
_HEADERS = {
    "method": "Method", "accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
    "auc": "AUC [95 % CI]", "sensitivity": "Sensitivity", "specificity": "Specificity",
    "f1": "F1", "fnr": "FNR",
    "fit_seconds_per_fold": "Fit s / fold", "delong_p": "DeLong p",
}
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{margin-bottom:.2em}h2{margin-top:2em;
border-bottom:1px solid #ddd}table{border-collapse:collapse}td,th{padding:.25em .7em;
border-bottom:1px solid #eee;text-align:left}code,pre{background:#f6f6f6;padding:.1em .3em}
img{max-width:100%}.note{color:#666;font-style:italic}figure{display:inline-block;
margin:.5em;vertical-align:top}figcaption{font-size:.9em;color:#444}
.warning{background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold}"""


def write_report(run_dir, out=None, overlays=4):
    """Write the HTML report of an evaluation run directory.

    Parameters
    ----------
    run_dir : str or path
        A directory written by the ``cv`` command.
    out : str or path, default=None
        Where to write the report; ``<run_dir>/report.html`` by default.
    overlays : int, default=4
        How many scans to show with their attention overlaid (about half correctly, half
        wrongly classified by the reference method); ``0`` skips the backbone entirely.

    Returns
    -------
    out : str
        The path of the written file.

    Examples
    --------
    >>> from sklearn_dinoatten.report import write_report
    >>> write_report("runs/adni_cv", overlays=0)  # doctest: +SKIP
    'runs/adni_cv/report.html'
    """
    if not isinstance(overlays, Integral) or overlays < 0:
        raise ValueError(f"overlays must be a non-negative integer; got {overlays!r}.")
    run = read_run(run_dir)
    # Class and method names are drawn as written: "$...$" in a label is not TeX.
    with matplotlib.rc_context({"text.parse_math": False}):
        sections = [
            ("Metrics", run.info.get("caption") or "From the scored scans' predictions.",
             _metrics_section(run)),
            ("ROC curves", "Shaded: 95 % band of the true-positive rate over "
             f"{N_BOOTSTRAP} bootstrap resamples of the "
             f"{'subjects' if run.groups is not None else 'scans'}, stratified by class. "
             "Legend: AUC [95 % CI] from the metrics table.", _roc_section(run)),
            ("Confusion matrices", "Rows: true class; columns: predicted class; counts of scans.",
             _confusion_section(run)),
            ("Learned volume embeddings", "Volume embeddings of the scored scans by the "
             "reference method, projected to 2D, coloured by true class. Each scan is embedded "
             "by the model that held it out (in cross-validation, its fold's), so points may "
             "also group by fold.", _embedding_section(run)),
            ("Slice attention by class", "Mean attention weight against slice position "
             "(0: first slice, 1: last), rescaled so that uniform attention is 1; band: "
             "±1 sd over the scans of a class, cut at 0. Tri-planar bags: one panel per "
             "orientation, positions within it.", _profile_section(run)),
            ("Attention overlays", "Slice attention of the reference method times the "
             "backbone's in-plane attention (CLS to patches), on the most salient slices of the "
             "most confidently right and wrong scans.", _overlay_section(run, overlays)),
        ]
    body = "".join(
        f"<h2>{title}</h2><p>{html.escape(text)}</p>{content}" for title, text, content in sections
    )
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
        "Data": data and f"{data.get('root')} ({data.get('n_scans', len(run.labels))} scans)",
        "Positive class": run.positive or "none: more than two classes (macro averages)",
        "Protocol": info.get("protocol_description") or (
            info.get("folds") and f"{info['folds']}-fold cross-validation"),
        "Grouping": (f"by subject ({info.get('n_subjects')} subjects): folds, bootstrap and "
                     "DeLong test respect subjects" if info.get("grouped") else
                     "none: every scan counted as independent"),
        "Scored scans": ", ".join(f"{c} ({np.sum(run.labels == c)})" for c in run.classes),
        "Reference": run.names[run.reference],
        "Command": info.get("command") and shlex.join(map(str, info["command"])),
        "Versions": ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items()),
    }
    table = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows.items() if v)
    params = json.dumps({"embedder": info.get("embedder"), "methods": info["methods"]},
                        indent=1, default=str)
    banner = ('<p class="warning">Random backbone weights: the slice methods\' scores show '
              "the machinery, not the foundation model's features.</p>"
              if info.get("random_weights") else "")
    return (f"<h1>Evaluation report</h1>{banner}<table>{table}</table><details><summary>"
            f"Parameters</summary><pre>{html.escape(params)}</pre></details>")


def _note(text):
    return f'<p class="note">{html.escape(text)}</p>'


def _img(fig, caption=None):
    """The figure as an embedded PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # pyplot-managed figures (from explain) leak otherwise
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="figure" src="data:image/png;base64,{data}">{caption}</figure>'


def _panels(n, width=4.2, height=3.8, columns=3):
    """A figure and its ``n`` axes, ``columns`` to a row."""
    rows, columns = -(-n // columns), min(n, columns)
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _metrics_section(run):
    if run.metrics is None:
        return _note("Skipped: the run directory has no metrics.csv.")
    columns = [c for c in run.metrics[0] if c not in ("auc_ci_low", "auc_ci_high")]
    head = "".join(f"<th>{_HEADERS.get(c, html.escape(c))}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(run, row, c)}</td>" for c in columns)
                   + "</tr>" for row in run.metrics)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _cell(run, row, column):
    value = row[column] or ""
    if column == "method":
        return html.escape(run.names.get(value, value))
    if column == "delong_p" and row["method"] in (run.reference, run.names[run.reference]):
        return "reference"
    try:
        number = float(value)
    except ValueError:
        return html.escape(value) or "&ndash;"
    if np.isnan(number):
        return "&ndash;"
    if column == "auc" and row.get("auc_ci_low") and row.get("auc_ci_high"):
        return _auc_with_ci(row)
    return format(number, {"delong_p": ".3g", "fit_seconds_per_fold": ".1f"}.get(column, ".3f"))


def _auc_with_ci(row):
    """A metrics.csv row's AUC and interval as the table and the legends show it."""
    return (f"{float(row['auc']):.3f} [{float(row['auc_ci_low']):.3f}, "
            f"{float(row['auc_ci_high']):.3f}]")


def _roc_section(run):
    if len(run.classes) != 2:
        return _note(f"Skipped: ROC curves are drawn for two classes; this run has "
                     f"{len(run.classes)}.")
    y = run.labels == run.positive
    if y.all() or not y.any():
        return _note("Skipped: every scan has the same label.")
    resamples = list(bootstrap_resamples(y, N_BOOTSTRAP, groups=run.groups,
                                         random_state=RANDOM_STATE))
    fig, (ax,) = _panels(1, 5.5, 5)
    column = run.classes.index(run.positive)
    for key, name in run.names.items():
        score = run.proba[key][:, column]
        fpr, tpr, _ = roc_curve(y, score)
        row = run.metrics_row(key)
        label = name if row is None else f"{name}: AUC {_auc_with_ci(row)}"
        (line,) = ax.plot(fpr, tpr, label=label)
        band = [np.interp(FPR_GRID, *roc_curve(y[i], score[i])[:2]) for i in resamples]
        low, high = np.percentile(band, [2.5, 97.5], axis=0)
        ax.fill_between(FPR_GRID, low, high, color=line.get_color(), lw=0,
                        alpha=0.5 / max(len(run.names), 3))  # many bands stay readable
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="False-positive rate", ylabel="True-positive rate (sensitivity)",
           aspect="equal", title=f"Positive class: {run.positive}")
    ax.legend(loc="lower right", fontsize="small")
    return _img(fig)


def _confusion_section(run):
    fig, axes = _panels(len(run.names), 3.6, 3.4)
    for ax, (key, name) in zip(axes, run.names.items(), strict=True):
        ConfusionMatrixDisplay.from_predictions(
            run.labels, run.pred[key], labels=run.classes, ax=ax, colorbar=False)
        ax.set_title(name)
    return _img(fig)


def _embedding_section(run):
    key = _method_with(run, "embedding_")
    if key is None:
        return _note("Skipped: outputs.npz has no volume embeddings.")
    X = run.outputs[f"embedding_{key}"]
    if len(X) < 3:
        return _note("Skipped: fewer than 3 scans.")
    perplexity = min(30.0, (len(X) - 1) / 3)  # t-SNE needs perplexity < n_samples
    pca = PCA(2, random_state=RANDOM_STATE).fit(X)
    # t-SNE's OpenMP threads can stall behind torch's OpenMP runtime on busy cores (30 s
    # instead of 0.1 s for 30 scans); one thread takes seconds for a thousand scans.
    with threadpool_limits(1, user_api="openmp"):
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=RANDOM_STATE)
        projections = {
            f"PCA ({pca.explained_variance_ratio_.sum():.0%} of the variance)": pca.transform(X),
            f"t-SNE (perplexity {perplexity:.0f})": tsne.fit_transform(X),
        }
    fig, axes = _panels(2, 4.8, 4.4)
    for ax, (title, points) in zip(axes, projections.items(), strict=True):
        for c in run.classes:
            ax.scatter(*points[run.labels == c].T, s=18, alpha=0.8, label=c)
        ax.set(title=title, xticks=[], yticks=[])
    axes[0].legend(title="true class", fontsize="small")
    fig.suptitle(run.names[key])
    return _img(fig)


def _profile_section(run):
    keys = [k for k in run.names if f"attention_{k}" in run.outputs]
    if not keys or "n_slices" not in run.outputs:
        return _note("Skipped: no method of this run has slice attention.")
    n_slices = run.outputs["n_slices"]
    # Tri-planar bags: the orientation of each row (-1: padding); else one orientation.
    orientation = run.outputs.get("slice_axis", np.where(
        np.arange(max(n_slices))[None] < n_slices[:, None], -2, -1))
    planes = [a for a in (-2, 2, 1, 0) if (orientation == a).any()]
    fig, axes = _panels(len(keys) * len(planes))
    for ax, (key, plane) in zip(axes, [(k, p) for k in keys for p in planes], strict=True):
        profiles = np.array([
            np.interp(POSITION_GRID, np.linspace(0, 1, (rows == plane).sum()),
                      weights[:len(rows)][rows == plane] * n)  # uniform attention: 1
            for weights, rows, n in zip(run.outputs[f"attention_{key}"], orientation,
                                        n_slices, strict=True)])
        for c in run.classes:
            mean, sd = profiles[run.labels == c].mean(0), profiles[run.labels == c].std(0)
            (line,) = ax.plot(POSITION_GRID, mean, label=c)
            ax.fill_between(POSITION_GRID, np.maximum(mean - sd, 0), mean + sd,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(1, ls=":", color="gray")
        ax.set(title=run.names[key] + ("" if plane == -2 else f", {AXIS_NAMES[plane]}"),
               xlabel="relative slice position", ylabel="relative attention", ylim=(0, None))
    axes[0].legend(title="true class", fontsize="small")
    return _img(fig)


def _overlay_section(run, overlays):
    if overlays == 0:
        return _note("Skipped: no overlays were asked for (overlays=0).")
    key = _method_with(run, "attention_")
    if key is None or "n_slices" not in run.outputs:
        return _note("Skipped: no method of this run has slice attention.")
    if not run.info.get("embedder"):
        return _note("Skipped: run.json has no slice embedder to compute in-plane attention.")
    chosen = _overlay_scans(run, key, overlays)
    root = (run.info.get("data") or {}).get("root") or ""
    paths = [p if os.path.exists(p) else os.path.join(root, p) for p in run.paths[chosen]]
    parts = [f"<p>Attention of {html.escape(run.names[key])}.</p>"]
    try:
        from .explain import in_plane_attention, plot_saliency, saliency_from_parts

        embedder = DinoSliceEmbedder(**{**run.info["embedder"], "verbose": 0}).fit(paths)
        for i, path in zip(chosen, paths, strict=True):
            volume = load_volume(path)
            maps, slice_sets = in_plane_attention(embedder, path)
            weights = run.outputs[f"attention_{key}"][i, : run.outputs["n_slices"][i]]
            saliency = saliency_from_parts(weights, maps, slice_sets, volume.shape)
            score = run.positive or run.pred[key][i]
            parts.append(_img(
                plot_saliency(volume, saliency, axis=axes_of(embedder.axis)[0]),
                f"{os.path.basename(path)}: true {run.labels[i]}, predicted "
                f"{run.pred[key][i]}, p({score}) = "
                f"{run.proba[key][i, run.classes.index(score)]:.2f}"))
    except (ImportError, RuntimeError, OSError, ValueError) as exc:
        parts.append(_note(f"Attention overlays are missing: {type(exc).__name__}: {exc}"))
    return "".join(parts)


def _overlay_scans(run, key, overlays):
    """Up to ``overlays`` scans, half right and half wrong where possible; within each,
    the classes take turns, most confident first."""
    pred = run.pred[key]
    confidence = run.proba[key][np.arange(len(pred)), [run.classes.index(c) for c in pred]]
    order = np.argsort(-confidence, kind="stable")
    correct = pred[order] == run.labels[order]
    right, wrong = _classes_in_turn(run, order[correct]), _classes_in_turn(run, order[~correct])
    n_wrong = min(len(wrong), max(overlays // 2, overlays - len(right)))
    return np.concatenate([right[: overlays - n_wrong], wrong[:n_wrong]]).astype(int)


def _classes_in_turn(run, scans):
    """``scans`` reordered so that their true classes alternate, keeping each class's order."""
    rank = np.zeros(len(scans))
    for c in run.classes:
        mine = run.labels[scans] == c
        rank[mine] = np.arange(mine.sum())
    return scans[np.argsort(rank, kind="stable")]


def _method_with(run, prefix):
    """The reference method if outputs.npz has ``prefix + key`` for it, else the first
    method that has, else None."""
    keys = [run.reference, *run.names]
    return next((k for k in keys if prefix + k in run.outputs), None)
