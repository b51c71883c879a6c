"""What a user of the command line sees: help, option names, verbosity, protected runs
and the offline message (progress lines, warnings and predict on folders and labels are
checked in test_cli.py::test_cv_report_fit_predict)."""

import os
import subprocess
import sys

import pytest

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.cli._commands import cv, demo, embed, fit, predict, report
from sklearn_dinoatten.cli._main import build_parser as _parser

from .test_cli import FAST, make_study

COMMANDS = {"embed": embed, "cv": cv, "fit": fit, "predict": predict, "report": report,
            "demo": demo}


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
