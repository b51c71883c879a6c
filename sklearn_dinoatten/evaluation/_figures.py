"""The figures of the HTML report (:func:`~sklearn_dinoatten.evaluation.write_report`),
one function each.

Each takes a :class:`~sklearn_dinoatten.evaluation.Run` and returns a matplotlib
:class:`~matplotlib.figure.Figure`; the report embeds it and says what it shows.
"""

import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import roc_curve
from threadpoolctl import threadpool_limits

from ..explain import DIRECTIONS
from ..volumes import AXIS_NAMES, axes_of
from ._metrics import bootstrap_resamples
from ._runs import slice_embedders

RANDOM_STATE = 0
N_BOOTSTRAP = 500
FPR_GRID = np.linspace(0, 1, 101)
POSITION_GRID = np.linspace(0, 1, 50)
MARKERS = "osD^vP*Xhp"  # one per fold, in turn
BAND_ALPHA = 0.3
REFERENCE_COLOR = "0.55"
UNNAMED_AXIS = -2  # the one slicing axis of a run whose run.json does not name it
REPORT_WIDTH = 10.8  # inches: the report's 1100 px at 100 dpi, three 3.6 in panels
LEGEND_CHARACTERS = 44  # a line of a panel's legend ("small" text) or title
TITLE_CHARACTERS = 36
SIDE_LEGEND_CHARACTERS = 28  # a line of a legend beside the panels
LINE_HEIGHT = 0.17  # inches per line of "small" text
CHARACTER_WIDTH = 0.075  # inches per character of tick-label text
CLASS_CHARACTERS = 16  # a line of a class name on a confusion matrix's axis
CELL = 0.75  # inches: a confusion matrix's cell


def panels(n, width=3.6, height=3.6, columns=None):
    """A figure and its ``n`` axes of ``width`` x ``height`` inches, as many to a row as
    fill the report's width (three of 3.6 in), or ``columns``."""
    columns = max(1, round(REPORT_WIDTH / width)) if columns is None else columns
    rows, columns = -(-n // columns), min(n, columns)
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def wrapped(text, width=LEGEND_CHARACTERS):
    """``text`` in lines of at most ``width`` characters (its own line breaks kept),
    broken after spaces, ``_`` and ``/`` (a longer word is cut), so that long method and
    class names stay inside their panel."""
    out = []
    for line in str(text).split("\n"):
        current = ""
        for piece in re.split(r"(?<=[ _/])", line):
            while len(piece) > width:  # a word longer than a line
                out.append(current + piece[:width - len(current)])
                piece, current = piece[width - len(current):], ""
            if current and len((current + piece).rstrip()) > width:
                out.append(current.rstrip())
                current = ""
            current += piece
        out.append(current.rstrip())
    return "\n".join(out)


def lines(texts):
    """How many lines ``texts`` take, wrapped as legends are."""
    return sum(wrapped(text).count("\n") + 1 for text in texts)


def panel_height(axes_height, legend_lines, titles=()):
    """The height of panels whose axes take ``axes_height`` inches, with a legend of
    ``legend_lines`` lines below them and titles of as many lines as the longest of
    ``titles`` wraps to."""
    title_lines = max((panel_title(t).count("\n") + 1 for t in titles), default=1)
    return axes_height + LINE_HEIGHT * legend_lines + 0.22 * title_lines


def roc_figure(run, legends):
    """One panel per method: its ROC curve with its 95 % bootstrap band, the reference
    method's curve in grey, the chance diagonal; ``legends`` maps a method key to the
    text of its curve."""
    y = run.labels == run.positive
    resamples = list(bootstrap_resamples(y, n_resamples=N_BOOTSTRAP, groups=run.groups,
                                         random_state=RANDOM_STATE))
    scores = {key: proba[:, run.classes.index(run.positive)] for key, proba in run.proba.items()}
    reference = run.reference
    entries = {key: ([] if key == reference else [
        f"{run.names[reference]} (reference): {legends[reference]}"]) + [
        legends[key], "95 % bootstrap band", "chance"] for key in run.names}
    fig, axes = panels(len(run.names), 3.6,
                       panel_height(3.9, max(map(lines, entries.values())), run.names.values()))
    for i, (ax, (key, name)) in enumerate(zip(axes, run.names.items(), strict=True)):
        labels = iter(map(wrapped, entries[key]))
        if key != reference:
            ax.plot(*roc_curve(y, scores[reference])[:2], color=REFERENCE_COLOR, lw=1.2,
                    label=next(labels))
        color = f"C{i % 10}"
        ax.plot(*roc_curve(y, scores[key])[:2], color=color, lw=2, label=next(labels))
        band = [np.interp(FPR_GRID, *roc_curve(y[r], scores[key][r])[:2]) for r in resamples]
        ax.fill_between(FPR_GRID, *np.percentile(band, [2.5, 97.5], axis=0), color=color,
                        alpha=BAND_ALPHA, lw=0, label=next(labels))
        ax.plot([0, 1], [0, 1], ":", color="black", lw=0.8, label=next(labels))
        ax.set(title=panel_title(name + (" (reference)" if key == reference else "")),
               aspect="equal",
               xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),  # curves on the edges stay visible
               xlabel="False-positive rate (1 - specificity)",
               ylabel="True-positive rate (sensitivity)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small")
    fig.suptitle(f"Positive class: {run.positive}")
    return fig


