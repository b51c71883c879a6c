"""The figures of the HTML report (:func:`~sklearn_dinoatten.evaluation.write_report`),
one function each.

Each takes a :class:`~sklearn_dinoatten.evaluation.Run` and returns a matplotlib
:class:`~matplotlib.figure.Figure`; the report embeds it and says what it shows.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import roc_curve
from threadpoolctl import threadpool_limits

from ..explain import DIRECTIONS
from ..volumes._slicing import AXIS_NAMES, axes_of
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


def panels(n, width=3.6, height=3.6, columns=3):
    """A figure and its ``n`` axes, ``columns`` to a row (three 3.6 in panels fill the
    report's 1100 px at 100 dpi)."""
    rows, columns = -(-n // columns), min(n, columns)
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def roc_figure(run, legends):
    """One panel per method: its ROC curve with its 95 % bootstrap band, the reference
    method's curve in grey, the chance diagonal; ``legends`` maps a method key to the
    text of its curve."""
    y = run.labels == run.positive
    resamples = list(bootstrap_resamples(y, N_BOOTSTRAP, groups=run.groups,
                                         random_state=RANDOM_STATE))
    scores = {key: proba[:, run.classes.index(run.positive)] for key, proba in run.proba.items()}
    reference = run.reference
    fig, axes = panels(len(run.names), 3.6, 4.6)
    for i, (ax, (key, name)) in enumerate(zip(axes, run.names.items(), strict=True)):
        if key != reference:
            ax.plot(*roc_curve(y, scores[reference])[:2], color=REFERENCE_COLOR, lw=1.2,
                    label=f"{panel_title(run.names[reference])} (reference): "
                          f"{legends[reference]}")
        color = f"C{i % 10}"
        ax.plot(*roc_curve(y, scores[key])[:2], color=color, lw=2, label=legends[key])
        band = [np.interp(FPR_GRID, *roc_curve(y[r], scores[key][r])[:2]) for r in resamples]
        ax.fill_between(FPR_GRID, *np.percentile(band, [2.5, 97.5], axis=0), color=color,
                        alpha=BAND_ALPHA, lw=0, label="95 % bootstrap band")
        ax.plot([0, 1], [0, 1], ":", color="black", lw=0.8, label="chance")
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
    of its own."""
    return name.replace(" [", "\n[", 1)


def confusion_figure(run):
    """One confusion matrix per method: each cell the count of scans and its share of
    the true class's row, coloured by that share."""
    fig, axes = panels(len(run.names), 3.6, 3.4)
    n = len(run.classes)
    for ax, (key, name) in zip(axes, run.names.items(), strict=True):
        counts = np.array([[np.sum((run.labels == t) & (run.pred[key] == p))
                            for p in run.classes] for t in run.classes])
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (t, p), count in np.ndenumerate(counts):
            text = f"{count}\n({100 * share[t, p]:.0f} %)" if totals[t, 0] else "0"
            ax.text(p, t, text, ha="center", va="center",
                    color="white" if share[t, p] > 0.6 else "black")
        ax.set(title=panel_title(name), xticks=range(n), yticks=range(n), xticklabels=run.classes,
               yticklabels=run.classes, xlabel="Predicted class", ylabel="True class")
    return fig


def embedding_figure(run, key):
    """The volume embeddings of method ``key`` projected by PCA and t-SNE: colour for
    the true class, marker for the fold that held the scan out (cross-validation)."""
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
    fig, axes = panels(2, 4.4, 4.4)
    for ax, (title, points) in zip(axes, projections.items(), strict=True):
        for i, c in enumerate(run.classes):
            for f, m in marker.items():
                mine = (run.labels == c) & (folds == f)
                ax.scatter(*points[mine].T, s=28, alpha=0.8, color=f"C{i % 10}", marker=m)
        ax.set(title=title, xticks=[], yticks=[])
    classes = axes[1].legend(
        handles=[_key(f"C{i % 10}", "o", c) for i, c in enumerate(run.classes)],
        title="true class", loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    if run.folds is not None:
        axes[1].add_artist(classes)  # a second legend replaces the first otherwise
        axes[1].legend(handles=[_key("0.3", m, f"fold {f}") for f, m in marker.items()],
                       title="fold", loc="lower left", bbox_to_anchor=(1.02, 0),
                       fontsize="small")
    fig.suptitle(run.names[key])
    return fig


def _key(color, marker, label):
    """A legend entry: a marker of ``color``."""
    return Line2D([], [], ls="", marker=marker, color=color, label=label)


def profile_figure(run, keys):
    """The mean slice-attention profile of each class (band: ±1 sd, cut at 0), one
    panel per method of ``keys`` and slicing axis; uniform attention is 1."""
    orientation = slice_orientations(run)
    planes = [a for a in (UNNAMED_AXIS, 2, 1, 0) if (orientation == a).any()]
    fig, axes = panels(len(keys) * len(planes), 3.6, 3.2)
    for ax, (key, plane) in zip(axes, [(k, p) for k in keys for p in planes], strict=True):
        profiles = np.array([
            np.interp(POSITION_GRID, np.linspace(0, 1, (rows == plane).sum()),
                      weights[:len(rows)][rows == plane] * n)  # uniform attention: 1
            for weights, rows, n in zip(run.outputs[f"attention_{key}"], orientation,
                                        run.outputs["n_slices"], strict=True)])
        for c in run.classes:
            mean, sd = profiles[run.labels == c].mean(0), profiles[run.labels == c].std(0)
            (line,) = ax.plot(POSITION_GRID, mean, label=c)
            ax.fill_between(POSITION_GRID, np.maximum(mean - sd, 0), mean + sd,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(1, ls=":", color="gray")
        ax.set(title=panel_title(run.names[key]
                                 + (f", {AXIS_NAMES[plane]}" if len(planes) > 1 else "")),
               xlabel=position_label(plane), ylabel="relative attention", xlim=(0, 1),
               ylim=(0, None))
    axes[0].legend(title="true class", fontsize="small")
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
        return "relative slice position (0 = first kept slice, 1 = last)"
    low, high = DIRECTIONS[plane]
    return f"{AXIS_NAMES[plane]} slice position, 0 = {low}, 1 = {high}"
