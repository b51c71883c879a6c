"""The report's sections on what a clinician acts on: calibration plots, decision curves
and the subgroup table, with their figures."""

import html

import numpy as np
from sklearn.calibration import calibration_curve

from ._clinical import (
    CALIBRATION_BINS,
    calibration_intercept_slope,
    net_benefit,
    treat_all_net_benefit,
)
from ._figures import panel_height, panel_title, panels
from ._html import image, metrics_table, note, paragraph
from ._markdown import metric_text, no_spread_note, subgroup_metrics
from ._registry import METRICS, SUBGROUP_TABLES, table_columns
from ._subgroups import MIN_PER_CLASS, MIN_SCANS

RISK_GRID = np.linspace(0.01, 0.99, 99)  # threshold probabilities of the decision curves


def calibration_figure(run):
    """One panel per method: observed share of positives against the mean predicted
    probability in equal-width bins, the logistic recalibration curve, the diagonal of
    perfect calibration, and below, a histogram of the predicted probabilities."""
    truth = run.labels == run.positive
    column = run.classes.index(run.positive)
    fig, axes = panels(len(run.names), 3.6,  # a legend of three one-line entries
                       panel_height(4.3, 3, run.names.values()))
    grid = np.linspace(0.001, 0.999, 200)
    for i, (ax, (key, name)) in enumerate(zip(axes, run.names.items(), strict=True)):
        score = run.proba[key][:, column]
        observed, predicted = calibration_curve(truth, score, n_bins=CALIBRATION_BINS)
        intercept, slope = calibration_intercept_slope(truth, score)
        color = f"C{i % 10}"
        ax.plot([0, 1], [0, 1], ":", color="black", lw=0.8, label="perfect calibration")
        ax.plot(predicted, observed, "o-", color=color, lw=1.5, ms=4,
                label=f"{CALIBRATION_BINS} equal-width bins")
        if np.isfinite([intercept, slope]).all():
            logits = np.log(grid / (1 - grid))
            ax.plot(grid, 1 / (1 + np.exp(-(intercept + slope * logits))), color=color,
                    lw=1, alpha=0.6, label=f"logistic (slope {slope:.2f})")
        histogram = ax.inset_axes([0, 0, 1, 0.18], sharex=ax)
        histogram.hist(score, bins=20, range=(0, 1), color=color, alpha=0.5)
        histogram.set_axis_off()
        ax.set(title=panel_title(name), xlim=(0, 1), ylim=(-0.25, 1.02),
               yticks=np.linspace(0, 1, 6),  # below 0: the histogram
               xlabel="Predicted probability", ylabel="Observed share positive")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small")
    fig.suptitle(f"Positive class: {run.positive}")
    return fig


def decision_curve_figure(run):
    """One panel per method: its net benefit over threshold probabilities, against
    calling every scan positive (treat all) and none (treat none, 0)."""
    truth = run.labels == run.positive
    column = run.classes.index(run.positive)
    everyone = treat_all_net_benefit(truth, RISK_GRID)
    prevalence = truth.mean()
    fig, axes = panels(len(run.names), 3.6,  # a legend of one row
                       panel_height(3.8, 1, run.names.values()))
    for i, (ax, (key, name)) in enumerate(zip(axes, run.names.items(), strict=True)):
        ax.plot(RISK_GRID, net_benefit(truth, run.proba[key][:, column], RISK_GRID),
                color=f"C{i % 10}", lw=2, label="the model")
        ax.plot(RISK_GRID, everyone, color="0.45", lw=1, label="treat all")
        ax.axhline(0, color="black", lw=0.8, ls=":", label="treat none")
        ax.set(title=panel_title(name), xlim=(0, 1), ylim=(-0.05, prevalence + 0.05),
               xlabel="Threshold probability", ylabel="Net benefit (per scan)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small", ncols=3)
    fig.suptitle(f"Positive class: {run.positive}; prevalence {prevalence:.3f}")
    return fig


