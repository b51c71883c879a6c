"""The command line's arguments turned into the protocol, the task's options and the
estimators, each checked before any work so that a mistake ends the command in one line
at once."""


from ..evaluation import METHODS
from ..utils._files import check_file
from ..utils._options import N_FOLDS, NO_CLASS_WEIGHT, THRESHOLD
from ._outputs import PROG, CommandError


def protocol(args, y, groups, split):
    """The held-out split of the labels' split column, else k-fold cross-validation."""
    from ..evaluation import cross_validation, held_out

    if split is None:
        return cross_validation(y, n_folds=args.folds or N_FOLDS, groups=groups,
                                random_state=args.random_state, task=args.task)
    if args.folds is not None:
        raise CommandError("the labels have a split column, so the test set is fixed: leave "
                           "out --folds, or drop the column (--split-column none) to "
                           "cross-validate.")
    return held_out(split, y, groups=groups, task=args.task)


def target_name(args):
    """A regression's target as the tables say it: the label column, with ``--units``."""
    return f"{args.label_column} ({args.units})" if args.units else args.label_column


def check_task_options(args):
    """Refuse, before any work, the options of the other task: a classification's
    operating point, recalibration and class weights, a regression's bias correction and
    units."""
    if args.task == "regression":
        given = [option for option, value in (
            ("--pos-label", args.pos_label), ("--recalibrate", args.recalibration),
            ("--threshold", None if args.threshold == THRESHOLD else args.threshold),
            ("--class-weight", None if args.class_weight == NO_CLASS_WEIGHT
             else args.class_weight)) if value is not None]
        if given:
            raise CommandError(f"{given[0]} is for classification; the task here is "
                               "regression (a number per scan).")
    else:
        given = [option for option, value in (
            ("--bias-correction", getattr(args, "bias_correction", None)),
            ("--units", getattr(args, "units", None))) if value is not None]
        if given:
            raise CommandError(f"{given[0]} is for regression; the task here is "
                               "classification (give --task regression for a numeric label "
                               "column).")


# Estimators ------------------------------------------------------------------------


def method_keys(method, task="classification"):
    from ..evaluation import methods_for

    known = methods_for(task)
    keys = known if method == "all" else [m.strip() for m in method.split(",")]
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise CommandError(f"unknown method {unknown[0] if unknown else method!r}"
                           + (" for regression" if task == "regression" else "")
                           + f"; choose from {', '.join(known)} or all (comma-separated for "
                           "several).")
    return keys


def build_method(key, args):
    """The classifier (or regressor, for ``args.task``) of method ``key``, with the epoch
    log at ``-v``."""
    from ..evaluation import make_method

    on_volumes = METHODS[key].takes_volumes
    epochs = args.resnet_epochs if on_volumes and args.resnet_epochs else args.max_epochs
    weight = None if args.class_weight == NO_CLASS_WEIGHT else "balanced"
    method = make_method(key, task=getattr(args, "task", None) or "classification",
                         max_epochs=epochs,
                         random_state=args.random_state, class_weight=weight,
                         resnet_depth=args.resnet_depth, resnet_width=args.resnet_width)
    method.set_params(verbose=int(args.verbosity >= 2))
    _check_options(method)  # a nonsense setting ends the command before any work
    if on_volumes:
        from ..nn import resnet_downsampling

        smallest = resnet_downsampling(method.stem) + 1
        if args.volume_size < smallest:
            raise CommandError(f"--volume-size {args.volume_size} is too small for the 3D "
                               f"ResNet, which needs {smallest} voxels a side or more.")
    return method


def build_model(args, y):
    """The pipeline ``fit`` trains: the embedder (or the resampler, for a method on
    volumes) and the method as an OperatingPointClassifier with ``--threshold``,
    ``--recalibrate`` and the positive class of ``y`` (``--pos-label``), its inner folds
    seeded as cv seeds them; a regression's: the method's regressor."""
    from sklearn.pipeline import make_pipeline

    from ..evaluation import INNER_FOLDS, OperatingPointClassifier, check_classes, positive_class

    classifier = build_method(args.method, args)
    first = build_resampler(args) if METHODS[args.method].takes_volumes else build_embedder(args)
    if getattr(args, "task", None) == "regression":
        return make_pipeline(first, classifier)
    positive = positive_class(check_classes(y), pos_label=args.pos_label)
    if positive is None and args.threshold != THRESHOLD:
        raise CommandError(f"--threshold {args.threshold} is for two classes; these labels "
                           "have more, and each scan takes its most probable class.")
    return make_pipeline(first, OperatingPointClassifier(
        estimator=classifier, threshold=args.threshold, recalibration=args.recalibration,
        pos_label=positive, cv=INNER_FOLDS, random_state=args.random_state))


def check_evaluation(args, model, weights_sha256):
    """Refuse, before any work, an ``--evaluation`` run that evaluated another recipe
    than ``model``'s (method ``--method``), naming the first difference by its option."""
    from ..evaluation import read_run, recipe_differences

    differences = recipe_differences(read_run(args.evaluation).info, args.method, model,
                                      weights_sha256=weights_sha256)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise CommandError(f"--evaluation {args.evaluation!r} evaluated another recipe: "
                           f"{_difference_said(*differences[0], args)}{more}.")


