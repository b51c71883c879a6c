"""The figures of a regression run's report, one function each: predicted against true,
the errors against the target, and Bland-Altman's agreement plot, a panel per method.

Each takes a :class:`~sklearn_dinoatten.evaluation.Run` of a number and returns a
matplotlib :class:`~matplotlib.figure.Figure`.
"""

import numpy as np

from ._figures import MARKERS, REFERENCE_COLOR, panel_height, panel_title, panels, wrapped

LIMITS_OF_AGREEMENT = 1.96  # Bland-Altman's: the mean difference +- this many SDs


def _signed(value, spec=".2f"):
    """``value`` as text, without the sign of a value that rounds to 0 ("-0.00")."""
    text = format(value, spec)
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _target_name(run):
    return (run.info.get("target") or {}).get("name") or "target"


def _panels(run, legend_lines):
    fig, axes = panels(len(run.names), 3.6,  # a line more: titles clear the legends above
                       panel_height(3.6, legend_lines + 2, run.names.values()))
    return fig, zip(axes, run.names.items(), strict=True)


def _points(ax, run, x, y, i):
    """The scans as points, one marker per fold (as the report's other figures)."""
    folds = run.folds if run.folds is not None else np.ones(len(x), dtype=int)
    for fold in np.unique(folds):
        member = folds == fold
        ax.scatter(x[member], y[member], s=14, color=f"C{i % 10}",
                   marker=MARKERS[(fold - 1) % len(MARKERS)], alpha=0.75, lw=0)


def agreement_figure(run):
    """One panel per method: each scan's prediction against its target, the identity
    line (a perfect prediction) and the least-squares line of the predictions."""
    target, name = run.labels, _target_name(run)
    low, high = float(np.min(target)), float(np.max(target))
    values = np.concatenate([target, *run.predictions.values()])
    span = (float(values.min()), float(values.max()))
    pad = 0.03 * (span[1] - span[0] or 1.0)
    fig, panels_ = _panels(run, 2)
    for i, (ax, (key, title)) in enumerate(panels_):
        pred = run.predictions[key]
        _points(ax, run, target, pred, i)
        ax.plot(span, span, ":", color="black", lw=0.9, label="identity (perfect)")
        if np.ptp(target) > 0:
            slope, intercept = np.polyfit(target, pred, 1)
            ax.plot([low, high], [slope * low + intercept, slope * high + intercept],
                    color=REFERENCE_COLOR, lw=1.4,
                    label=wrapped(f"least squares: slope {_signed(slope)}"))
        ax.set(title=panel_title(title), xlabel=f"true {name}", ylabel=f"predicted {name}",
               xlim=(span[0] - pad, span[1] + pad), ylim=(span[0] - pad, span[1] + pad),
               aspect="equal")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small")
    return fig


def error_figure(run):
    """One panel per method: each scan's error (prediction - target) against its target,
    the zero line and the error's least-squares line on the target: a falling line is
    the regression to the mean the bias correction removes."""
    target, name = run.labels, _target_name(run)
    fig, panels_ = _panels(run, 2)
    for i, (ax, (key, title)) in enumerate(panels_):
        error = run.predictions[key] - target
        _points(ax, run, target, error, i)
        ax.axhline(0, color="black", lw=0.9, ls=":", label="no error")
        if np.ptp(target) > 0:
            slope, intercept = np.polyfit(target, error, 1)
            ends = np.array([target.min(), target.max()])
            ax.plot(ends, slope * ends + intercept, color=REFERENCE_COLOR, lw=1.4,
                    label=wrapped(f"least squares: slope {_signed(slope)}"))
        ax.set(title=panel_title(title), xlabel=f"true {name}",
               ylabel=f"error (predicted - true {name})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small")
    return fig


def bland_altman_figure(run):
    """One panel per method: Bland and Altman's plot, the difference (prediction -
    target) against the mean of the two, with the mean difference and the limits of
    agreement (the mean difference +- 1.96 SDs of the differences over the scans)."""
    target, name = run.labels, _target_name(run)
    fig, panels_ = _panels(run, 3)
    for i, (ax, (key, title)) in enumerate(panels_):
        pred = run.predictions[key]
        difference, mean = pred - target, (pred + target) / 2
        _points(ax, run, mean, difference, i)
        bias, sd = float(difference.mean()), float(difference.std(ddof=1)) \
            if len(difference) > 1 else 0.0
        ax.axhline(bias, color="black", lw=1.2, label=f"mean difference {_signed(bias)}")
        low, high = (bias - LIMITS_OF_AGREEMENT * sd, bias + LIMITS_OF_AGREEMENT * sd)
        for limit in (low, high):
            ax.axhline(limit, color=REFERENCE_COLOR, lw=1.1, ls="--",
                       label=(f"limits of agreement {_signed(low)}, {_signed(high)}"
                              if limit is low else None))
        ax.set(title=panel_title(title), xlabel=f"mean of predicted and true {name}",
               ylabel=f"predicted - true {name}")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [wrapped(label) for label in labels], loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), fontsize="small")
    return fig
