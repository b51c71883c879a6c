"""The report's attention overlays: the slice attention of the reference method times
the backbone's in-plane attention, drawn on the most salient slices of scans predicted
confidently, right and wrong (a regression's: of the highest and lowest predictions)."""

import os

import numpy as np

from ..embedding import DinoSliceEmbedder
from ..embedding.backbones import ADAPTER_PREFIXES
from ..explain import plot_saliency, scan_saliency
from ..volumes import axes_of
from ._html import image, note, paragraph
from ._runs import embedder_of

CONFIDENT = 0.8  # overlays show scans whose predicted class has at least this probability
OVERLAY_SLICES = 2  # the most salient slices shown per overlay scan


def say(verbose, text):
    if verbose:
        print(text, flush=True)


def overlay_section(run, overlays, verbose):
    if overlays == 0:
        return note("Skipped: no overlays were asked for (overlays=0).")
    key = method_with(run, "attention_")
    if key is None or "n_slices" not in run.outputs:
        return note("Skipped: no method of this run has slice attention.")
    params = embedder_of(run.info, key)
    if not params:
        return note("Skipped: run.json has no slice embedder to compute in-plane attention.")
    if str(params.get("backbone")).startswith(ADAPTER_PREFIXES):
        return note(f"Skipped: in-plane attention is drawn for timm vision transformers; "
                     f"{run.names[key]} ran on {params['backbone']!r}.")
    if any(p.startswith("#") for p in run.paths):
        return note("Skipped: overlays need scan files; this run was made from arrays.")
    regression = run.task == "regression"
    groups = (_extreme_scans(run, key, overlays) if regression
              else _overlay_scans(run, key, overlays))
    paths = {i: _scan_path(run, run.paths[i]) for shown, _ in groups.values() for i in shown}
    which = ("with the highest and the lowest predictions" if regression else
             f"it predicted with a probability of at least {CONFIDENT} (p: of the predicted "
             "class)")
    parts = [paragraph(
        f"Slice attention of {run.names[key]} times the backbone's in-plane attention (CLS "
        f"to patches), on the {OVERLAY_SLICES} most salient slices of scans {which}. Left: "
        "the slice; right: the saliency over the scan's foreground (background untinted). "
        "Colour scale: saliency relative to its maximum over the scan's foreground. "
        "Letters: the patient's left/right, posterior/anterior, inferior/superior, in the "
        "scan reoriented to RAS; slice indices count from 0.")]
    embedder = _overlay_embedder(params, list(paths.values())) if paths else None
    done = 0
    for word, (shown, total) in groups.items():
        parts += _group_heading(run, word, shown, total)
        for i in shown:
            done += 1
            say(verbose, f"overlay {done}/{len(paths)}: {paths[i]}")
            parts.append(image(_overlay_figure(run, key, embedder, i, paths[i]),
                              _overlay_caption(run, key, i, paths[i])))
    return "".join(parts)


def _group_heading(run, word, shown, total):
    """The heading and sentence of a group of overlays."""
    if run.task == "regression":
        each = " (one scan per subject)" if run.groups is not None else ""
        return [f"<h3>The {word} predictions</h3>",
                paragraph(f"The {len(shown)} scans of the {word} predictions{each}.")]
    each = " (the most confident of each subject)" if run.groups is not None else ""
    return [f"<h3>Confidently {word}</h3>", paragraph(
        f"{len(shown)} of the {total} scans predicted {word}ly with p ≥ {CONFIDENT}{each}."
        if total else f"No scan was predicted {word}ly with p ≥ {CONFIDENT}.")]


