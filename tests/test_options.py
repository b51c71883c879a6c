"""One source for every option's values (sklearn_dinoatten/utils/_options.py): each
``dinoatten`` option that sets an estimator's parameter offers exactly the values the
estimator's constraints accept and defaults to the estimator's own default, but for the
deliberate exceptions below. No backbone is built: the estimators are only made and
their parameters checked, as the commands do before any work."""

import argparse
import inspect

import pytest

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
)
from sklearn_dinoatten.cli._demo import _task_and_dataset
from sklearn_dinoatten.cli._inputs import build_embedder, build_method, build_resampler
from sklearn_dinoatten.cli._main import build_parser
from sklearn_dinoatten.datasets._demo import write_demo_data
from sklearn_dinoatten.datasets._medmnist import MEDMNIST3D
from sklearn_dinoatten.evaluation._methods import METHODS, REFERENCE, make_method
from sklearn_dinoatten.evaluation._out_of_fold import check_recalibration
from sklearn_dinoatten.evaluation._regression_out_of_fold import check_bias_correction
from sklearn_dinoatten.utils import _options

# The parameter each option sets (cli/_inputs.py): option's dest -> parameter name.
# build_embedder: every embedding option is named after its parameter.
EMBEDDER = {dest: dest for dest in (
    "backbone", "weights", "image_size", "axis", "n_slices", "slice_spacing", "pixel_spacing",
    "crop", "min_foreground", "batch_size", "dtype", "engine", "n_jobs", "n_readers",
    "device", "cache_dir")}
# build_method: the classifier of every method; the 3D ResNet's (on volumes) also takes
# the --resnet-* options, --resnet-max-epochs before --max-epochs.
CLASSIFIER = {"max_epochs": "max_epochs", "random_state": "random_state",
              "class_weight": "class_weight"}
VOLUME_CLASSIFIER = {**CLASSIFIER, "resnet_depth": "depth", "resnet_width": "widen_factor",
                     "resnet_epochs": "max_epochs"}
RESAMPLER = {"volume_size": "shape"}  # build_resampler: a cube of that side
SETTERS = {**EMBEDDER, **VOLUME_CLASSIFIER, **RESAMPLER}

# The options of the commands that build estimators, that set no parameter.
NOT_PARAMETERS = {"help", "verbose", "quiet", "labels", "path_column", "label_column",
                  "group_column", "split_column", "method", "folds", "pos_label", "threshold",
                  "recalibration", "subgroups", "out", "overwrite", "evaluation", "task",
                  "units", "bias_correction", "bids_suffix"}

# Deliberate differences, option's dest -> why.
OTHER_DEFAULT = {
    "random_state": "the command line seeds every run (0), for results that can be redone; "
                    "the estimators, as scikit-learn's, default to None",
}
# Values the estimators take from Python only: parameter -> those values.
PYTHON_ONLY = {
    "axis": {0, 1, 2, -1, -2, -3},  # array axes; the command line names the planes
}

# Choices that are the study's (run_study's), not an estimator's: each has its own test.
STUDY_CHOICES = ("method", "recalibration", "task", "bias_correction")

BASE_ARGV = {"embed": ["d", "--cache-dir", "{tmp}"], "cv": ["d", "--out", "o"],
             "fit": ["d", "--out", "m.safetensors"]}


def commands():
    """Command name -> its argparse parser."""
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def options_of(command):
    """dest -> the argparse action of each option of ``command``."""
    return {a.dest: a for a in commands()[command]._actions if a.option_strings}


def built(args):
    """What a command builds from ``args``: (estimator, {dest: parameter}) pairs."""
    args.verbosity = 1
    pairs = [(build_embedder(args), EMBEDDER)]
    if hasattr(args, "max_epochs"):
        pairs += [(build_method(key, args),
                   VOLUME_CLASSIFIER if METHODS[key].takes_volumes else CLASSIFIER)
                  for key in METHODS]
        pairs.append((build_resampler(args), RESAMPLER))
    return pairs


