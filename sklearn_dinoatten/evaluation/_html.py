"""The pieces of the HTML report: paragraphs, notes and figures embedded as PNG."""

import base64
import html
import io

import matplotlib.pyplot as plt


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
    body = "".join("<tr>" + "".join(f"<td>{_with_ci_below(cell)}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f'<table class="metrics"><tr>{head}</tr>{body}</table>'


def _with_ci_below(text):
    value, bracket, interval = text.partition(" [")
    if not bracket or not interval.endswith("]"):
        return html.escape(text)
    return f'{html.escape(value)}<br><span class="ci">[{html.escape(interval)}</span>'


def image(fig, caption=None):
    """The figure as an embedded PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # pyplot-managed figures (from explain) leak otherwise
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure>{caption}<img alt="figure" src="data:image/png;base64,{data}"></figure>'
