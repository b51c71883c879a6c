"""The options several ``dinoatten`` commands share, and argparse's number types.

Options are named after the Python parameters they set (``--max-epochs``,
``--random-state``); shorter names people type (``--epochs``, ``--seed``) are aliases.
"""

import argparse

from ..utils._options import (
    AXIS,
    AXIS_CHOICES,
    BACKBONE,
    BATCH_SIZE,
    BIAS_CORRECTIONS,
    BIDS_SUFFIX,
    CLASS_WEIGHTS,
    CROP,
    CROPS,
    DEVICE,
    DTYPE,
    DTYPES,
    ENGINE,
    ENGINES,
    IMAGE_SIZE,
    MAX_EPOCHS,
    MIN_FOREGROUND,
    N_READERS,
    NO_CLASS_WEIGHT,
    RANDOM_STATE,
    RECALIBRATIONS,
    RESNET_DEPTH,
    RESNET_DEPTHS,
    RESNET_WIDTH,
    TASKS,
    THRESHOLD,
    VOLUME_SIDE,
)


def add_evaluation_arguments(sub):
    """How an evaluation scores: the operating point and the subgroups."""
    sub.add_argument("--subgroups", default=None, metavar="COLUMNS",
                     help="columns of the labels CSV (e.g. site,sex): the metrics are "
                          "repeated for each of their levels, in subgroups.csv")


def add_task_argument(sub):
    """What the label column holds: classes, or a number (cv and fit)."""
    sub.add_argument("--task", choices=TASKS, default=None,
                     help="classification: the labels are classes; regression: they are "
                          "numbers (an age, a score), predicted by regressors (default: "
                          "regression where the label column holds numbers, most of them "
                          "distinct, said in one line; else classification)")
    sub.add_argument("--units", default=None,
                     help="regression: the target's units (e.g. years), said with its name "
                          "in the tables and the model card (default: none)")


def add_bias_correction_argument(sub):
    """The bias correction of a regression's errors (cv)."""
    sub.add_argument("--bias-correction", choices=BIAS_CORRECTIONS, default=None,
                     help="regression: also report each method's predictions corrected for "
                          "the regression to the mean of its errors (the brain-age delta's "
                          "bias), by a line of the error on the target fitted on each "
                          "split's training side only; beside the uncorrected figures "
                          "(default: none)")


def add_operating_point_arguments(sub):
    """The positive class, the operating point and the recalibration (cv and fit)."""
    sub.add_argument("--pos-label",
                     help="the positive class of two (needed unless the labels are 0/1 or "
                          "false/true): AUC, sensitivity, F1, the ROC and the threshold are "
                          "for it")
    sub.add_argument("--threshold", type=threshold, default=THRESHOLD,
                     help="the operating point of two classes: a scan is positive when its "
                          "probability is at least it; a number, or youden, "
                          "sensitivity=0.9, specificity=0.9 (chosen on the val scans of a "
                          "split, else on out-of-fold predictions of the training scans by "
                          "an inner cross-validation; never on the scans scored) "
                          f"(default: {THRESHOLD})")
    sub.add_argument("--recalibrate", dest="recalibration", choices=RECALIBRATIONS,
                     default=None,
                     help="recalibrate the probabilities (platt: Platt scaling on the "
                          "logit; isotonic: isotonic regression) on the same scans as the "
                          "threshold; not applied, with a warning, where the fit would "
                          "reverse the scores' order (default: none)")


def threshold(text):
    """An argparse type: a threshold rule (see ``evaluation.check_threshold``)."""
    from ..evaluation import check_threshold

    try:
        return check_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("threshold ")) from None