def _difference_said(name, evaluated, here, args):
    """A recipe difference in the words of the command line: the option, its values
    (one set from Python only keeps its parameter's name)."""
    from ..evaluation import describe_difference

    if name.startswith("backbone weights"):
        return "--weights: the run's weights file is another (by SHA-256)"
    option = None if name == "method" else option_of(name.removeprefix("embedder "), args)
    if option is None:
        return describe_difference(name, evaluated, here)
    evaluated, here = ("not given" if v is None else repr(v) for v in (evaluated, here))
    return f"{option}: evaluated {evaluated}, here {here}"


def build_resampler(args):
    """The volume resampler of the methods on volumes: ``--volume-size`` a side."""
    from ..volumes import VolumeResampler

    return VolumeResampler(shape=(args.volume_size,) * 3)


def build_embedders(args):
    """Backbone -> its embedder, for each backbone of ``--backbone a,b,c``."""
    backbones = [backbone.strip() for backbone in args.backbone.split(",")]
    if "" in backbones or len(set(backbones)) < len(backbones):
        raise CommandError(f"--backbone {args.backbone!r}: name each backbone once, "
                           "separated by commas.")
    if len(backbones) > 1 and args.weights not in (None, "random"):
        raise CommandError(f"--weights {args.weights!r} is one checkpoint, for one backbone; "
                           "with several, leave --weights out (or 'random').")
    return {backbone: build_embedder(args, backbone) for backbone in backbones}


def build_embedder(args, backbone=None):
    """The embedder of ``--backbone`` (one), or of ``backbone``."""
    from ..embedding import DinoSliceEmbedder, cache_folder_is_writable

    if backbone is None and "," in args.backbone:
        raise CommandError(f"--backbone {args.backbone!r}: one backbone here; several "
                           f"(a,b,c) are for `{PROG} cv` and `{PROG} embed`.")
    weights = args.weights
    if weights not in (None, "random"):
        check_file(weights, "Weights file")
    embedder = DinoSliceEmbedder(
        backbone=backbone or args.backbone, weights=weights, image_size=args.image_size,
        axis=args.axis, n_slices=args.n_slices, slice_spacing=args.slice_spacing,
        pixel_spacing=args.pixel_spacing, crop=args.crop, min_foreground=args.min_foreground,
        batch_size=args.batch_size, dtype=args.dtype, engine=args.engine, n_jobs=args.n_jobs,
        n_readers=args.n_readers, device=args.device, cache_dir=args.cache_dir,
        verbose=int(args.verbosity >= 1),
    )
    _check_options(embedder)
    if args.cache_dir is not None:
        cache_folder_is_writable(args.cache_dir, "--cache-dir")  # read-only: read
    return embedder


# The options not named after the parameter (or run.json field) they set; the others are
# --<name with dashes> (--image-size: image_size)
_OPTION_OF = {"depth": "--resnet-depth", "widen_factor": "--resnet-width",
              "recalibration": "--recalibrate", "threshold_rule": "--threshold",
              "positive_label": "--pos-label", "resampler shape": "--volume-size",
              "folds": "--n-folds", "resnet_epochs": "--resnet-max-epochs"}


def option_of(name, args=None):
    """The option that sets parameter ``name`` (``--max-epochs`` for ``max_epochs``); with
    the command's ``args``, None where the command has no such option."""
    option = _OPTION_OF.get(name, "--" + name.replace("_", "-"))
    if args is None or hasattr(args, option[2:].replace("-", "_")) or hasattr(args, name):
        return option
    return None


def _check_options(estimator):
    """Check the parameters of an estimator built from the options; a bad value is said
    of the option the user gave, not of the parameter."""
    from ..utils._fit import check_params
    from ..utils._validation import InvalidParameterError

    try:
        check_params(estimator)
    except InvalidParameterError as error:
        option = option_of(error.param)
        allowed = error.allowed.removeprefix("None or ")  # None: the option left out
        raise CommandError(f"{option} must be {allowed}; got {error.value!r}.") from None


def load_fitted(args):
    """The fitted pipeline of ``args.model``, on this machine's device and cache."""
    check_file(args.model, "Model file")
    if is_pickle(args.model):
        if not args.allow_pickle:
            raise CommandError(
                f"{args.model!r} is a pickle, and loading a pickle can run any code: pass "
                "--allow-pickle if you made it or trust who did, or save models as "
                f"safetensors (`{PROG} fit ... --out model.safetensors`)."
            )
        import joblib

        try:
            model = joblib.load(args.model)
        except Exception as exc:  # unpickling raises many types for a wrong or damaged file
            raise CommandError(f"cannot load model {args.model!r}: {exc}") from exc
    else:
        from ..persistence import load_model

        model = load_model(args.model, device=getattr(args, "device", None),
                           cache_dir=getattr(args, "cache_dir", None))
    from sklearn.base import is_regressor

    if not hasattr(model, "steps") or not (is_regressor(model) or (
            hasattr(model, "predict_proba") and hasattr(model, "classes_"))):
        raise CommandError(f"{args.model!r} holds no fitted pipeline of a classifier or "
                           f"regressor (made by `{PROG} fit`).")
    first = model[0]
    if getattr(args, "batch_size", None) is not None:
        from ..evaluation import bare_classifier

        (first if "batch_size" in first.get_params() else bare_classifier(model[-1])
         ).set_params(batch_size=args.batch_size)
    if "verbose" in first.get_params():
        first.set_params(verbose=int(args.verbosity >= 1))
    return model


def is_pickle(path):
    return path.endswith((".joblib", ".pkl", ".pickle"))
