"""The model card in Markdown: what ``dinoatten card MODEL`` prints, from the model
(its classes, recipe, operating point and calibration) and its card's record (its
training data and evaluation, see :func:`make_card`)."""

import os

from sklearn.base import is_regressor

from ._markdown import to_markdown
from ._methods import METHODS, method_of
from ._operating_point import OperatingPointClassifier, describe_operating_point

# The licence of the weights of known backbone families, as published (by a part of the
# backbone's name); check the model card of the revision used.
LICENCES = (
    ("dinov3", "the DINOv3 License (Meta)"),
    ("dinov2", "Apache-2.0 (DINOv2)"),
    ("rad-dino", "MIT or the Microsoft Research License Agreement, by revision (RAD-DINO)"),
    ("biomedclip", "MIT (BiomedCLIP)"),
    ("open_clip:", "MIT (OpenAI's CLIP and LAION's weights)"),
    ("torchvision:", "BSD-3-Clause code; ImageNet-trained weights (check ImageNet's terms)"),
)

def card_markdown(model, *, card=None):
    """The model card of a fitted pipeline (``dinoatten fit``'s) in Markdown: what it
    classifies and how it calls a scan, its training data, recipe, operating point and
    calibration, evaluation, intended use and limits. The facts of the model come from
    the model; those of its training and evaluation from ``card`` (its record, see
    :func:`make_card`; ``None``: not recorded)."""
    point = model[-1] if isinstance(model[-1], OperatingPointClassifier) else None
    base = model[-1] if point is None else point.estimator_
    key = method_of(base)
    name = METHODS[key].name if key else type(base).__name__
    random = getattr(model[0], "weights", None) == "random"
    if is_regressor(base):
        sections = {"What it predicts": _predicts(base, card)}
    else:
        sections = {"What it classifies": _classifies(model[-1], point)}
    sections.update({
        "Training data": _training(card),
        "Recipe": _recipe(model, base, card),
        **({} if is_regressor(base) else
           {"Operating point and calibration": _operating_point(point)}),
        "Evaluation": _evaluation(card, name, "regression" if is_regressor(base)
                                  else "classification"),
        "Intended use and limits": _limits(card, point, random),
    })
    text = [f"# Model card: {name}", "",
            (f"Trained {card['created']} with sklearn_dinoatten {card['toolkit_version']}."
             if card else "When and with which version it was trained: not recorded.")
            + (" **Random backbone weights: a demonstration, not a model to use.**"
               if random else "")]
    for title, lines in sections.items():
        text += ["", f"## {title}", "", *lines]
    return "\n".join(text) + "\n"


def _classifies(last, point):
    classes = ", ".join(map(repr, last.classes_.tolist()))
    call = (describe_operating_point(point) if point is not None
            else "each scan called its most probable class (saved without an operating "
                 "point)")
    return [f"- Classes: {classes}"
            + (f"; positive class: {point.pos_label_!r}" if point is not None
               and point.pos_label_ is not None else "") + ".",
            f"- Output: each class's probability; {call[0].lower()}{call[1:]}.",
            "- Input: a 3D scan (NIfTI, a DICOM series, or an array in RAS order), reoriented "
            "to RAS from its header."]


def _predicts(regressor, card):
    target = card and card["training"].get("target")
    if target:
        units = f" ({target['units']})" if target.get("units") else ""
        what = (f"- Target: {target['name']}{units}, a number; in the training scans from "
                f"{target['min']:.4g} to {target['max']:.4g} (mean {target['mean']:.4g}, "
                f"SD {target['sd']:.4g}).")
    else:
        what = "- Target: a number (its name and range not recorded)."
    return [f"- A regressor ({type(regressor).__name__}).", what,
            "- Output: the predicted number per scan, uncorrected: no bias correction is "
            "applied (one needs each scan's true value).",
            "- Input: a 3D scan (NIfTI, a DICOM series, or an array in RAS order), reoriented "
            "to RAS from its header."]


def _training(card):
    if card is None:
        return ["Not recorded: this model file was saved without a card (before cards, or "
                "by `save_model` without `card=`), so `predict` cannot tell whether scans "
                "it scores were used to train it."]
    training = card["training"]
    subjects = training["n_subjects"]
    lines = [f"{training['n_scans']} scans" + (f" of {subjects} subjects" if subjects else "")
             + f": {training['scans']}.", ""]
    if training["classes"]:
        lines += ["| class | scans | subjects |", "|---|---|---|"]
        lines += [f"| {c} | {n} | {'-' if m is None else m} |"
                  for c, n, m in training["classes"]] + [""]
    if training["labels_file"]:
        lines.append(f"- Labels: `{training['labels_file']}` (SHA-256 "
                     f"`{training['labels_sha256']}`).")
    fitted_on = training["n_scans"] + training["n_validation"]
    lines.append(f"- Fingerprint: the content digests of the {fitted_on} scans its fit used "
                 + (f"({training['n_validation']} of them validation scans) "
                    if training["n_validation"] else "")
                 + "are stored with the model; `dinoatten predict` with labels says how many "
                 "of the scans it scores were used to train it.")
    return lines