def integer(low):
    """An argparse type: an integer >= ``low`` (argparse names the option in its error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}; got {value}")
        return value

    return parse


def auto_or(parse):
    """An argparse type: ``"auto"``, or a value of the type ``parse``."""
    def parse_or_auto(text):
        if text == "auto":
            return text
        try:
            return parse(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(
                f"must be 'auto' or {str(error).removeprefix('must be ')}") from None

    return parse_or_auto


def positive(text):
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text}")
    return value


def add_verbosity_arguments(sub):
    """-v (more, repeatable) and -q (no progress): ``args.verbose``, ``args.quiet``."""
    group = sub.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more output: -v adds the classifiers' epoch-by-epoch log")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="no progress output: results, warnings and errors only")


def add_data_arguments(sub):
    """The labelled scans: DATA, the labels file and its columns, a BIDS dataset's scans."""
    sub.add_argument("data", metavar="DATA",
                     help="folder of scans (NIfTI files, DICOM series) with labels.csv; or "
                          "a BIDS dataset without "
                          "one: its scans of --bids-suffix, labelled by the column "
                          "--label-column of participants.tsv (of a subject's sessions.tsv "
                          "first, where it has the column), grouped by subject")
    sub.add_argument("--labels", help="the labels CSV (default: DATA/labels.csv)")
    add_bids_suffix(sub)
    add_label_columns(sub)


def add_path_column(sub):
    sub.add_argument("--path-column", default="path",
                     help="column of scan paths, relative to the CSV's folder (default: path)")


def add_bids_suffix(sub):
    sub.add_argument("--bids-suffix", default=BIDS_SUFFIX, metavar="SUFFIX",
                     help="a BIDS dataset's scans: the files named ..._SUFFIX.nii[.gz] "
                          "(T1w, T2w, FLAIR...), each session and run one scan (default: "
                          f"{BIDS_SUFFIX})")


def add_label_columns(sub, split=True, label="label"):
    """The columns of a labels CSV; ``label``: the label column's default (its words)."""
    add_path_column(sub)
    sub.add_argument("--label-column", default="label" if label == "label" else None,
                     help=f"column of labels (default: {label})")
    sub.add_argument("--group-column",
                     help="column of subject ids for grouped folds and statistics clustered "
                          "by subject (default: subject, if present; none: ignore it)")
    if split:
        sub.add_argument("--split-column",
                         help="column of train/val/test for a held-out test set instead of "
                              "cross-validation (default: split, if present; none: ignore it)")


def add_embedding_arguments(sub, cache_required=False):
    """The slice embedder's settings."""
    sub.add_argument("--backbone", default=BACKBONE,
                     help="timm model name, hf:<hub id or folder>, open_clip:<model>[@tag] or "
                          "torchvision:<name>; cv and embed take several, a,b,c, and compare "
                          f"or cache each (default: {BACKBONE})")
    sub.add_argument("--weights", default=None,
                     help="a local checkpoint (.pth, .safetensors), 'random' (demos, tests), "
                          "or by default the pretrained download (needs a network)")
    sub.add_argument("--image-size", type=integer(1), default=IMAGE_SIZE,
                     help=f"backbone input side, a multiple of the patch size (default: "
                          f"{IMAGE_SIZE})")
    sub.add_argument("--n-slices", type=integer(1), default=None,
                     help="slices per scan, evenly spaced (default: all)")
    sub.add_argument("--axis", default=AXIS, choices=AXIS_CHOICES,
                     help="slicing axis; all: tri-planar bags of the three orientations "
                          f"(default: {AXIS})")
    sub.add_argument("--slice-spacing", type=positive, default=None, metavar="MM",
                     help="keep a slice every MM mm, so that every resolution gives the "
                          "same anatomy the same number of slices (default: every slice)")
    sub.add_argument("--pixel-spacing", type=positive, default=None, metavar="MM",
                     help="resample slices in-plane to MM mm per backbone pixel (default: "
                          "each slice resized to fit, whatever its voxel size)")
    sub.add_argument("--crop", choices=CROPS, default=CROP,
                     help="foreground: crop each scan to the box around its foreground "
                          f"(default: {CROP})")
    sub.add_argument("--min-foreground", type=float, default=MIN_FOREGROUND, metavar="SHARE",
                     help="drop slices whose share of foreground voxels is below SHARE "
                          f"(default: {MIN_FOREGROUND:g}, keep all)")
    sub.add_argument("--batch-size", type=integer(1), default=BATCH_SIZE,
                     help=f"slices per forward pass (default: {BATCH_SIZE})")
    sub.add_argument("--dtype", default=DTYPE, choices=DTYPES,
                     help="precision of the forward pass; bfloat16 is much faster on GPUs "
                          "and AVX-512 BF16 / AMX CPUs; int8 (CPU): linear layers "
                          f"quantised (default: {DTYPE})")
    sub.add_argument("--engine", default=ENGINE, choices=ENGINES,
                     help="onnxruntime, openvino: the backbone exported to ONNX and run "
                          "on the CPU by ONNX Runtime (float32, int8; the onnx extra) or "
                          "OpenVINO (float32, bfloat16; the openvino extra) "
                          f"(default: {ENGINE})")
    sub.add_argument("--n-jobs", type=int, default=None,
                     help="processes that embed in parallel, each with its own model "
                          "(default: 1)")
    sub.add_argument("--n-readers", type=auto_or(integer(0)), default=N_READERS,
                     help="processes that read and resize the scans while the backbone "
                          f"runs; 0: read in the main process (default: {N_READERS}, the CPU "
                          "cores less one, at most 8, on CUDA; 0 on the CPU)")
    sub.add_argument("--device", default=DEVICE,
                     help=f"auto, cpu or cuda (default: {DEVICE})")
    sub.add_argument("--cache-dir", required=cache_required,
                     help="folder of the on-disk embedding cache" +
                          ("" if cache_required else " (default: memory only)"))