def panel_title(name):
    """A method's name as a panel's title: the encoder of a study of several on a line
    of its own, long names wrapped."""
    return wrapped(name.replace(" [", "\n[", 1), TITLE_CHARACTERS)


def confusion_figure(run):
    """One confusion matrix per method: each cell the count of scans and its share of
    the true class's row, coloured by that share. Panels grow with the number of
    classes and the length of their names (wrapped; the predicted ones upright beyond
    two classes)."""
    n = len(run.classes)
    names = [wrapped(c, CLASS_CHARACTERS) for c in run.classes]
    label = CHARACTER_WIDTH * max(len(line) for c in names for line in c.split("\n"))
    side = max(2.4, CELL * n)  # the matrix, in inches
    fig, axes = panels(len(run.names), side + label + 0.9,
                       panel_height(side + label + 0.9, 0, run.names.values()))
    for ax, (key, name) in zip(axes, run.names.items(), strict=True):
        counts = np.array([[np.sum((run.labels == t) & (run.pred[key] == p))
                            for p in run.classes] for t in run.classes])
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (t, p), count in np.ndenumerate(counts):
            text = f"{count}\n({100 * share[t, p]:.0f} %)" if totals[t, 0] else "0"
            ax.text(p, t, text, ha="center", va="center", fontsize="small" if n > 3 else None,
                    color="white" if share[t, p] > 0.6 else "black")
        ax.set(title=panel_title(name), xlabel="Predicted class", ylabel="True class")
        ax.set_xticks(range(n), names, rotation=90 if n > 2 else 0,
                      ha="right" if n > 2 else "center", va="center" if n > 2 else "top",
                      rotation_mode="anchor")
        ax.set_yticks(range(n), names)
    return fig


def scan_groups(run):
    """``(title, {name: mask})``: the scans by true class, or, in a regression, by third
    of the target (lowest, middle, highest), as the embedding and attention figures
    colour them."""
    if run.task != "regression":
        return "true class", {c: run.labels == c for c in run.classes}
    name = (run.info.get("target") or {}).get("name") or "target"
    low, high = np.quantile(run.labels, [1 / 3, 2 / 3])
    thirds = np.digitize(run.labels, [low, high], right=True)
    return f"true {name}", {
        f"{word} third ({run.labels[thirds == i].min():.4g} to "
        f"{run.labels[thirds == i].max():.4g})": thirds == i
        for i, word in enumerate(("lowest", "middle", "highest")) if (thirds == i).any()}


