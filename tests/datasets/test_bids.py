"""A BIDS dataset read as labelled scans: sub-<label>/[ses-<label>/]anat/ files found by
suffix and entities, labels from participants.tsv (a subject's sessions.tsv first), the
subjects as groups, and each refusal in one line naming the file and the subject."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from sklearn_dinoatten.datasets import (
    bids_columns,
    find_bids_scans,
    is_bids_dataset,
    load_bids,
)

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # 1 x 1 x 2 mm voxels


def write_scan(root, relative, seed=0):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    volume = np.random.default_rng(seed).normal(size=(12, 12, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, AFFINE), path)
    return path


def write_tsv(path, header, *rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n" + "".join("\t".join(map(str, row)) + "\n"
                                                   for row in rows))


def make_bids(root, scans, participants, description=True):
    """A BIDS tree: ``scans`` (paths below ``root``), participants.tsv (header, rows)."""
    os.makedirs(root, exist_ok=True)
    for i, relative in enumerate(scans):
        write_scan(root, relative, seed=i)
    if participants is not None:
        write_tsv(os.path.join(root, "participants.tsv"), *participants)
    if description:
        with open(os.path.join(root, "dataset_description.json"), "w") as f:
            json.dump({"Name": "test", "BIDSVersion": "1.9.0"}, f)
    return str(root)


PARTICIPANTS = (["participant_id", "group", "age", "sex"],
                ["sub-01", "AD", 71.5, "F"], ["sub-02", "CN", 64.25, "M"],
                ["sub-03", "CN", 80.0, "F"])

# Three subjects: sessions and runs (sub-01), no sessions (sub-02, sub-03), and what a
# dataset holds besides its raw scans.
SCANS = ["sub-01/ses-01/anat/sub-01_ses-01_run-1_T1w.nii.gz",
         "sub-01/ses-01/anat/sub-01_ses-01_run-2_T1w.nii.gz",
         "sub-01/ses-02/anat/sub-01_ses-02_T1w.nii",
         "sub-02/anat/sub-02_T1w.nii.gz",
         "sub-03/anat/sub-03_T1w.nii.gz"]
NOT_SCANS = ["sub-02/anat/sub-02_T2w.nii.gz",  # another suffix
             "sub-03/func/sub-03_task-rest_bold.nii.gz",
             "derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz",
             "sourcedata/sub-04/anat/sub-04_T1w.nii.gz",
             "code/sub-05/anat/sub-05_T1w.nii.gz",
             ".heudiconv/sub-06/anat/sub-06_T1w.nii.gz",
             "sub-02/.git/anat/sub-02_T1w.nii.gz"]


@pytest.fixture
def dataset(tmp_path):
    return make_bids(tmp_path / "ds", SCANS + NOT_SCANS, PARTICIPANTS)


def relative(paths, root):
    return [os.path.relpath(path, root).replace(os.sep, "/") for path in paths]


def test_sessions_and_runs_are_scans_of_their_own_grouped_by_subject(dataset):
    paths, y, groups, split = load_bids(dataset, label_column="group")
    assert relative(paths, dataset) == SCANS  # sorted; derivatives, hidden folders skipped
    assert y.tolist() == ["AD", "AD", "AD", "CN", "CN"]
    assert groups.tolist() == ["sub-01", "sub-01", "sub-01", "sub-02", "sub-03"]
    assert split is None
    assert relative(find_bids_scans(dataset), dataset) == SCANS
    assert relative(find_bids_scans(dataset, suffix="T2w"), dataset) == [NOT_SCANS[0]]


def test_a_bids_root_is_recognised(tmp_path, dataset):
    assert is_bids_dataset(dataset)
    os.remove(os.path.join(dataset, "dataset_description.json"))  # participants.tsv, sub-*
    assert is_bids_dataset(dataset)
    os.remove(os.path.join(dataset, "participants.tsv"))
    assert not is_bids_dataset(dataset)
    write_scan(tmp_path / "plain", "s00.nii.gz")
    (tmp_path / "plain" / "participants.tsv").write_text("participant_id\n")  # no sub-*
    assert not is_bids_dataset(tmp_path / "plain")
    assert not is_bids_dataset(tmp_path / "plain" / "s00.nii.gz")
    assert not is_bids_dataset(tmp_path / "absent")


def test_labels_are_parsed_as_a_labels_csv_is(tmp_path):
    root = make_bids(tmp_path, ["sub-01/anat/sub-01_T1w.nii.gz",
                                "sub-02/anat/sub-02_T1w.nii.gz"],
                     (["participant_id", "dx"], ["sub-01", "1"], ["sub-02", "0.0"]))
    _, y, _, _ = load_bids(root, label_column="dx")
    assert y.dtype == np.int64 and y.tolist() == [1, 0]  # integers when every label is one


def test_regression_targets_and_sessions_tsv_first(dataset):
    write_tsv(os.path.join(dataset, "sub-01", "sub-01_sessions.tsv"),
              ["session_id", "age"], ["ses-01", 70.0])  # ses-02: no row, participants'
    paths, y, groups, _ = load_bids(dataset, label_column="age", task="regression")
    assert y.dtype == np.float64
    assert y.tolist() == [70.0, 70.0, 71.5, 64.25, 80.0]
    assert groups.tolist() == ["sub-01"] * 3 + ["sub-02", "sub-03"]
    _, subjects, values = bids_columns(dataset, ["age", "sex"])
    assert values == {"age": ["70.0", "70.0", "71.5", "64.25", "80.0"],
                      "sex": ["F", "F", "F", "M", "F"]} and subjects == groups.tolist()


def test_a_label_in_sessions_tsv_only(dataset):
    """A column sessions.tsv have and participants.tsv does not: scans of the other
    subjects have no value, and are left out."""
    write_tsv(os.path.join(dataset, "sub-01", "sub-01_sessions.tsv"),
              ["session_id", "mmse"], ["ses-01", 24], ["ses-02", 27])
    with pytest.warns(UserWarning, match=r"2 '_T1w' scan\(s\) .* have no 'mmse' .* those "
                                         "of sub-02, sub-03"):
        paths, y, groups, _ = load_bids(dataset, label_column="mmse", task="regression")
    assert y.tolist() == [24.0, 24.0, 27.0] and set(groups) == {"sub-01"}


def test_a_subject_whose_sessions_change_label_is_warned_of(dataset):
    write_tsv(os.path.join(dataset, "sub-01", "sub-01_sessions.tsv"),
              ["session_id", "group"], ["ses-01", "MCI"], ["ses-02", "AD"])
    with pytest.warns(UserWarning, match="1 subject.* different labels .*sub-01"):
        _, y, _, _ = load_bids(dataset, label_column="group")
    assert y.tolist() == ["MCI", "MCI", "AD", "CN", "CN"]


def test_entities_filter_the_scans(tmp_path):
    root = make_bids(tmp_path, ["sub-01/anat/sub-01_acq-mprage_T1w.nii.gz",
                                "sub-01/anat/sub-01_acq-spgr_T1w.nii.gz",
                                "sub-02/anat/sub-02_acq-mprage_T1w.nii.gz"],
                     (["participant_id", "group"], ["sub-01", "a"], ["sub-02", "b"]))
    paths, y, groups, _ = load_bids(root, label_column="group", entities={"acq": "mprage"})
    assert relative(paths, root) == ["sub-01/anat/sub-01_acq-mprage_T1w.nii.gz",
                                     "sub-02/anat/sub-02_acq-mprage_T1w.nii.gz"]
    assert len(load_bids(root, label_column="group")[0]) == 3
    with pytest.raises(ValueError, match=r"has no '_T1w' scan with acq-fl3d; its '_T1w' "
                                         r"scans have acq-mprage, acq-spgr\.$"):
        load_bids(root, label_column="group", entities={"acq": "fl3d"})


def test_n_a_labels_are_left_out_with_a_warning(dataset):
    participants = [list(map(str, row)) for row in PARTICIPANTS]
    participants[2][1] = "n/a"  # sub-02's group
    write_tsv(os.path.join(dataset, "participants.tsv"), *participants)
    with pytest.warns(UserWarning, match=r"^1 '_T1w' scan\(s\) of BIDS dataset .* have no "
                                         r"'group' .* left out: those of sub-02\.$"):
        paths, y, groups, _ = load_bids(dataset, label_column="group")
    assert "sub-02" not in groups and y.tolist() == ["AD", "AD", "AD", "CN"]
    for row in participants[1:]:
        row[1] = "n/a"
    write_tsv(os.path.join(dataset, "participants.tsv"), *participants)
    with pytest.raises(ValueError, match="none of its 5 '_T1w' scan.* column 'group'"):
        load_bids(dataset, label_column="group")


def one_line(error):
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_subject_without_a_participants_row_is_refused(dataset):
    write_tsv(os.path.join(dataset, "participants.tsv"), *PARTICIPANTS[:3])  # no sub-03
    with pytest.raises(ValueError, match=r"participants\.tsv' has no row for the subject "
                                         r"sub-03 .*sub-03_T1w\.nii\.gz") as error:
        load_bids(dataset, label_column="group")
    one_line(error)


def test_a_dataset_without_participants_tsv_is_refused(dataset):
    os.remove(os.path.join(dataset, "participants.tsv"))
    with pytest.raises(FileNotFoundError, match="has no participants.tsv") as error:
        load_bids(dataset, label_column="group")
    assert dataset in one_line(error)


def test_a_label_column_that_does_not_exist_is_refused_naming_those_there_are(dataset):
    with pytest.raises(ValueError, match=r"participants\.tsv' has no column 'label'; its "
                                         r"columns are participant_id, group, age, sex\.$"):
        load_bids(dataset, label_column="label")


def test_a_suffix_without_scans_is_refused_naming_the_suffixes_there_are(dataset):
    with pytest.raises(ValueError, match=r"has no '_FLAIR' scan; the suffixes of its scans "
                                         r"are T1w \(5\), T2w \(1\), bold \(1\)\.$") as error:
        load_bids(dataset, label_column="group", suffix="FLAIR")
    one_line(error)
    with pytest.raises(FileNotFoundError, match="holds no NIfTI scan"):
        load_bids(make_bids(dataset + "2", [], PARTICIPANTS), label_column="group")


@pytest.mark.parametrize("damage, error, message", [
    (lambda root: write_tsv(os.path.join(root, "participants.tsv"),
                            ["subject", "group"], ["sub-01", "AD"]),
     ValueError, r"participants\.tsv' has no column 'participant_id', which BIDS requires"),
    (lambda root: write_tsv(os.path.join(root, "participants.tsv"), *PARTICIPANTS,
                            PARTICIPANTS[1]),
     ValueError, r"lists participant_id 'sub-01' twice, on lines 2 and 5"),
    (lambda root: os.rename(
        os.path.join(root, "sub-02", "anat", "sub-02_T1w.nii.gz"),
        os.path.join(root, "sub-02", "anat", "sub-03_T1w.nii.gz")),
     ValueError, r"sub-03_T1w\.nii\.gz' is not named for the folder 'sub-02'"),
    (lambda root: os.symlink(os.path.join(root, ".git", "annex", "missing"),
                             os.path.join(root, "sub-02", "anat", "sub-02_run-2_T1w.nii.gz")),
     FileNotFoundError, r"1 scan\(s\) .* are links to missing files, .*sub-02_run-2_T1w"),
    (lambda root: write_tsv(os.path.join(root, "sub-01", "sub-01_sessions.tsv"),
                            ["session_id", "age"], ["ses-01", "old"]),
     ValueError, r"^Sessions file .*sub-01_sessions\.tsv', line 2: column 'age' is 'old', "
                 r"not a number"),
])
def test_damaged_datasets_are_refused_in_one_line(dataset, damage, error, message):
    damage(dataset)
    with pytest.raises(error, match=message) as raised:
        load_bids(dataset, label_column="age", task="regression")
    one_line(raised)


def test_one_class_is_refused(dataset):
    with pytest.raises(ValueError, match=r"^The column 'sex' of BIDS dataset .* has one "
                                         r"class only \('F'\)"):
        load_bids(dataset, label_column="sex", entities={"sub": "01"})


def test_participants_tsv_as_a_spreadsheet_saves_it(tmp_path):
    """A byte-order mark and Windows line ends (a spreadsheet's "UTF-8 text")."""
    root = make_bids(tmp_path, [f"sub-0{i}/anat/sub-0{i}_T1w.nii.gz" for i in (1, 2, 3)],
                     None, description=False)
    with open(os.path.join(root, "participants.tsv"), "wb") as f:
        f.write("participant_id\tgroup\r\nsub-01\tÉtude\r\nsub-02\tn/a \r\n"
                "sub-03\tContrôle\r\n".encode("utf-8-sig"))
    assert is_bids_dataset(root)
    with pytest.warns(UserWarning, match="those of sub-02"):
        _, y, groups, _ = load_bids(root, label_column="group")
    assert y.tolist() == ["Étude", "Contrôle"] and groups.tolist() == ["sub-01", "sub-03"]
