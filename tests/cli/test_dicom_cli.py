"""The command line on DICOM series: a labels file listing series folders, a folder of
series without one, and one series given alone."""

import os

import numpy as np

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.datasets import make_volumes, write_dicom_series

from .test_cli import EMBED_FAST, FAST, read_csv

LPS = np.array([[-1.0, 0, 0, 20], [0, -1.0, 0, 20], [0, 0, 2.0, 0], [0, 0, 0, 1]])


def write_series_study(root, n=8):
    X, y = make_volumes(n_samples=n, shape=(24, 24, 6), random_state=0)
    lines = ["path,label"]
    for i, (volume, label) in enumerate(zip(X, y, strict=True)):
        write_dicom_series(os.path.join(root, "dicom", f"scan{i}"),
                           np.round(1000 * volume), LPS, random_state=i)
        lines.append(f"dicom/scan{i},{label}")
    with open(os.path.join(root, "labels.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(root)


def test_cv_fit_and_predict_take_dicom_series(tmp_path, capsys):
    data = write_series_study(tmp_path / "data")
    out = str(tmp_path / "cv")
    assert main(["cv", data, "--method", "mean", "--out", out, *FAST]) == 0
    rows = read_csv(os.path.join(out, "predictions.csv"))
    assert [os.path.basename(r["path"]) for r in rows] == [f"scan{i}" for i in range(8)]
    model = str(tmp_path / "model.safetensors")
    assert main(["fit", data, "--method", "mean", "--out", model, *FAST[:-2]]) == 0
    one = os.path.join(data, "dicom", "scan3")
    assert main(["predict", model, one, "--out", str(tmp_path / "one.csv")]) == 0
    assert [r["path"] for r in read_csv(tmp_path / "one.csv")] == [one]
    assert main(["predict", model, os.path.join(data, "dicom"),
                 "--out", str(tmp_path / "all.csv")]) == 0
    assert len(read_csv(tmp_path / "all.csv")) == 8  # every series of the folder
    capsys.readouterr()
    os.remove(os.path.join(data, "labels.csv"))
    assert main(["embed", data, "--cache-dir", str(tmp_path / "cache"), *EMBED_FAST]) == 0
    assert "8 scans," in capsys.readouterr().out


def test_a_series_that_is_not_one_volume_ends_the_command_in_one_line(tmp_path, capsys):
    data = write_series_study(tmp_path / "data", n=4)
    series = os.path.join(data, "dicom", "scan1")
    write_dicom_series(os.path.join(tmp_path, "other"), np.ones((24, 24, 2)), LPS)
    for name in os.listdir(tmp_path / "other"):  # a second series in the folder
        os.rename(tmp_path / "other" / name, os.path.join(series, "x" + name))
    assert main(["embed", data, "--cache-dir", str(tmp_path / "cache"), *EMBED_FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"DICOM series {series!r} holds 2 series" in err[0], err