def set_by(args, dest):
    """(estimator class, parameter, value) of each parameter that option ``dest`` sets."""
    return [(type(estimator), table[dest], estimator.get_params()[table[dest]])
            for estimator, table in built(args)
            if dest in table and table[dest] in estimator.get_params()]


def default_of(cls, param):
    return inspect.signature(cls).parameters[param].default


def option_values(constraints):
    """The values of the ``options(...)`` among ``constraints``."""
    return {value for constraint in constraints if constraint.description.startswith("one of ")
            for value in inspect.getclosurevars(constraint.accepts).nonlocals["values"]}


@pytest.mark.parametrize("command", BASE_ARGV)
def test_every_option_is_known_to_set_a_parameter_or_none(command):
    assert set(options_of(command)) <= set(SETTERS) | NOT_PARAMETERS
    assert set(EMBEDDER) <= set(options_of(command))
    if command != "embed":
        assert set(VOLUME_CLASSIFIER) | set(RESAMPLER) <= set(options_of(command))


def test_the_table_is_what_the_command_line_builds(tmp_path):
    """Each option, given alone (a value unlike its default), sets the parameters the
    tables say, to that value."""
    given = dict(backbone="vit_tiny_patch16_224", weights="random", image_size=112,
                 axis="coronal", n_slices=5, slice_spacing=2.0, pixel_spacing=1.5,
                 crop="foreground", min_foreground=0.25, batch_size=4, dtype="bfloat16",
                 engine="onnxruntime", n_jobs=2, n_readers=3, device="cpu",
                 cache_dir=str(tmp_path), max_epochs=3, random_state=7,
                 class_weight="balanced", resnet_depth=10, resnet_width=0.5,
                 resnet_epochs=4, volume_size=40)
    expected = dict(given, volume_size=(40, 40, 40))
    assert set(given) == set(SETTERS)
    defaults = {dest: a.default for dest, a in options_of("cv").items()}
    for dest in given:
        settings = set_by(argparse.Namespace(**{**defaults, dest: given[dest]}), dest)
        assert settings, dest
        for cls, param, value in settings:
            assert value == expected[dest], (dest, cls.__name__, param)


@pytest.mark.parametrize("command", BASE_ARGV)
def test_each_default_is_the_estimators(command):
    actions = options_of(command)
    args = argparse.Namespace(**{dest: a.default for dest, a in actions.items()})
    checked = set()
    for dest, action in actions.items():
        if dest not in SETTERS or action.required:  # embed's --cache-dir: no default
            continue
        for cls, param, value in set_by(args, dest):
            checked.add(dest)
            if dest in OTHER_DEFAULT:
                assert value != default_of(cls, param), f"{dest}: no longer an exception"
                assert value == getattr(_options, dest.upper()), dest
            else:
                assert value == default_of(cls, param), (dest, cls.__name__, param)
    assert checked == {d for d, a in actions.items() if d in SETTERS and not a.required}


@pytest.mark.parametrize("command", BASE_ARGV)
def test_each_choice_is_the_estimators(command, tmp_path):
    """An option's choices give exactly the values its parameter's options() accept;
    a choice that means None ("none") is accepted as None."""
    base = [part.format(tmp=tmp_path) for part in BASE_ARGV[command]]
    parser = build_parser()
    with_choices = {dest: a for dest, a in options_of(command).items()
                    if a.choices and dest not in STUDY_CHOICES}
    assert set(with_choices) <= set(SETTERS)
    assert with_choices
    for dest, action in with_choices.items():
        values = {}  # (class, parameter) -> the values the choices give
        for choice in action.choices:
            args = parser.parse_args([command, *base, action.option_strings[0], str(choice)])
            for cls, param, value in set_by(args, dest):
                assert any(c.accepts(value) for c in cls._constraints[param]), (dest, choice)
                values.setdefault((cls, param), set()).add(value)
        assert values, dest
        for (cls, param), given in values.items():
            allowed = option_values(cls._constraints[param]) - PYTHON_ONLY.get(param, set())
            assert given - {None} == allowed, (dest, cls.__name__, param)


