"""The model card's record: made from the training scans, saved under the model file's
digest, every field checked when read back, and the fingerprint of the training scans."""

import copy
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    OperatingPointClassifier,
    persistence,
)
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.evaluation import (
    card_markdown,
    check_card,
    make_card,
    scan_digests,
    training_scans_scored,
)
from sklearn_dinoatten.persistence import load_model, read_card, save_model

from .._helpers import FAST, save_nifti


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``(model, scans, y, groups, labels_file)``: a pipeline fitted on 8 scan files."""
    root = tmp_path_factory.mktemp("card")
    X, y = make_volumes(n_samples=8, shape=(20, 20, 4), random_state=0)
    scans = [save_nifti(str(root / f"s{i}.nii.gz"), volume) for i, volume in enumerate(X)]
    labels = root / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"s{i}.nii.gz,{c}\n" for i, c in enumerate(y)))
    model = make_pipeline(DinoSliceEmbedder(**FAST), OperatingPointClassifier(
        estimator=AttentionPoolClassifier(max_epochs=2, random_state=0), threshold=0.4))
    return model.fit(scans, y), scans, y, np.repeat(np.arange(4), 2), str(labels)


def test_the_record_counts_the_training_data_and_digests_its_scans(fitted):
    model, scans, y, groups, labels = fitted
    card = make_card(model, scans, y, groups=groups, labels_file=labels)
    training = card["training"]
    assert training["n_scans"] == 8 and training["n_subjects"] == 4
    assert training["classes"] == [[str(c), int(np.sum(y == c)), len(set(groups[y == c]))]
                                   for c in np.unique(y)]
    assert training["labels_file"] == "labels.csv" and len(training["labels_sha256"]) == 64
    assert training["scan_digests"] == scan_digests(scans)
    assert card["weights_sha256"] is None and card["evaluation"] is None  # random weights


def test_the_fingerprint_counts_scans_by_content(fitted, tmp_path):
    model, scans, y, _, _ = fitted
    card = make_card(model, scans[:5], y[:5])
    renamed = save_nifti(str(tmp_path / "copy.nii.gz"), make_volumes(
        n_samples=8, shape=(20, 20, 4), random_state=0)[0][0])  # scan 0's voxels, re-saved
    other = make_volumes(n_samples=2, shape=(20, 20, 4), random_state=9)[0]
    assert training_scans_scored(card, scans) == 5  # all five, some
    assert training_scans_scored(card, [renamed, *other]) == 1
    assert training_scans_scored(card, list(other)) == 0  # none
    assert training_scans_scored(None, scans) is None  # a model saved without a card


def test_validation_scans_are_in_the_fingerprint(fitted):
    """Scans that stopped the fit early or chose its threshold are no external test."""
    model, scans, y, _, _ = fitted
    card = make_card(model, scans[:5], y[:5], X_val=scans[5:7])
    assert card["training"]["n_scans"] == 5 and card["training"]["n_validation"] == 2
    assert training_scans_scored(card, scans) == 7
    assert "digests of the 7 scans its fit used (2 of them validation scans)" in card_markdown(
        model, card=card)


def test_the_record_is_saved_under_the_files_digest_and_read_back(fitted, tmp_path):
    model, scans, y, groups, labels = fitted
    card = make_card(model, scans, y, groups=groups, labels_file=labels)
    path = tmp_path / "model.safetensors"
    save_model(model, path, card=card)
    assert read_card(path) == card
    np.testing.assert_array_equal(load_model(path).predict_proba(scans),
                                  model.predict_proba(scans))
    text = card_markdown(load_model(path), card=read_card(path))
    assert "1 called where its probability is at least 0.4" in text
    assert "8 scans of 4 subjects: all the labelled scans." in text
    data = bytearray(path.read_bytes())  # the card is under the digest
    at = data.index(b"all the labelled scans")
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        read_card(path)


def test_a_weights_file_is_recorded_by_its_sha256(fitted, tmp_path):
    model, scans, y, _, _ = fitted
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not really weights")
    unfitted = make_pipeline(DinoSliceEmbedder(weights=str(weights)), model[-1])
    import hashlib

    assert make_card(unfitted, scans, y)["weights_sha256"] == hashlib.sha256(
        b"not really weights").hexdigest()


def forged_cards(card):
    """Each field of ``card`` given a wrong type or shape, with the words it is refused with."""
    cases = [(("format",), "sklearn_dinoatten.card/0", "format must be"),
             (("created",), 2026, "created has the wrong type"),
             (("training", "n_scans"), "8", "training.n_scans has the wrong type"),
             (("training", "n_scans"), True, "training.n_scans has the wrong type"),
             (("training", "n_validation"), None, "training.n_validation has the wrong type"),
             (("training", "n_subjects"), [4], "training.n_subjects has the wrong type"),
             (("training", "classes"), [["0", 4]], "training.classes must hold"),
             (("training", "scans"), None, "training.scans has the wrong type"),
             (("training", "labels_sha256"), "abc", "training.labels_sha256 must be a SHA-256"),
             (("training", "scan_digests"), ["0" * 64], "training.scan_digests must be 8 SHA-256 "
              "digests"),
             (("weights_sha256",), 12, "weights_sha256 must be a SHA-256"),
             (("evaluation",), [], "evaluation has the wrong type"),
             (("evaluation",), {"run": "r", "created": "c", "caption": "x", "reference": "m",
                                "metrics": {"auc": 1}},
              "evaluation.metrics must map metric names to text"),
             (("training",), "all", "training has the wrong type")]
    for keys, value, message in cases:
        forged = copy.deepcopy(card)
        target = forged
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        yield forged, message


def test_every_field_of_a_forged_card_is_one_line(fitted, tmp_path):
    model, scans, y, groups, labels = fitted
    card = make_card(model, scans, y, groups=groups, labels_file=labels)
    path = tmp_path / "model.safetensors"
    save_model(model, path, card=card)
    with safe_open(path, framework="pt") as f:
        header, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for forged, message in forged_cards(card):
        with pytest.raises(ValueError, match=message):
            check_card(forged)
        text = json.dumps(forged)
        save_file(tensors, path, metadata={**header, "card": text, "sha256": persistence._digest(
            header["model"], tensors, text)})
        with pytest.raises(ValueError, match="has a malformed model card: " + message) as error:
            read_card(path)
        assert "\n" not in str(error.value)


def test_a_card_without_the_model_is_refused_by_the_loader_too(tmp_path):
    """A card is read only from a model file whose digest holds."""
    path = tmp_path / "x.safetensors"
    save_file({"x": torch.zeros(1)}, path, metadata={"format": persistence.FORMAT,
                                                     "model": "{}", "card": "{}",
                                                     "sha256": "0" * 64})
    with pytest.raises(ValueError, match="damaged"):
        read_card(path)


def test_a_model_saved_without_a_card_gets_the_sections_the_model_can_tell(fitted):
    model, *_ = fitted
    text = card_markdown(model, card=None)
    for said in ("When and with which version it was trained: not recorded.",
                 "Not recorded: this model file was saved without a card",
                 "1 called where its probability is at least 0.4", "## Recipe",
                 "## Intended use and limits"):
        assert said in text, said
