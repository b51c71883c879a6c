"""The report as a browser shows and prints it: Chromium, headless, lays out a report of
21 long-named methods with every metric and its interval and a subgroup column; no table
leaves the page, at 1400 px, at the width of a printed A4 page, or in the PDF (before:
the metrics table stopped after NPV on screen, and after "spec." in print)."""

import json
import re
import shutil
import subprocess

import pytest

from sklearn_dinoatten.evaluation import metric_columns, read_run, write_report, write_run

from .test_report import make_run_dir
from .test_report_layout import COMPARISON

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's "
                                "chromium package: .ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
# Written into the page: where the body and each table lie, and the page's width
MEASURE = """<script>window.addEventListener("load", () => {
  const body = document.body.getBoundingClientRect();
  const tables = [...document.querySelectorAll("table")].map(t => {
    const r = t.getBoundingClientRect();
    return {left: r.left, right: r.right, overflows: t.scrollWidth > t.clientWidth + 1,
            head: t.rows[0].innerText};
  });
  document.body.setAttribute("data-layout", JSON.stringify({
    body: [body.left, body.right], width: window.innerWidth,
    page: document.documentElement.scrollWidth, tables}));
});</script>"""


def full_row(method):
    """A metrics row with every value and interval, each as wide as it can be."""
    row = {column: 0.123 for column in metric_columns()}
    row.update({c: 0.001 for c in metric_columns() if c.endswith("_ci_low")})
    row.update({c: 0.999 for c in metric_columns() if c.endswith("_ci_high")})
    row.update(method=method, delong_p=0.0123, calibration_intercept=-10.123)
    return row


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = make_run_dir(tmp_path_factory.mktemp("rendering") / "run", methods=COMPARISON,
                          n=40, embedder={"axis": "axial"})
    run = read_run(folder)
    run.metrics = [full_row(key) for key in COMPARISON]
    run.subgroups = [{**full_row(key), "subgroup": "scanner site", "level": level,
                      "n_scans": 20, "n_subjects": 10, "note": "too small to say anything"}
                     for level in ("Hospital A (Siemens Prisma 3T)", "B") for key in COMPARISON]
    write_run(folder, run)
    path = write_report(folder, overlays=0)
    measured = folder / "measured.html"
    measured.write_text(open(path).read().replace("</body>", MEASURE + "</body>"))
    return path, measured


def layout(page, width):
    """The layout Chromium gives ``page`` in a window ``width`` pixels wide."""
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={page.parent / f'profile{width}'}",
         f"--window-size={width},1000", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-layout="([^"]*)"', result.stdout)
    assert found, result.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.mark.parametrize("width", [1400, 794], ids=["1400 px", "A4 page width"])
def test_every_table_fits_the_page(report, width):
    _, measured = report
    shown = layout(measured, width)
    assert shown["page"] <= shown["width"]  # nothing to scroll sideways
    assert len(shown["tables"]) == 7  # the header, 4 metrics and 2 subgroup tables
    for table in shown["tables"]:
        assert table["right"] <= shown["body"][1] + 1 and not table["overflows"], table


def test_every_column_is_printed(report, tmp_path):
    path, _ = report
    pdf = tmp_path / "report.pdf"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    f"--print-to-pdf={pdf}", "--no-pdf-header-footer", f"file://{path}"],
                   capture_output=True, timeout=120, check=True)
    if shutil.which("pdftotext") is None:
        pytest.skip("needs pdftotext (Debian's poppler-utils) to read the PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for header in ("DeLong", "s/fold", "NPV", "FNR", "bal.", "ECE", "slope", "intercept"):
        assert header in text, header  # headers may wrap: one word of each
    last = next(iter(COMPARISON.values()))  # a long name's interval, whole, in print
    assert "[0.001, 0.999]" in text and last.split(" [")[0] in text