def embedding_figure(run, key):
    """The volume embeddings of method ``key`` projected by PCA and t-SNE: colour for
    the true class (a regression's: the third of the target), marker for the fold that
    held the scan out (cross-validation)."""
    X = run.outputs[f"embedding_{key}"]
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
    folds = np.zeros(len(X), int) if run.folds is None else run.folds
    marker = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(np.unique(folds))}
    colour, groups = scan_groups(run)
    fig, axes = panels(2, 4.4, 4.4, columns=2)
    for ax, (title, points) in zip(axes, projections.items(), strict=True):
        for i, member in enumerate(groups.values()):
            for f, m in marker.items():
                mine = member & (folds == f)
                ax.scatter(*points[mine].T, s=28, alpha=0.8, color=f"C{i % 10}", marker=m)
        ax.set(title=title, xticks=[], yticks=[])
    # outside the panels, on the right: constrained layout makes room for them
    fig.legend(handles=[_key(f"C{i % 10}", "o", wrapped(c, SIDE_LEGEND_CHARACTERS))
                        for i, c in enumerate(groups)],
               title=colour, loc="outside right upper", fontsize="small")
    if run.folds is not None:
        fig.legend(handles=[_key("0.3", m, f"fold {f}") for f, m in marker.items()],
                   title="fold", loc="outside right lower", fontsize="small")
    fig.suptitle(wrapped(run.names[key], 80))
    return fig


def _key(color, marker, label):
    """A legend entry: a marker of ``color``."""
    return Line2D([], [], ls="", marker=marker, color=color, label=label)


def profile_figure(run, keys):
    """The mean slice-attention profile of each class (a regression's: each third of the
    target) (band: ±1 sd, cut at 0), one panel per method of ``keys`` and slicing axis;
    uniform attention is 1."""
    orientation = slice_orientations(run)
    colour, groups = scan_groups(run)
    planes = [a for a in (UNNAMED_AXIS, 2, 1, 0) if (orientation == a).any()]
    fig, axes = panels(len(keys) * len(planes), 3.6,
                       panel_height(3.0, 0, [run.names[k] for k in keys]))
    for ax, (key, plane) in zip(axes, [(k, p) for k in keys for p in planes], strict=True):
        profiles = np.array([
            np.interp(POSITION_GRID, np.linspace(0, 1, (rows == plane).sum()),
                      weights[:len(rows)][rows == plane] * n)  # uniform attention: 1
            for weights, rows, n in zip(run.outputs[f"attention_{key}"], orientation,
                                        run.outputs["n_slices"], strict=True)])
        for c, member in groups.items():
            mean, sd = profiles[member].mean(0), profiles[member].std(0)
            (line,) = ax.plot(POSITION_GRID, mean, label=c)
            ax.fill_between(POSITION_GRID, np.maximum(mean - sd, 0), mean + sd,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(1, ls=":", color="gray")
        ax.set(title=panel_title(run.names[key]
                                 + (f", {AXIS_NAMES[plane]}" if len(planes) > 1 else "")),
               xlabel=position_label(plane), ylabel="relative attention", xlim=(0, 1),
               ylim=(0, None))
    fig.legend(handles=axes[0].get_legend_handles_labels()[0],
               labels=[wrapped(c, SIDE_LEGEND_CHARACTERS) for c in groups],
               title=colour,
               loc="outside right upper", fontsize="small")
    return fig


def slice_orientations(run):
    """The slicing axis of each bag row of each scan, ``(n_scans, n_rows)``: -1 for
    padding; in single-axis runs the embedder's axis, or ``UNNAMED_AXIS``."""
    if "slice_axis" in run.outputs:
        return run.outputs["slice_axis"]
    n_slices = run.outputs["n_slices"]
    real = np.arange(max(n_slices))[None] < n_slices[:, None]
    axis = single_axis(run)
    return np.where(real, UNNAMED_AXIS if axis is None else axis, -1)


def single_axis(run):
    """The embedder's slicing axis (0, 1 or 2); None when run.json names none or several."""
    axis = next(iter(slice_embedders(run.info).values()), {}).get("axis")  # one for all
    if axis is None:
        return None
    axes = axes_of(tuple(axis) if isinstance(axis, list) else axis)  # JSON: a tuple is a list
    return axes[0] if len(axes) == 1 else None


def position_label(plane):
    """The x label of a profile along slicing axis ``plane``."""
    if plane == UNNAMED_AXIS:
        return "relative slice position\n0 = first kept slice, 1 = last"
    low, high = DIRECTIONS[plane]
    return f"{AXIS_NAMES[plane]} slice position\n0 = {low}, 1 = {high}"
