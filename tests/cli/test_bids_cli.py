"""`dinoatten cv DATA` on a BIDS dataset: its T1w scans (sessions apart), labelled by a
column of participants.tsv (--label-column), folds and statistics grouped by subject."""

import json
import os

import pytest

from sklearn_dinoatten.cli import main

from ..datasets.test_bids import make_bids, write_tsv
from .test_cli import EMBED_FAST, FAST, read_csv

N_SUBJECTS = 8


@pytest.fixture
def bids(tmp_path):
    """8 subjects of two sessions each (AD or CN, an age, a sex), a ninth whose group is
    n/a, a T2w scan and a derivative beside; sub-01's age per session in its sessions.tsv."""
    scans = [f"sub-{s:02d}/ses-{v:02d}/anat/sub-{s:02d}_ses-{v:02d}_T1w.nii.gz"
             for s in range(1, N_SUBJECTS + 2) for v in (1, 2)]
    scans += ["sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz",
              "derivatives/preproc/sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"]
    rows = [[f"sub-{s:02d}", "AD" if s % 2 else "CN", 60 + 2.5 * s, "FM"[s % 3 == 0]]
            for s in range(1, N_SUBJECTS + 1)] + [["sub-09", "n/a", 90.5, "F"]]
    root = make_bids(tmp_path / "ds", scans, (["participant_id", "group", "age", "sex"], *rows))
    write_tsv(os.path.join(root, "sub-01", "sub-01_sessions.tsv"), ["session_id", "age"],
              ["ses-01", 61.0], ["ses-02", 63.75])
    return root


def folds_of_subjects(out):
    rows = read_csv(os.path.join(out, "predictions.csv"))
    folds = {}
    for row in rows:
        folds.setdefault(row["subject"], set()).add(row["fold"])
    return rows, folds


def test_cv_on_a_bids_dataset_groups_its_folds_by_subject(bids, tmp_path, capsys):
    out = str(tmp_path / "cv")
    assert main(["cv", bids, "--label-column", "group", "--pos-label", "AD", "--method",
                 "mean", "--subgroups", "sex", "--out", out, *FAST]) == 0
    said = capsys.readouterr()
    assert (f"BIDS dataset {bids}: {2 * N_SUBJECTS} '_T1w' scans of {N_SUBJECTS} subjects, "
            "labelled by the column 'group' of participants.tsv") in said.out
    assert f"grouped by subject ({N_SUBJECTS} subjects)" in said.out
    assert "have no 'group' (n/a, empty or no row) and are left out: those of sub-09" in said.err
    rows, folds = folds_of_subjects(out)
    assert len(rows) == 2 * N_SUBJECTS and len(folds) == N_SUBJECTS
    assert all(len(f) == 1 for f in folds.values())  # a subject's sessions in one fold
    assert {f for fs in folds.values() for f in fs} == {"1", "2"}
    assert all(os.sep + "derivatives" not in r["path"] and r["path"].endswith("_T1w.nii.gz")
               for r in rows)
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["grouped"] is True and run["n_subjects"] == N_SUBJECTS
    assert run["data"]["labels_csv"] == os.path.join(os.path.abspath(bids), "participants.tsv")
    assert run["data"]["label_column"] == "group" and run["data"]["bids_suffix"] == "T1w"
    subgroups = read_csv(os.path.join(out, "subgroups.csv"))
    # one value per scan, of the labelled ones: sub-03 and sub-06 are M, sub-09 left out
    assert {(r["level"], r["n_scans"]) for r in subgroups} == {("M", "4"), ("F", "12")}


def test_a_numeric_column_is_a_regression_on_subjects_values(bids, tmp_path, capsys):
    out = str(tmp_path / "cv")
    assert main(["cv", bids, "--label-column", "age", "--method", "mean", "--out", out,
                 *FAST]) == 0
    said = capsys.readouterr().out
    # sub-01's two sessions' ages, and one per other subject (sub-09's too: it has one)
    assert ("Regression: the column 'age' holds 10 distinct numbers among 10 values of "
            "subjects") in said
    rows, folds = folds_of_subjects(out)
    assert len(rows) == 2 * (N_SUBJECTS + 1) and all(len(f) == 1 for f in folds.values())
    targets = {os.path.basename(r["path"]): float(r["target"]) for r in rows}
    assert targets["sub-01_ses-01_T1w.nii.gz"] == 61.0  # sessions.tsv's, first
    assert targets["sub-01_ses-02_T1w.nii.gz"] == 63.75
    assert targets["sub-02_ses-02_T1w.nii.gz"] == 65.0  # participants.tsv's
    assert json.load(open(os.path.join(out, "run.json")))["task"] == "regression"


