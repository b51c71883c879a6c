"""The metrics as text: the Markdown tables of ``metrics.md``, ``per_class.md`` and
``subgroups.md`` and the cells of the report's tables, each value as one function
writes it."""

import numpy as np

# The metrics tables, by title: a few columns each, so that every table fits a page
METRIC_TABLES = {
    "Discrimination": ("auc", "delong_p", "fit_seconds_per_fold"),
    "Operating point": ("threshold", "sensitivity", "specificity", "ppv", "npv"),
    "Decisions at the operating point": ("accuracy", "balanced_accuracy", "f1", "fnr"),
    "Calibration": ("brier", "calibration_intercept", "calibration_slope", "ece"),
}
HEADERS = {"method": "method", "threshold": "threshold", "auc": "AUC", "sensitivity": "sens.",
           "specificity": "spec.", "ppv": "PPV", "npv": "NPV", "accuracy": "acc.",
           "balanced_accuracy": "bal. acc.", "f1": "F1", "fnr": "FNR",
           "fit_seconds_per_fold": "fit s/fold", "delong_p": "DeLong p", "brier": "Brier",
           "calibration_intercept": "cal. intercept", "calibration_slope": "cal. slope",
           "ece": "ECE"}


NO_SPREAD = " \u2020"  # a dagger after an interval the bootstrap could not spread
NO_SPREAD_NOTE = ("\u2020 The bootstrap could not spread this interval: every resample gave "
                  "the same value (too few scans, or events, to resample). It is no sign of "
                  "certainty.")


def metric_text(row, column):
    """A metrics row's value as the tables show it: 3 decimals (p-values 3 significant
    digits, trailing zeros kept; seconds 1), ``[low, high]`` after it where the row has
    its CI (with :data:`NO_SPREAD` where the two are one value), ``-`` for NaN or empty."""
    def number(value, spec):
        value = float(value) if value not in ("", None) else np.nan
        return "-" if np.isnan(value) else format(value, spec)

    spec = {"delong_p": "#.3g", "fit_seconds_per_fold": ".1f"}.get(column, ".3f")
    text = number(row.get(column), spec)
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if text != "-" and low not in (None, "") and not np.isnan(float(low)):
        text += f" [{number(low, spec)}, {number(high, spec)}]"
        text += NO_SPREAD if float(low) == float(high) else ""
    return text


def no_spread_note(cells):
    """:data:`NO_SPREAD_NOTE` where one of the texts ``cells`` has the mark, else ''."""
    return NO_SPREAD_NOTE if any(NO_SPREAD in cell for cell in cells) else ""


PER_CLASS_KEYS = ("class", "method")  # the columns that name a row of the per-class table


def to_markdown(rows, reference_name, keys=("method",), skip=()):
    """The metrics tables in Markdown, one per :data:`METRIC_TABLES` entry (each value
    with its 95 % CI where it has one), rows named by the columns ``keys``, without the
    columns ``skip``; NaN shows as ``-``."""
    tables = []
    for columns in METRIC_TABLES.values():
        columns = [c for c in columns if c not in skip]
        if not columns:
            continue
        header = [*keys] + [HEADERS[c] + (f" vs {reference_name}" if c == "delong_p"
                                          else "") for c in columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([str(r[k]) for k in keys]
                                    + [metric_text(r, c) for c in columns])
                  + " |" for r in rows]
        tables.append("\n".join(lines))
    note = no_spread_note(metric_text(r, c) for r in rows
                          for columns in METRIC_TABLES.values() for c in columns if c in r)
    return "\n\n".join(tables + ([note] if note else []))


# The subgroup metrics, by the report's table of them
SUBGROUP_TABLES = {"AUC and operating point": ("auc", "threshold", "sensitivity",
                                               "specificity"),
                   "Calibration": ("brier", "calibration_intercept", "calibration_slope")}
SUBGROUP_METRICS = tuple(c for columns in SUBGROUP_TABLES.values() for c in columns)


def subgroup_cells(rows):
    """The subgroup table as text cells: its header and a row per subgroup level and
    method (scans, subjects, AUC, the operating point, calibration, note)."""
    columns = [c for c in SUBGROUP_METRICS if any(metric_text(r, c) != "-" for r in rows)]
    header = ["subgroup", "level", "scans", "subjects", "method",
              *(HEADERS[c] for c in columns), "note"]
    cells = []
    for r in rows:
        subjects = r.get("n_subjects")
        cells.append([str(r["subgroup"]), str(r["level"]), str(r["n_scans"]),
                      "-" if subjects in (None, "", "None") else str(subjects),
                      str(r["method"]), *(metric_text(r, c) for c in columns),
                      str(r.get("note") or "")])
    return header, cells


def subgroups_markdown(rows):
    """The subgroup table in Markdown (see :func:`subgroup_cells`)."""
    header, cells = subgroup_cells(rows)
    note = no_spread_note(cell for row in cells for cell in row)
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(row) + " |" for row in cells]
                     + (["", note] if note else []))