def _binary(run, what):
    """A note when ``what`` does not apply to the run (more than two classes, one)."""
    if len(run.classes) != 2:
        return note(f"Skipped: {what} are drawn for two classes; this run has "
                    f"{len(run.classes)} (the metrics tables have the multi-class Brier "
                    "score and, for each class against the rest, its Brier score, "
                    "calibration intercept, slope and ECE).")
    truth = run.labels == run.positive
    if truth.all() or not truth.any():
        return note("Skipped: every scan has the same label.")
    return None


def calibration_section(run):
    return _binary(run, "calibration plots") or paragraph(
        f"One panel per method, positive class {run.positive}: the share of positive scans "
        f"(y) against the mean predicted probability (x) in {CALIBRATION_BINS} equal-width "
        "bins of the probability (empty bins left out); the thin curve is the logistic "
        "recalibration fit, whose intercept and slope are in the calibration table; "
        "dotted, perfect calibration; at the bottom, a histogram of the predicted "
        "probabilities. Points below the diagonal: the model overestimates the risk."
    ) + image(calibration_figure(run))


def decision_section(run):
    return _binary(run, "decision curves") or paragraph(
        "Decision curves (Vickers and Elkin 2006), one panel per method: the net benefit "
        "of calling positive the scans whose probability is at least a threshold "
        "probability t, true positives less false positives weighted by t / (1 - t), per "
        "scan, against treating all scans as positive (grey) and none (dotted, 0). A "
        "model is worth using at the thresholds where its curve lies above both; t is "
        "the risk at which one would act, so read the curve at the thresholds that fit "
        "the clinical decision."
    ) + image(decision_curve_figure(run))


def subgroup_section(run):
    if not run.subgroups:
        return note("No subgroups: give --subgroups with columns of the labels CSV "
                    "(e.g. site,sex) to repeat the metrics for each of their levels.")
    rows = [dict(row, method=run.names.get(row["method"], row["method"]))
            for row in run.subgroups]  # display names, as the metrics table
    said = (f"A level with fewer than {MIN_SCANS} scans is too small to say anything, and "
            "says so." if run.task == "regression" else
            "at each method's operating point (threshold: the mean of its folds', each scan "
            "called at its own fold's). A level with fewer than "
            f"{MIN_SCANS} scans or {MIN_PER_CLASS} of a class is too small to say anything, "
            "and says so; one without a class has no metrics.")
    text = paragraph(
        "The metrics again for each level of each subgroup column (scans of the level only; "
        "95 % CIs as in the metrics table, of subjects in grouped runs)"
        + (". " if run.task == "regression" else ", ") + said)
    for subgroup in dict.fromkeys(str(r["subgroup"]) for r in rows):
        text += _subgroup_tables(subgroup, [r for r in rows if str(r["subgroup"]) == subgroup])
    return text


def _subgroup_tables(subgroup, rows):
    """The tables of one subgroup column: its levels (with their scans and subjects) by
    method, a few metrics each, then the levels' notes."""
    text = f"<h3>{html.escape(subgroup)}</h3>"
    for title, tables in SUBGROUP_TABLES.items():
        columns = [c for c in table_columns(*tables, subgroup=True)
                   if any(metric_text(r, c) != "-" for r in rows)]
        if columns:
            cells = [[_level(r), str(r["method"]), *(metric_text(r, c) for c in columns)]
                     for r in rows]
            text += f"<h4>{title}</h4>" + metrics_table(
                ["level", "method", *(METRICS[c].header for c in columns)], cells)
    notes = [*dict.fromkeys(f"{r['level']}: {r['note']}" for r in rows if r.get("note")),
             no_spread_note(metric_text(r, c) for r in rows for c in subgroup_metrics())]
    return text + "".join(note(n) for n in notes if n)


def _level(row):
    """A subgroup level with its scans and subjects: ``A (16 scans, 8 subjects)``."""
    subjects = row.get("n_subjects")
    return f"{row['level']} ({row['n_scans']} scans" + (
        "" if subjects in (None, "", "None") else f", {subjects} subjects") + ")"