def add_training_arguments(sub):
    """The classifiers' training settings and the 3D ResNet's input and size."""
    sub.add_argument("--max-epochs", "--epochs", type=integer(1), default=MAX_EPOCHS,
                     help=f"training epochs (default: {MAX_EPOCHS})")
    sub.add_argument("--random-state", "--seed", type=integer(0), default=RANDOM_STATE,
                     help=f"random seed of the folds and the training (default: {RANDOM_STATE})")
    sub.add_argument("--class-weight", choices=(NO_CLASS_WEIGHT, *CLASS_WEIGHTS),
                     default=NO_CLASS_WEIGHT,
                     help="balanced: weigh the classes' losses by inverse frequency, for "
                          f"imbalanced data (default: {NO_CLASS_WEIGHT})")
    sub.add_argument("--volume-size", type=integer(1), default=VOLUME_SIDE,
                     help=f"3D ResNet: volumes resampled to this cube side (default: "
                          f"{VOLUME_SIDE})")
    sub.add_argument("--resnet-depth", type=int, default=RESNET_DEPTH, choices=RESNET_DEPTHS,
                     help=f"3D ResNet depth (default: {RESNET_DEPTH})")
    sub.add_argument("--resnet-width", type=float, default=RESNET_WIDTH,
                     help=f"3D ResNet width factor (default: {RESNET_WIDTH})")
    sub.add_argument("--resnet-max-epochs", "--resnet-epochs", dest="resnet_epochs",
                     type=integer(1), default=None,
                     help="3D ResNet training epochs (default: --max-epochs)")


def add_model_arguments(sub):
    """How a saved model is loaded and run (predict and explain)."""
    sub.add_argument("--allow-pickle", action="store_true",
                     help="load a .joblib model (a pickle: only from a source you trust, "
                          "as loading it can run code)")
    sub.add_argument("--device", default=None,
                     help="auto, cpu or cuda (default: the model's own, or auto where that "
                          "is not available here; safetensors models)")
    sub.add_argument("--cache-dir", help="folder of the on-disk embedding cache (default: "
                                         "memory only; safetensors models)")
    sub.add_argument("--batch-size", type=integer(1), default=None,
                     help="slices per forward pass (volumes, for the 3D ResNet) "
                          "(default: the model's)")
