"""The disk cache under real processes: killed midway, or two writing at once, it never
returns a damaged or foreign entry, and a rerun ends with the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding._cache import _checksum as cache_checksum

from ._helpers import save_nifti

# Embeds the scans given on the command line into a cache and saves the result. One
# volume (6 slices) per batch, so batches are the same whatever was cached before.
EMBED = """
import sys, warnings
import numpy as np
from sklearn_dinoatten import DinoSliceEmbedder
warnings.simplefilter("ignore")
cache, out, *paths = sys.argv[1:]
embedder = DinoSliceEmbedder(weights="random", image_size=84, batch_size=6, prefetch=0,
                             cache_dir=cache, verbose=0)
np.save(out, embedder.fit_transform(paths))
"""
N_SCANS = 12


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    X, _ = make_volumes(n_samples=N_SCANS, shape=(40, 40, 6), random_state=0)
    return [save_nifti(folder / f"s{i:02d}.nii.gz", v) for i, v in enumerate(X)]


@pytest.fixture(scope="module")
def two_at_once(scans, tmp_path_factory):
    """Two processes embedding the scans into one cache at the same time: the cache and
    each one's result."""
    cache = tmp_path_factory.mktemp("shared") / "cache"
    runs = [EmbeddingRun(cache, cache.parent / f"out{i}.npy", scans) for i in range(2)]
    return cache, [np.load(run.wait_and_load()) for run in runs]


class EmbeddingRun:
    """The embedding script, started in its own process."""

    def __init__(self, cache, out, paths):
        self.out = str(out)
        self.process = subprocess.Popen(
            [sys.executable, "-c", EMBED, str(cache), self.out, *paths],
            stderr=subprocess.PIPE, text=True,
        )

    def wait_and_load(self):
        _, stderr = self.process.communicate(timeout=300)
        assert self.process.returncode == 0, stderr
        return self.out


def entries(cache):
    """The cache's entries, each checked: complete and with a matching checksum."""
    found = []
    for folder, _, files in os.walk(cache):
        for name in files:
            if name.endswith(".npz"):
                with np.load(os.path.join(folder, name)) as entry:
                    value, checksum = entry["embedding"], str(entry["sha256"])
                assert cache_checksum(name.removesuffix(".npz"), value) == checksum
                found.append(name)
    return found


def test_a_run_killed_midway_resumes_to_the_same_result(scans, two_at_once, tmp_path):
    cache = tmp_path / "cache"
    run = EmbeddingRun(cache, tmp_path / "killed.npy", scans)
    deadline = time.monotonic() + 300
    while not os.path.isdir(cache) or len(entries(cache)) < 2:
        assert run.process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    done = entries(cache)  # every entry it left is whole
    assert 2 <= len(done) < N_SCANS
    rerun = np.load(EmbeddingRun(cache, tmp_path / "rerun.npy", scans).wait_and_load())
    np.testing.assert_array_equal(rerun, two_at_once[1][0])
    assert len(entries(cache)) == N_SCANS


def test_two_processes_writing_one_cache(two_at_once):
    cache, (first, second) = two_at_once
    np.testing.assert_array_equal(first, second)
    assert len(entries(cache)) == N_SCANS
    leftovers = [name for _, _, files in os.walk(cache) for name in files
                 if not name.endswith(".npz")]
    assert leftovers == []  # no temporary file left behind


def test_ctrl_c_in_the_command_line_says_how_to_go_on(scans, tmp_path):
    """With reader processes, which stop with it."""
    cache = tmp_path / "cache"
    process = subprocess.Popen(
        [sys.executable, "-m", "sklearn_dinoatten", "embed", os.path.dirname(scans[0]),
         "--cache-dir", str(cache), "--weights", "random", "--image-size", "84",
         "--n-readers", "2",
         "--batch-size", "6"],  # one scan per batch: 11 batches left after the first entry
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job ignores SIGINT, and its children inherit that: the
        # run would not see the Ctrl-C this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not os.path.isdir(cache) or not entries(cache):
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert stderr.strip().endswith(
        f"interrupted; finished embeddings are cached in {cache}, rerun to go on.")
    assert 1 <= len(entries(cache)) < N_SCANS
    if os.path.isdir("/proc"):  # the readers ran the same command line: none is left
        assert not [pid for pid in os.listdir("/proc") if pid.isdigit()
                    and str(cache).encode() in read_cmdline(pid)]


def read_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:  # ended meanwhile
        return b""


def interrupt_at_step(monkeypatch, step):
    """Make the ``step``-th training step of any net raise KeyboardInterrupt (Ctrl-C)."""
    from sklearn_dinoatten.utils._skorch import InterruptibleNet

    calls, train_step = [], InterruptibleNet.train_step

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return train_step(self, *args, **kwargs)

    monkeypatch.setattr(InterruptibleNet, "train_step", interrupted)
    return calls


@pytest.mark.parametrize("make", ["classifier", "detector"])
def test_ctrl_c_stops_a_fit_and_leaves_no_model(monkeypatch, make):
    """skorch would end training quietly and return the net as trained so far."""
    from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
    from sklearn_dinoatten.anomaly import SpatialARAnomalyDetector

    rng = np.random.default_rng(0)
    if make == "classifier":
        estimator, X = AttentionPoolClassifier(max_epochs=100_000), rng.normal(size=(8, 3, 4))
    else:
        estimator = SpatialARAnomalyDetector(
            embedder=DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
            max_epochs=100_000, batch_size=1)
        X = list(rng.normal(size=(4, 16, 16)))
    calls = interrupt_at_step(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, [0, 1] * 4 if make == "classifier" else None)
    assert len(calls) == 3
    assert not [name for name in vars(estimator) if name.endswith("_")]


def cv_args(data, out):
    return ["cv", data, "--out", out, "--weights", "random", "--image-size", "28",
            "--epochs", "2", "--folds", "2", "--method", "mean"]


def test_ctrl_c_in_cv_writes_nothing(monkeypatch, tmp_path, capsys):
    from sklearn_dinoatten.cli import main

    from .cli.test_cli import make_study

    data = make_study(tmp_path / "data", n=8)
    interrupt_at_step(monkeypatch, 2)
    assert main(cv_args(data, str(tmp_path / "run"))) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (  # after the progress bar
        "dinoatten cv: interrupted; no results were written; no embedding was kept (only "
        "--cache-dir keeps them on disk).")
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_a_cv_that_fails_while_writing_leaves_the_last_run_whole(monkeypatch, tmp_path,
                                                                  capsys):
    """A full disk or a file-size limit midway: the earlier run stays as it was."""
    from sklearn_dinoatten import cli
    from sklearn_dinoatten.evaluation import _runs as runs
    from sklearn_dinoatten.utils._files import write_csv

    from .cli.test_cli import make_study

    data, out = make_study(tmp_path / "data", n=8), str(tmp_path / "run")
    assert cli.main(cv_args(data, out)) == 0
    before = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}

    def disk_full_at_metrics(path, rows):  # predictions.csv was written before it
        if path.endswith("metrics.csv"):
            raise OSError(27, "File too large")
        write_csv(path, rows)

    monkeypatch.setattr(runs, "write_csv", disk_full_at_metrics)
    assert cli.main(cv_args(data, out) + ["--seed", "1", "--overwrite"]) == 1
    assert capsys.readouterr().err.strip().endswith("error: [Errno 27] File too large")
    after = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["data", "run"]