def test_embed_fit_and_refusals_on_a_bids_dataset(bids, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["embed", bids, "--cache-dir", cache, *EMBED_FAST]) == 0
    assert f"{2 * N_SUBJECTS + 2} scans," in capsys.readouterr().out  # sub-09's too
    assert main(["embed", bids, "--cache-dir", cache, "--bids-suffix", "T2w",
                 *EMBED_FAST]) == 0
    assert "1 scans," in capsys.readouterr().out
    model = str(tmp_path / "model.safetensors")
    assert main(["fit", bids, "--label-column", "group", "--pos-label", "AD", "--method",
                 "mean", "--out", model, *FAST[:-2]]) == 0
    assert f"trained on all {2 * N_SUBJECTS} labelled scans" in capsys.readouterr().out
    assert main(["card", model]) == 0
    assert "- Labels: `participants.tsv`" in capsys.readouterr().out
    for argv, message in [
        ([], "participants.tsv' has no column 'label' (nor has any sessions.tsv); its "
             "columns are participant_id, group, age, sex. A BIDS dataset names no label "
             "column: give --label-column (group, diagnosis, age...)."),
        (["--label-column", "group", "--bids-suffix", "FLAIR"],
         "has no '_FLAIR' scan; the suffixes of its scans are T1w (18), T2w (1)."),
        (["--label-column", "group", "--group-column", "site"],
         f"--group-column is for a labels CSV; {bids!r} is a BIDS dataset"),
        (["--label-column", "group", "--subgroups", "site"],
         "--subgroups 'site': Participants file"),
        (["--label-column", "group", "--subgroups", "participant_id"],
         "'participant_id' is the column of the subjects"),
    ]:
        assert main(["cv", bids, "--out", str(tmp_path / "no"), "--pos-label", "AD",
                     *argv, *FAST]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and message in errors[0], errors
    assert not os.path.exists(tmp_path / "no")


def test_a_labels_csv_in_a_bids_root_is_read_instead(bids, tmp_path, capsys):
    paths = sorted(os.path.relpath(os.path.join(folder, name), bids)
                   for folder, _, names in os.walk(os.path.join(bids, "sub-02")) for name in names
                   if name.endswith("_T1w.nii.gz"))
    with open(os.path.join(bids, "labels.csv"), "w") as f:
        f.write("path,label\n" + "".join(f"{p},{i}\n" for i, p in enumerate(paths)))
    cache = str(tmp_path / "cache")
    assert main(["embed", bids, "--cache-dir", cache, *EMBED_FAST]) == 0
    assert "2 scans," in capsys.readouterr().out


def test_predict_on_a_bids_dataset_evaluates_with_a_label_column(bids, tmp_path, capsys):
    model = str(tmp_path / "model.safetensors")
    assert main(["fit", bids, "--label-column", "group", "--pos-label", "AD", "--method",
                 "mean", "--out", model, *FAST[:-2]]) == 0
    out = str(tmp_path / "predictions.csv")
    assert main(["predict", model, bids, "--out", out]) == 0  # no column: predictions only
    rows = read_csv(out)
    assert len(rows) == 2 * (N_SUBJECTS + 1)  # sub-09's too; no T2w, no derivative
    assert all(r["path"].endswith("_T1w.nii.gz") and "derivatives" not in r["path"]
               for r in rows)
    run = str(tmp_path / "run")
    assert main(["predict", model, bids, "--label-column", "group", "--out", run]) == 0
    said = capsys.readouterr().out
    assert f"BIDS dataset {bids}: {2 * N_SUBJECTS} '_T1w' scans" in said
    info = json.load(open(os.path.join(run, "run.json")))
    assert info["grouped"] is True and info["data"]["label_column"] == "group"
    assert info["training_scans_scored"]  # the model was fitted on these very scans
