"""The sections of a regression run's report that classification's has no counterpart
of: predicted against true, the errors against the target, and Bland-Altman's
agreement; each a paragraph that says what the figure shows, then the figure."""

from ._html import image, paragraph
from ._regression_figures import (
    LIMITS_OF_AGREEMENT,
    agreement_figure,
    bland_altman_figure,
    error_figure,
)


def _who(run):
    return ("Marker: the fold that held the scan out; each scan is predicted by the model "
            "of that fold." if run.folds is not None else
            "One fitted model predicted every scored scan.")


def agreement_section(run):
    return paragraph(
        "One panel per method: each scan's prediction against its true value. Dotted: the "
        "identity line, where a perfect prediction lies; grey: the least-squares line of "
        "the predictions, whose slope below 1 is the regression to the mean (young "
        "overestimated, old underestimated). " + _who(run)) + image(agreement_figure(run))


def error_section(run):
    return paragraph(
        "One panel per method: each scan's error (predicted - true) against its true "
        "value, and the error's least-squares line on it; the table's r(error, target) is "
        "its correlation. A falling line is the bias of the brain-age delta: the "
        "correction of bias-corrected rows subtracts a line fitted on training scans. "
        + _who(run)) + image(error_figure(run))


def bland_altman_section(run):
    return paragraph(
        "Bland-Altman: each scan's difference (predicted - true) against the mean of the "
        "two; black: the mean difference (the bias); dashed: the limits of agreement, the "
        f"mean difference ± {LIMITS_OF_AGREEMENT} standard deviations of the differences "
        "over the scans (scans, not subjects: a subject's scans each count).") + image(
        bland_altman_figure(run))


REGRESSION_SECTIONS = {"Predicted against true": agreement_section,
                       "Errors against the target": error_section,
                       "Agreement (Bland-Altman)": bland_altman_section}
