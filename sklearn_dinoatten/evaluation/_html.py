"""The pieces of the HTML report: paragraphs, notes and figures embedded as PNG."""

import base64
import html
import io
import re

import matplotlib.pyplot as plt

# A metric's text with its interval: "0.812 [0.701, 0.902]", maybe marked " \u2020"
INTERVAL = re.compile(r"(-?[\d.]+) (\[-?[\d.]+, -?[\d.]+\](?: \u2020)?)")
NUMBER = re.compile(r"-?[\d.]+|\u2013|reference")  # a value, a missing one, DeLong's own


def note(text):
    """A note (a section skipped, and why)."""
    return f'<p class="note">{html.escape(text)}</p>'


def paragraph(text):
    return f"<p>{html.escape(text)}</p>"


def metrics_table(header, rows):
    """A metrics table: ``header`` and ``rows`` of cell texts (a metric's 95 % CI,
    ``"0.812 [0.701, 0.902]"``, goes on a line of its own, so that the table stays
    narrow enough for the page, on screen and in print)."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f'<table class="metrics"><tr>{head}</tr>{body}</table>'


def _cell(text):
    """A table cell: a name, which wraps, or a number (class ``n``), which does not, with
    its interval (``[low, high]`` after it) on a line below."""
    found = INTERVAL.fullmatch(text)
    if found is not None:
        value, interval = found.groups()
        return (f'<td class="n">{html.escape(value)}<br><span class="ci">'
                f"{html.escape(interval)}</span></td>")
    if NUMBER.fullmatch(text):
        return f'<td class="n">{html.escape(text)}</td>'
    return f"<td>{html.escape(text)}</td>"  # a name, which may hold brackets


def image(fig, caption=None):
    """The figure as an embedded PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # pyplot-managed figures (from explain) leak otherwise
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure>{caption}<img alt="figure" src="data:image/png;base64,{data}"></figure>'
