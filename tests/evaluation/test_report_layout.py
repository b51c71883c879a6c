"""The report's figures laid out for the names and counts they get: an encoder comparison
of 7 methods x 3 encoders, and 5 classes of long names, rendered headless; every panel
keeps a readable size, nothing overlaps a neighbouring panel or leaves the figure."""

import itertools
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from sklearn_dinoatten.evaluation import METHODS, write_report

from .test_report import make_run_dir

ENCODERS = ("vit_small_patch14_dinov2", "torchvision:resnet18", "hf:microsoft/rad-dino")
COMPARISON = {f"{key}@{encoder}": f"{method.name} [{encoder}]"
              for key, method in METHODS.items() for encoder in ENCODERS}
LONG_CLASSES = ("large_lesion", "small_lesion", "no_lesion_visible",
                "haemorrhage_with_oedema", "artefact_motion_and_ringing")
MIN_PANEL_INCHES = 2.0  # an axes narrower than this is unreadable at the report's size


def drawn_figures(monkeypatch, run_dir):
    """Write the report of ``run_dir`` and return its figures, each drawn headless:
    ``(figure, renderer)`` in the report's order."""
    from sklearn_dinoatten.evaluation import _clinical_report, _html
    from sklearn_dinoatten.evaluation import _report as report

    figures, embed = [], _html.image

    def keep(fig, caption=None):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        figures.append((fig, canvas.get_renderer()))
        return embed(fig, caption)

    monkeypatch.setattr(report, "image", keep)
    monkeypatch.setattr(_clinical_report, "image", keep)
    text = open(write_report(run_dir, overlays=0)).read()
    return text, figures


def panels_of(fig):
    """The figure's panels: its visible top-level axes (not the calibration plots'
    histogram insets)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_subplotspec() is not None]


def check_layout(fig, renderer):
    """Each panel at least MIN_PANEL_INCHES a side; panels with everything around them
    (title, labels, ticks, legend) apart from one another and inside the figure; tick
    labels apart from one another; legends outside the panels inside the figure."""
    dpi, frame = fig.dpi, fig.bbox
    boxes = []
    for ax in panels_of(fig):
        extent = ax.get_window_extent(renderer)
        assert extent.width / dpi >= MIN_PANEL_INCHES, (ax.get_title(), extent.width / dpi)
        assert extent.height / dpi >= MIN_PANEL_INCHES, (ax.get_title(), extent.height / dpi)
        box = ax.get_tightbbox(renderer)
        assert (box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1 and box.y0 >= frame.y0 - 1
                and box.y1 <= frame.y1 + 1), f"{ax.get_title()!r} leaves the figure"
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            shown = [t.get_window_extent(renderer) for t in ticks if t.get_text()]
            for a, b in itertools.combinations(shown, 2):
                assert not a.overlaps(b), f"tick labels run together in {ax.get_title()!r}"
        boxes.append((ax.get_title(), box))
    for (name_a, a), (name_b, b) in itertools.combinations(boxes, 2):
        overlap = (min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0))
        assert min(overlap) <= 1, f"{name_a!r} runs into {name_b!r}"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1, "a legend is clipped"
        for title, panel in boxes:
            assert not box.overlaps(panel), f"a legend covers {title!r}"


@pytest.fixture(scope="module")
def comparison_report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("sklearn_dinoatten.evaluation._figures.N_BOOTSTRAP", 20)
        run_dir = make_run_dir(tmp_path_factory.mktemp("comparison") / "run",
                               methods=COMPARISON, n=40, reference=next(iter(COMPARISON)),
                               embedder={"axis": "axial"})
        return drawn_figures(monkeypatch, run_dir)


@pytest.fixture(scope="module")
def long_classes_report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_dir = make_run_dir(tmp_path_factory.mktemp("classes") / "run",
                               classes=LONG_CLASSES, n=50,
                               methods=dict(itertools.islice(COMPARISON.items(), 4)),
                               reference=next(iter(COMPARISON)), embedder={"axis": "axial"})
        return drawn_figures(monkeypatch, run_dir)


def test_an_encoder_comparison_of_21_methods_keeps_every_panel_readable(comparison_report):
    text, figures = comparison_report
    assert len(figures) == 6  # ROC, calibration, decision, confusion, embedding, profile
    for fig, renderer in figures:
        check_layout(fig, renderer)
    roc = figures[0][0]
    assert len(panels_of(roc)) == len(COMPARISON)
    # a few columns a table, none scrolling sideways (test_report_rendering.py: in Chromium)
    heads = re.findall(r'<table class="metrics"><tr>(.*?)</tr>', text)
    assert len(heads) >= 3 and 'class="scroll"' not in text
    assert all(head.count("<th>") <= 6 for head in heads)


def test_five_long_class_names_stay_apart_and_inside(long_classes_report):
    _, figures = long_classes_report
    assert len(figures) == 3  # confusion, embedding, profile (ROC and calibration: two classes)
    for fig, renderer in figures:
        check_layout(fig, renderer)
    confusion, embedding = figures[0][0], figures[1][0]
    names = [t.get_text().replace("\n", "") for t in panels_of(confusion)[0].get_xticklabels()]
    assert names == list(LONG_CLASSES)  # wrapped, not cut
    legend = [t.get_text().replace("\n", "") for t in embedding.legends[0].get_texts()]
    assert legend == list(LONG_CLASSES)
