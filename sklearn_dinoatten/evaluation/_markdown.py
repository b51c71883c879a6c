"""The metrics as text: the Markdown tables of ``metrics.md``, ``per_class.md`` and
``subgroups.md`` and the cells and headers of the report's tables, each value as one
function writes it, the tables and their columns as the metric registry has them."""

import numpy as np

from ._registry import METRICS, TABLES, metric_format, table_columns

NO_SPREAD = " \u2020"  # a dagger after an interval the bootstrap could not spread
NO_SPREAD_NOTE = ("\u2020 The bootstrap could not spread this interval: every resample gave "
                  "the same value (too few scans, or events, to resample). It is no sign of "
                  "certainty.")


def metric_text(row, column):
    """A metrics row's value as the tables show it, in its metric's format (3 decimals;
    p-values 3 significant digits, trailing zeros kept; seconds 1), ``[low, high]`` after
    it where the row has its CI (with :data:`NO_SPREAD` where the two are one value),
    ``-`` for NaN or empty."""
    def number(value, spec):
        value = float(value) if value not in ("", None) else np.nan
        if np.isnan(value):
            return "-"
        text = format(value, spec)
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"

    spec = metric_format(column)
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


def header(column, reference_name):
    """A column's header in the tables: its metric's (DeLong's test naming the method it
    compares with), or the column's name for a column that names a row."""
    if column not in METRICS:
        return column
    return METRICS[column].header + (f" vs {reference_name}"
                                     if METRICS[column].compare else "")


def to_markdown(rows, reference_name, keys=("method",), skip=(), task="classification"):
    """The metrics tables in Markdown, one per table of ``task`` in the registry (each
    value with its 95 % CI where it has one), rows named by the columns ``keys``,
    without the columns ``skip``; NaN shows as ``-``."""
    tables, cells = [], []
    for table in TABLES[task]:
        columns = [c for c in table_columns(table) if c not in skip]
        if not columns:
            continue
        names = [*keys, *columns]
        lines = ["| " + " | ".join(header(c, reference_name) for c in names) + " |",
                 "|" + "---|" * len(names)]
        for r in rows:
            texts = [metric_text(r, c) for c in columns]
            cells += texts
            lines.append("| " + " | ".join([*(str(r[k]) for k in keys), *texts]) + " |")
        tables.append("\n".join(lines))
    note = no_spread_note(cells)
    return "\n\n".join(tables + ([note] if note else []))


def subgroup_metrics():
    """The metrics the subgroup tables show, in the registry's order."""
    return table_columns(*(t for tables in TABLES.values() for t in tables), subgroup=True)


def subgroup_cells(rows):
    """The subgroup table as text cells: its header and a row per subgroup level and
    method (scans, subjects, the subgroup metrics of the registry, note)."""
    columns = [c for c in subgroup_metrics() if any(metric_text(r, c) != "-" for r in rows)]
    header = ["subgroup", "level", "scans", "subjects", "method",
              *(METRICS[c].header for c in columns), "note"]
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