def _extreme_scans(run, key, overlays):
    """``{"highest": (scans, n), "lowest": (scans, n)}``: a regression's scans of the
    highest and the lowest predictions of method ``key``, half of ``overlays`` each (the
    highest take the odd one), one scan a subject in grouped runs."""
    order = np.argsort(-run.predictions[key], kind="stable")
    if run.groups is not None:  # each subject's highest, then each one's lowest
        highest = order[np.sort(np.unique(run.groups[order], return_index=True)[1])]
        reverse = order[::-1]
        lowest = reverse[np.sort(np.unique(run.groups[reverse], return_index=True)[1])]
    else:
        highest, lowest = order, order[::-1]
    n_high = min(len(highest), overlays - overlays // 2)
    shown_high = set(highest[:n_high].tolist())
    low = [i for i in lowest.tolist() if i not in shown_high][: overlays - n_high]
    return {"highest": (highest[:n_high], len(run.labels)), "lowest": (np.array(low, int),
                                                                        len(run.labels))}


def _overlay_embedder(params, paths):
    """A slice embedder of the run, fitted again (``params``: from run.json)."""
    params = {k: tuple(v) if isinstance(v, list) else v  # JSON made its tuples lists
              for k, v in params.items()}
    return DinoSliceEmbedder(**{**params, "verbose": 0}).fit(paths)


def _overlay_figure(run, key, embedder, i, path):
    weights = run.outputs[f"attention_{key}"][i, : run.outputs["n_slices"][i]]
    saliency = scan_saliency(embedder, path, weights)
    return plot_saliency(path, saliency, axis=axes_of(embedder.axis)[0],
                         n_slices=OVERLAY_SLICES)


def _overlay_caption(run, key, i, path):
    root = (run.info.get("data") or {}).get("root")
    inside = os.path.relpath(path, root) if root else os.pardir
    name = path if inside.startswith(os.pardir) else inside  # shorter under the data root
    predicted = run.pred[key][i]
    if run.task == "regression":
        said = f"{name}: true {run.labels[i]:.4g}, predicted {predicted:.4g}"
    else:
        p = run.proba[key][i, run.classes.index(predicted)]
        said = f"{name}: true {run.labels[i]}, predicted {predicted}, p({predicted}) = {p:.2f}"
    return (said
            + (". Random backbone weights: the in-plane attention, a flat tint here, carries "
               "no information; only which slices are lit is the model's."
               if run.info.get("random_weights") else ""))


def _scan_path(run, path):
    """The file of a scan of predictions.csv: its path, else (runs that stored relative
    paths) that path under the data root."""
    path, root = str(path), (run.info.get("data") or {}).get("root")
    if not os.path.exists(path) and not os.path.isabs(path) and root:
        path = os.path.join(root, path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Scan file {path!r} of the run's predictions.csv does not exist, so its "
            "attention overlay cannot be drawn; pass overlays=0 (--overlays 0) to skip "
            "the overlays.")
    return path


def _overlay_scans(run, key, overlays):
    """``{"right": (scans, n), "wrong": (scans, n)}``: of the ``n`` scans predicted
    rightly (wrongly) with a probability of at least ``CONFIDENT``, those to show, up to
    ``overlays`` in all, half right and half wrong where possible; within each, the
    classes take turns, most confident first; one scan a subject in grouped runs (its
    most confident), so that two overlays are not one subject's two sessions."""
    pred = run.pred[key]
    confidence = run.proba[key][np.arange(len(pred)), [run.classes.index(c) for c in pred]]
    order = np.argsort(-confidence, kind="stable")
    order = order[confidence[order] >= CONFIDENT]
    if run.groups is not None:
        order = order[np.sort(np.unique(run.groups[order], return_index=True)[1])]
    correct = pred[order] == run.labels[order]
    right, wrong = _classes_in_turn(run, order[correct]), _classes_in_turn(run, order[~correct])
    n_wrong = min(len(wrong), max(overlays // 2, overlays - len(right)))
    return {"right": (right[: overlays - n_wrong], len(right)),
            "wrong": (wrong[:n_wrong], len(wrong))}


def _classes_in_turn(run, scans):
    """``scans`` reordered so that their true classes alternate, keeping each class's order."""
    rank = np.zeros(len(scans))
    for c in run.classes:
        mine = run.labels[scans] == c
        rank[mine] = np.arange(mine.sum())
    return scans[np.argsort(rank, kind="stable")]


def method_with(run, prefix):
    """The reference method if outputs.npz has ``prefix + key`` for it, else the first
    method that has, else None."""
    keys = [run.reference, *run.names]
    return next((k for k in keys if prefix + k in run.outputs), None)