def test_recalibrate_choices_are_run_studys():
    assert tuple(options_of("cv")["recalibration"].choices) == _options.RECALIBRATIONS
    assert tuple(options_of("fit")["recalibration"].choices) == _options.RECALIBRATIONS
    for choice in _options.RECALIBRATIONS:
        assert check_recalibration(choice, []) == choice
    with pytest.raises(ValueError, match="recalibration must be"):
        check_recalibration("sigmoid", [])


def test_method_options_are_the_registrys():
    for command in ("cv", "fit"):
        assert options_of(command)["method"].default == REFERENCE in METHODS
    assert list(options_of("fit")["method"].choices) == list(METHODS)


def test_make_method_defaults_are_the_command_lines():
    options = options_of("cv")
    signature = inspect.signature(make_method).parameters
    for param, dest in [("max_epochs", "max_epochs"), ("random_state", "random_state"),
                        ("resnet_depth", "resnet_depth"), ("resnet_width", "resnet_width")]:
        assert signature[param].default == options[dest].default, param
    assert signature["class_weight"].default is None
    assert options["class_weight"].default == _options.NO_CLASS_WEIGHT


def test_demo_options_are_write_demo_datas():
    options, signature = options_of("demo"), inspect.signature(write_demo_data).parameters
    assert options["dataset"].default is None  # the task's: --task regression, brain-age
    assert _task_and_dataset(argparse.Namespace(task=None, dataset=None)) == (
        "classification", signature["dataset"].default)
    assert options["n_scans"].default == signature["n_scans"].default
    assert set(options["dataset"].choices) - {"synthetic", "brain-age"} <= set(MEDMNIST3D)


def test_the_task_options_are_the_studys():
    for command in ("cv", "fit"):
        assert tuple(options_of(command)["task"].choices) == _options.TASKS
    assert tuple(options_of("cv")["bias_correction"].choices) == _options.BIAS_CORRECTIONS
    with pytest.raises(ValueError, match="bias_correction must be None or one of"):
        check_bias_correction("quadratic", [])
    assert check_bias_correction(_options.BIAS_CORRECTIONS[0], []) == "linear"


def test_predict_overrides_default_to_the_models_own():
    """predict's --batch-size and --device change a fitted model: None keeps its own."""
    options = options_of("predict")
    assert options["batch_size"].default is None and options["device"].default is None


def test_every_choice_option_is_covered():
    covered = set(SETTERS) | set(STUDY_CHOICES) | {"dataset"}
    for command in commands():
        assert {d for d, a in options_of(command).items() if a.choices} <= covered, command


@pytest.mark.parametrize("cls, param, values", [
    (DinoSliceEmbedder, "slice_selection", _options.SLICE_SELECTIONS),
    (DinoSliceEmbedder, "crop", _options.CROPS),
    (DinoSliceEmbedder, "normalization", _options.NORMALIZATIONS),
    (DinoSliceEmbedder, "feature", _options.FEATURES),
    (DinoSliceEmbedder, "dtype", _options.DTYPES),
    (DinoSliceEmbedder, "engine", _options.ENGINES),
    (DinoSliceEmbedder, "axis", (*_options.PLANES, _options.ALL_PLANES)),
    (ResNet3DClassifier, "depth", _options.RESNET_DEPTHS),
    (ResNet3DClassifier, "stem", _options.RESNET_STEMS),
    (AttentionPoolClassifier, "class_weight", _options.CLASS_WEIGHTS),
    (AttentionPoolClassifier, "lr_schedule", _options.LR_SCHEDULES),
    (SCMILClassifier, "lr_schedule", _options.LR_SCHEDULES),
    (SliceTransformerClassifier, "lr_schedule", _options.LR_SCHEDULES),
], ids=lambda v: v.__name__ if isinstance(v, type) else v if isinstance(v, str) else "")
def test_the_estimators_take_the_values_of_options(cls, param, values):
    assert option_values(cls._constraints[param]) - PYTHON_ONLY.get(param, set()) == set(values)
