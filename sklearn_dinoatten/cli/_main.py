"""``dinoatten``: the parser of its commands and options, and the one way every command
ends: its result, or one line on stderr and an exit status.
"""

import argparse
import inspect
import re
import sys
import warnings

from .. import __version__
from ..evaluation import METHODS, REFERENCE, methods_for
from ..utils._optional import MissingExtraError
from ..utils._options import (
    DEMO_DATASET,
    DEMO_DATASETS,
    DEMO_N_SCANS,
    N_FOLDS,
    TASKS,
)
from ._arguments import (
    add_bias_correction_argument,
    add_bids_suffix,
    add_data_arguments,
    add_embedding_arguments,
    add_evaluation_arguments,
    add_label_columns,
    add_model_arguments,
    add_operating_point_arguments,
    add_path_column,
    add_task_argument,
    add_training_arguments,
    add_verbosity_arguments,
    integer,
    threshold,
)
from ._commands import card, cv, embed, fit, predict, report
from ._demo import demo
from ._explain import explain
from ._inputs import (
    option_of,
)
from ._outputs import (
    PROG,
    CommandError,
    cache_of,
)


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.verbosity = 0 if args.quiet else 1 + args.verbose
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(args)
        try:
            args.run(args)
        except (CommandError, ValueError, OSError, MemoryError, RuntimeError,
                MissingExtraError) as exc:
            # OSError: a full disk, a file-size limit; RuntimeError: e.g. pretrained
            # weights without a network; MissingExtraError: an option's extra is not
            # installed. The first line of the message says what happened.
            message = (str(exc).strip().splitlines()[0] if str(exc).strip()
                       else type(exc).__name__)
            print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG} {args.command}: interrupted; {_what_is_kept(args)}.", file=sys.stderr)
            return 130
    return 0


def _warning_printer(args):
    """A ``warnings.showwarning`` that prints each message once, without source lines,
    the parameters it names as the command's options (``--pixel-spacing 0.5``)."""
    said = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = _as_options(" ".join(str(message).split()), args)
        if text not in said:
            said.add(text)
            print(f"{PROG} {args.command}: warning: {text}", file=sys.stderr)

    return show


def _as_options(text, args):
    """``text`` with each ``name=value`` of a parameter the command sets by an option
    written as that option (``image_size=56`` as ``--image-size 56``)."""
    def option(match):
        name, value = match.groups()
        said = option_of(name, args)
        return match.group(0) if said is None else said + (f" {value}" if value else "")

    return re.sub(r"\b([a-z][a-z_]*)=([^\s,;)]*)", option, text)


