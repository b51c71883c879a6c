"""What a user of the command line sees: help, option names, verbosity, protected runs
and the offline message (progress lines, warnings and predict on folders and labels are
checked in test_cli.py::test_cv_report_fit_predict)."""

import os
import re
import subprocess
import sys

import pytest

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.cli._commands import card, cv, embed, fit, predict, report
from sklearn_dinoatten.cli._demo import demo
from sklearn_dinoatten.cli._main import build_parser as _parser

from .test_cli import FAST, make_study

COMMANDS = {"embed": embed, "cv": cv, "fit": fit, "card": card, "predict": predict,
            "report": report, "demo": demo}


def test_help_is_quick_and_says_each_command_in_full():
    code = ("import sys\nfrom sklearn_dinoatten.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted({'torch', 'sklearn'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]")  # neither torch nor scikit-learn imported
    text = " ".join(result.stdout.split())
    for name, function in COMMANDS.items():
        summary = " ".join(function.__doc__.split("\n\n")[0].split()).replace("``", "")
        assert summary.endswith(".") and f"{name} {summary}" in text


def test_options_are_named_as_in_python_with_short_aliases():
    short = _parser().parse_args(["cv", "d", "--out", "o", "--epochs", "3", "--seed", "2",
                                  "--folds", "4", "--resnet-epochs", "5"])
    named = _parser().parse_args(["cv", "d", "--out", "o", "--max-epochs", "3",
                                  "--random-state", "2", "--n-folds", "4",
                                  "--resnet-max-epochs", "5"])
    assert vars(short) == vars(named)
    assert (named.max_epochs, named.random_state, named.folds, named.resnet_epochs) == (
        3, 2, 4, 5)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study") / "data", n=8)


def test_quiet_verbose_and_overwrite(study, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["cv", study, "--method", "mean", "--out", out, "-q", *FAST]) == 0
    captured = capsys.readouterr()
    assert "fold 1/2" not in captured.out and "Embedding volumes" not in captured.err
    assert "| Mean pooling |" in captured.out  # the results are still printed
    assert main(["cv", study, "--method", "mean", "--out", out, *FAST]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "holds a run already: pass --overwrite" in error
    assert main(["cv", study, "--method", "mean", "--out", out, "-v", "--overwrite",
                 *FAST]) == 0
    assert "train_loss" in capsys.readouterr().out  # skorch's epoch log


def test_offline_default_weights_fail_fast_in_one_line(study, tmp_path):
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_dinoatten", "embed", study, "--cache-dir",
         str(tmp_path / "cache"), "--image-size", "28"],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "127.0.0.1 cannot be reached" in result.stderr and "--weights FILE" in result.stderr


def test_warnings_name_the_options_and_print_paths_plainly(tmp_path, capsys):
    """Before: "set slice_spacing= and pixel_spacing=" on the command line, and scan
    paths as np.str_('...')."""
    import numpy as np

    from .._helpers import save_nifti

    data = make_study(tmp_path / "data", n=8)  # 32 x 32 x 6 voxels of 1 mm
    save_nifti(os.path.join(data, "s00.nii.gz"), np.random.default_rng(0).normal(
        size=(32, 32, 6)), np.diag([2.0, 2.0, 2.0, 1.0]))  # one scan of 2 mm voxels
    assert main(["fit", data, "--out", str(tmp_path / "m.safetensors"), "--axis",
                 "sagittal", "--epochs", "1", "--weights", "random", "--image-size",
                 "28"]) == 0
    err = capsys.readouterr().err
    assert ("more than 20 % apart, but slices are taken by index and resized to fit: set "
            "--slice-spacing and --pixel-spacing (mm)") in err
    assert "warning: Volume '" in err and "thinner than one 14-pixel patch" in err
    assert "np.str_" not in err and "_spacing=" not in err
    assert main(["embed", data, "--cache-dir", str(tmp_path / "c"), "--pixel-spacing", "1",
                 "--weights", "random", "--image-size", "14"]) == 0
    err = capsys.readouterr().err
    assert "(--image-size 14 x --pixel-spacing 1 mm)" in err
    assert re.search(r"--image-size \d+ would hold it, or --pixel-spacing \d", err)