def _recipe(model, base, card):
    role = "Regressor" if is_regressor(base) else "Classifier"
    lines = [f"- {role}: `{base!r}`".replace("\n", " ")]
    first = model[0]
    if hasattr(first, "backbone_info_"):
        params = first.get_params()
        weights = params["weights"]
        source = ("random (seeded)" if weights == "random" else
                  "the library's pretrained download" if weights is None else
                  f"`{os.path.basename(str(weights))}`")
        sha = card and card.get("weights_sha256")
        lines += [f"- Slice encoder: `{params['backbone']}`, weights {source}"
                  + (f" (SHA-256 `{sha}`)" if sha else "") + f"; licence: "
                  f"{_licence(params['backbone'], weights)}; fingerprint of the weights "
                  f"held `{first.backbone_info_.fingerprint[:16]}`.",
                  f"- Slices: axis {params['axis']!r}, "
                  + ("all slices" if params["n_slices"] is None else
                     f"{params['n_slices']} ({params['slice_selection']})")
                  + (f", one every {params['slice_spacing']:g} mm" if params["slice_spacing"]
                     else "") + f", crop {params['crop']!r}"
                  + (f", slices with less than {params['min_foreground']:g} foreground "
                     "dropped" if params["min_foreground"] else "") + ".",
                  f"- Backbone input: {params['image_size']} px"
                  + (f" at {params['pixel_spacing']:g} mm per pixel" if params["pixel_spacing"]
                     else " (each slice resized to fit)")
                  + f", intensities {params['normalization']!r}, feature "
                  f"{params['feature']!r}, {params['dtype']} on {params['engine']}."]
    else:
        lines.append(f"- Input: `{first!r}`".replace("\n", " "))
    return lines


def _licence(backbone, weights):
    if weights == "random":
        return "none (random weights)"
    name = str(backbone).lower()
    return next((text for part, text in LICENCES if part in name),
                "not known here: check the model card of the weights used")


def _operating_point(point):
    if point is None:
        return ["None saved: the most probable class, uncalibrated."]
    lines = [f"- {describe_operating_point(point)}."]
    if point.recalibration_ == "platt":
        lines += [f"- Platt map: calibrated = expit({a:.4g} * logit(p) {'-' if b < 0 else '+'} "
                  f"{abs(b):.4g})" for a, b in point.calibration_maps_]
    elif point.recalibration_ == "isotonic":
        lines += [f"- Isotonic map: {len(m)} knots, from p = {m[0, 0]:.4g} to {m[-1, 0]:.4g}"
                  for m in point.calibration_maps_]
    return lines


def _evaluation(card, name, task):
    evaluation = card and card["evaluation"]
    if not evaluation:
        return ["None attached. The training scans say nothing of how this model does on "
                "others: evaluate the same recipe (`dinoatten cv`) and attach it "
                "(`dinoatten fit --evaluation RUN_DIR`), or test it on an external set "
                "(`dinoatten predict MODEL LABELS.csv`)."]
    thresholds = (" Its threshold column is the mean of the thresholds each split chose on "
                  "its own training scans; this model's is above, chosen the same way on "
                  "all of them." if task == "classification" else "")
    return [f"From `{evaluation['run']}` ({evaluation['created']}), which evaluated this "
            f"recipe (checked when the card was made).{thresholds}", "",
            to_markdown([evaluation["metrics"]], evaluation["reference"],
                        skip=("fit_seconds_per_fold",), task=task),
            "", f"The run's caption: {evaluation['caption']}"]


def _limits(card, point, random):
    lines = ["- Research use. Not a medical device, and not validated for decisions about "
             "individual patients.",
             "- Validated only as the Evaluation section says; not on scans from other "
             "sites, scanners, field strengths, acquisition protocols, populations or "
             "prevalences than its training data. Test it on an external set before any "
             "use elsewhere (TRIPOD+AI).",
             "- Give it scans prepared as its training scans were: the toolkit reorients "
             "them and keeps the slices the recipe says, but does not skull-strip, register "
             "or bias-correct them."]
    if point is not None and point.pos_label_ is not None and card:
        counts = {c: n for c, n, _ in card["training"]["classes"]}
        share = counts.get(str(point.pos_label_), 0) / card["training"]["n_scans"]
        lines.append(f"- The threshold and calibration hold for a cohort like the training "
                     f"one ({share:.0%} {point.pos_label_!r}); PPV and NPV change with the "
                     "prevalence.")
    target = card and card["training"].get("target")
    if target:
        lines.append(f"- Outside the training range ({target['min']:.4g} to "
                     f"{target['max']:.4g}) its predictions are extrapolation; within it, "
                     "they regress to the training mean (see r(error, target) in the "
                     "evaluation): a delta (prediction - true value) correlates with the "
                     "true value unless corrected for it.")
    if random:
        lines.append("- Its backbone has random weights: it shows the machinery only.")
    return lines
