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


def scrolling_table(head, body):
    """A metrics table of header cells ``head`` and rows ``body`` (HTML), scrolling
    sideways where it is wider than the page."""
    return (f'<div class="scroll"><table class="metrics"><tr>{head}</tr>{body}</table>'
            "</div>")


def image(fig, caption=None):
    """The figure as an embedded PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # pyplot-managed figures (from explain) leak otherwise
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure>{caption}<img alt="figure" src="data:image/png;base64,{data}"></figure>'