def _what_is_kept(args):
    cache = cache_of(args)
    if args.command == "embed":
        return f"finished embeddings are cached in {cache}, rerun to go on"
    return "no results were written" + (
        f"; embeddings finished so far are cached in {cache}" if cache else
        "; no embedding was kept (only --cache-dir keeps them on disk)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Classify 3D scans with DINOv2 slice embeddings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `dinoatten COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(function, name):
        text = inspect.cleandoc(function.__doc__).replace("``", "")
        sub = commands.add_parser(name, help=" ".join(text.split("\n\n")[0].split()),
                                  description=text,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=function)
        add_verbosity_arguments(sub)
        return sub

    sub = command(embed, "embed")
    add_data_arguments(sub)
    add_embedding_arguments(sub, cache_required=True)

    sub = command(cv, "cv")
    add_data_arguments(sub)
    add_task_argument(sub)
    add_embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE,
                     help=f"one of {', '.join(METHODS)}, several comma-separated, or all "
                          f"(regression: {', '.join(methods_for('regression'))}) "
                          f"(default: {REFERENCE})")
    sub.add_argument("--n-folds", "--folds", dest="folds", type=integer(2), default=None,
                     help=f"number of folds (default: {N_FOLDS}; not with a split column)")
    add_operating_point_arguments(sub)
    add_bias_correction_argument(sub)
    add_evaluation_arguments(sub)
    sub.add_argument("--out", required=True, help="folder for the results")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (refused without it)")
    add_training_arguments(sub)

    sub = command(fit, "fit")
    add_data_arguments(sub)
    add_task_argument(sub)
    add_embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE, choices=list(METHODS),
                     help=f"the method to train (default: {REFERENCE})")
    add_operating_point_arguments(sub)
    sub.add_argument("--evaluation", metavar="RUN_DIR",
                     help="a cv run of the same recipe: its metrics go into the model card "
                          "(refused, before any work, if it evaluated another recipe)")
    sub.add_argument("--out", required=True,
                     help="the model file to write: .safetensors (safe to share and load, "
                          "with its model card), or .joblib (a pickle, without)")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the model file already at --out (refused without it)")
    add_training_arguments(sub)

    sub = command(predict, "predict")
    sub.add_argument("model", help="a model file written by `dinoatten fit`")
    sub.add_argument("scans", nargs="+", metavar="SCAN",
                     help="NIfTI files or DICOM series folders; or one folder (its "
                          "labels.csv, else every scan in it); or a BIDS dataset (labelled "
                          "with --label-column: the column of participants.tsv); or one "
                          "labels CSV (paths relative to its folder)")
    sub.add_argument("--out", required=True,
                     help="the CSV file of predictions; with labels, the folder of the "
                          "evaluation run (what `dinoatten report` reads)")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the CSV file or the evaluation run already at --out "
                          "(refused without it)")
    add_label_columns(sub, split=False, label="the target's column a regressor's card "
                                              "names, else label")
    add_bids_suffix(sub)
    sub.add_argument("--pos-label", help="the positive class of two (as for cv; a model "
                                         "saved by `dinoatten fit` knows its own)")
    sub.add_argument("--threshold", type=threshold, default=None,
                     help="the operating point of two classes: a scan is called positive "
                          "where its probability is at least this number, instead of the "
                          "model's own (default: the model's, as its card says; 0.5 for a "
                          "model saved without one)")
    add_evaluation_arguments(sub)
    sub.add_argument("--top-slices", type=integer(1), default=3,
                     help="how many slices of highest attention to list (default: 3)")
    add_model_arguments(sub)

    sub = command(explain, "explain")
    sub.add_argument("model", help="a model file written by `dinoatten fit`")
    sub.add_argument("scans", nargs="+", metavar="SCAN",
                     help="scans, as predict takes them, their labels unread: NIfTI files "
                          "or DICOM series folders; or one folder (its labels.csv, else "
                          "every scan in it); or a BIDS dataset; or one labels CSV (paths "
                          "relative to its folder)")
    sub.add_argument("--out", required=True,
                     help="the folder for the maps, overlays and explanations.csv (created "
                          "if needed)")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the files of an earlier explanation of these scans in "
                          "--out (refused without it)")
    sub.add_argument("--overlay-slices", type=integer(1), default=4,
                     help="how many slices each overlay PNG shows (default: 4)")
    add_path_column(sub)
    add_bids_suffix(sub)
    add_model_arguments(sub)

    sub = command(card, "card")
    sub.add_argument("model", help="a model file written by `dinoatten fit` (.safetensors)")
    sub.add_argument("--out", help="a Markdown file to write the card to (default: print it)")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the file already at --out (refused without it)")

    sub = command(report, "report")
    sub.add_argument("run_dir", metavar="DIR", help="a folder written by `dinoatten cv`")
    sub.add_argument("--out", help="the HTML file (default: DIR/report.html)")
    sub.add_argument("--overlays", type=integer(0), default=4,
                     help="how many scans to show with attention overlays (default: 4)")

    sub = command(demo, "demo")
    sub.add_argument("--out", default="results/demo", help="folder for everything "
                                                           "(default: results/demo)")
    sub.add_argument("--task", choices=TASKS, default=None,
                     help="classification (default), or regression: the regressors on "
                          "phantom heads that age (the brain-age data set)")
    sub.add_argument("--dataset", choices=DEMO_DATASETS, default=None,
                     help="synthetic: volumes with a planted signal; adrenal: "
                          "AdrenalMNIST3D (real CT masks, its official train/val/test split) "
                          "from $SKLEARN_DINOATTEN_DATA/adrenalmnist3d, by default the "
                          "project's ../shared/data; brain-age: phantom heads whose "
                          "ventricles widen and cortex thins with age, two scans a subject "
                          f"at varied voxel sizes (a regression) (default: {DEMO_DATASET}, "
                          "or brain-age with --task regression)")
    sub.add_argument("--n-scans", type=integer(10), default=DEMO_N_SCANS,
                     help=f"scans to use, at least 10 (default: {DEMO_N_SCANS})")
    return parser
