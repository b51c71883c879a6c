"""``dinoatten demo``: every method cross-validated on a small offline data set, with its
report: classes (synthetic volumes, AdrenalMNIST3D) or a number (phantom brain ages)."""

import os

from ..evaluation import METHODS
from ..utils._files import atomic_folder
from ..utils._options import DEMO_DATASET
from ._commands import write_and_show
from ._outputs import (
    PROG,
    CommandError,
    cache_of,
    run_directory,
)

DEMO_MARK = ".dinoatten-demo"  # marks a data folder the demo wrote, and may replace


REGRESSION_DATASET = "brain-age"  # the demo data of a number


def demo(args):
    """Cross-validate every method on a small offline data set and write the report;
    ``--task regression``: the regressors on phantom heads that age."""
    from ..datasets import load_nifti_folder, write_demo_data
    from ..embedding import DinoSliceEmbedder
    from ..evaluation import (
        cross_validation,
        data_record,
        held_out,
        make_method,
        methods_for,
        run_study,
        write_report,
    )
    from ..volumes import VolumeResampler

    verbose = int(args.verbosity >= 1)
    args.task, args.dataset = _task_and_dataset(args)
    regression = args.task == "regression"
    root, run_dir = os.path.join(args.out, "data"), os.path.join(args.out, "cv")
    if (os.path.isdir(root) and os.listdir(root)
            and not os.path.isfile(os.path.join(root, DEMO_MARK))):
        raise CommandError(f"{root!r} holds files that are not the demo's data; give "
                           "another --out.")
    with atomic_folder(root) as folder:  # an earlier demo's data replaced whole
        source, n_written = write_demo_data(folder, dataset=args.dataset, n_scans=args.n_scans)
        with open(os.path.join(folder, DEMO_MARK), "w") as f:
            f.write(f"Written by `{PROG} demo`: {source}\n")
    print(f"Demo data: {source}, {n_written} scans written to {root}")
    paths, y, groups, split = load_nifti_folder(  # AdrenalMNIST3D comes with its split
        root, split_column="split" if args.dataset == "adrenal" else None,
        label_column="age" if regression else "label", task=args.task)
    evaluation = (cross_validation(y, n_folds=5, groups=groups, task=args.task)
                  if split is None else held_out(split, y))
    methods = {key: make_method(key, task=args.task,
                                max_epochs=10 if METHODS[key].takes_volumes else 30,
                                class_weight=None if regression else "balanced",
                                resnet_depth=10, resnet_width=0.25)
               for key in methods_for(args.task)}
    # The phantoms' voxel sizes differ: a slice every 6 mm gives each scan the same anatomy
    embedder = DinoSliceEmbedder(weights="random", image_size=56, verbose=verbose,
                                 slice_spacing=6.0 if regression else None,
                                 cache_dir=cache_of(args))
    number = dict(target_name="age (years)",
                  subgroups={"sex": _column(root, "sex")}) if regression else {}
    with run_directory(run_dir, overwrite=True) as folder:  # the demo replaces its own run
        run = run_study(paths, y, methods, evaluation, embedder=embedder,
                        resampler=VolumeResampler(shape=(32, 32, 32)), verbose=verbose,
                        **number)
        run.info.update(command=[PROG, *args.argv], data=data_record(
            root, os.path.join(root, "labels.csv"), len(y)))
        write_and_show(folder, run)
    print(f"Results: {run_dir}; report: {write_report(run_dir, overlays=4, verbose=verbose)}")
    print("\nThe demo uses random backbone weights (no network here): its scores show the "
          "machinery, not DINOv2's. Give --weights dinov2_vits14_pretrain.pth to "
          f"`{PROG} cv` for real ones.")


def _task_and_dataset(args):
    """The demo's task and data set: ``--dataset``'s (brain-age is a regression's), or
    ``--task``'s default data set; a data set of the other task is refused."""
    if args.dataset is None:
        task = args.task or "classification"
        return task, REGRESSION_DATASET if task == "regression" else DEMO_DATASET
    task = "regression" if args.dataset == REGRESSION_DATASET else "classification"
    if args.task is not None and args.task != task:
        raise CommandError(f"--dataset {args.dataset} is a {task} data set; --task "
                           f"{args.task} takes " + (REGRESSION_DATASET if args.task ==
                                                     "regression" else "synthetic or adrenal")
                           + ".")
    return task, args.dataset


def _column(root, name):
    """A column of the demo data's labels.csv, a value per scan."""
    from ..datasets import read_csv

    return [row[name] for row in read_csv(os.path.join(root, "labels.csv"))[1]]
