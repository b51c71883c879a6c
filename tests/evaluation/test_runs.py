"""The run directory's one writer and one reader agree, at full precision."""

import csv

import numpy as np
import pytest

from sklearn_dinoatten.evaluation import Run, metric_columns, read_run, write_run


def a_run(grouped=True):
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1.0, 1.0], size=5)
    info = {"classes": [0, 1], "positive_label": 1, "reference": "mean", "grouped": grouped,
            "caption": "Protocol: a test.",
            "methods": {"mean": {"name": "Mean pooling"}, "mst": {"name": "MST aggregator"}}}
    columns = metric_columns()
    metrics = [dict(zip(columns, [name, *np.linspace(0.05, 0.95, len(columns) - 1)],
                        strict=True), delong_p=p)
               for name, p in (("Mean pooling", np.nan), ("MST aggregator", 0.04))]
    return Run(info, np.array(["a.nii.gz", "b.nii.gz", "c.nii", "d.nii", "e.nii"]),
               np.array([0, 1, 0, 1, 1]), {"mean": proba, "mst": proba[::-1]},
               groups=np.array(["s1", "s1", "s2", "s3", "s3"]), folds=np.array([1, 2, 1, 2, 1]),
               outputs={"embedding_mean": rng.normal(size=(5, 3)), "n_slices": np.arange(5)},
               metrics=metrics)


def test_a_run_reads_back_as_written(tmp_path):
    run = a_run()
    write_run(tmp_path, run)
    back = read_run(tmp_path)
    assert back.classes == ["0", "1"] and back.positive == "1" and back.reference == "mean"
    assert back.names == {"mean": "Mean pooling", "mst": "MST aggregator"}
    assert back.labels.tolist() == ["0", "1", "0", "1", "1"]
    for key in run.proba:
        np.testing.assert_array_equal(back.proba[key], run.proba[key])  # every bit
        assert back.pred[key].tolist() == [str(c) for c in run.pred[key]]
    assert back.groups.tolist() == ["s1", "s1", "s2", "s3", "s3"]
    assert back.folds.tolist() == [1, 2, 1, 2, 1]
    np.testing.assert_array_equal(back.outputs["embedding_mean"], run.outputs["embedding_mean"])
    assert back.metrics_row("mst")["delong_p"] == "0.04"
    with open(tmp_path / "predictions.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["path", "label", "subject", "fold", "mean_pred", "mean_p_0", "mean_p_1",
                      "mst_pred", "mst_p_0", "mst_p_1"]
    markdown = (tmp_path / "metrics.md").read_text()
    row = run.metrics[0]
    assert (f"| Mean pooling | {row['auc']:.3f} [{row['auc_ci_low']:.3f}, "
            f"{row['auc_ci_high']:.3f}] |") in markdown  # the discrimination table
    assert f"| Mean pooling | {row['threshold']:.3f} | " in markdown  # the operating point
    assert f"| Mean pooling | {row['brier']:.3f} [{row['brier_ci_low']:.3f}" in markdown
    assert "DeLong p vs Mean pooling" in markdown and markdown.endswith("Protocol: a test.\n")


def test_subjects_are_read_only_from_a_grouped_run(tmp_path):
    write_run(tmp_path, a_run(grouped=False))
    assert read_run(tmp_path).groups is None


def test_a_prediction_of_an_unknown_class_is_refused(tmp_path):
    run = a_run()
    run.labels[0] = 7
    write_run(tmp_path, run)
    with pytest.raises(ValueError, match=r"Malformed predictions.csv .*labels \['7'\]"):
        read_run(tmp_path)


def test_p_values_keep_three_significant_digits_with_their_zeros():
    from sklearn_dinoatten.evaluation._markdown import metric_text

    assert [metric_text({"delong_p": p}, "delong_p") for p in (0.61, 0.261, 0.000123, 1.0)] \
        == ["0.610", "0.261", "0.000123", "1.00"]
