"""The benchmark scripts run end to end on tiny inputs (their numbers are not checked)."""

import os
import subprocess
import sys

import pytest

from .datasets.test_datasets import write_medmnist

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


@pytest.mark.slow  # 20 s, a subprocess training two methods; `make test-all` runs it
def test_medmnist3d_benchmark_runs_on_a_small_file(tmp_path):
    write_medmnist(tmp_path, "adrenal", 28, n_classes=2, counts=(12, 4, 6))
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "medmnist3d.py"), "--data-dir",
         str(tmp_path), "--methods", "resnet3d,mean", "--epochs", "1", "--resnet-depth", "10",
         "--resnet-width", "0.25", "--slice-epochs", "2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "held-out test set: trained on 12 scans, early stopping on 4 validation scans, " \
           "scored once on 6 test scans" in out
    assert "| 3D ResNet | this run |" in out
    assert "| Mean pooling | this run, random backbone |" in out
    assert "| ResNet-18 + 3D | published | 0.827 | 0.721 | |" in out
    assert "DeLong p vs 3D ResNet" in out and "both glands of its patients" in out
    assert "The published ResNet-18 + 3D AUC 0.827 is" in out
    assert os.path.isfile(tmp_path / "out" / "adrenal_28.csv")


@pytest.mark.slow  # 30 s; run_study, which it calls, is tested through the CLI
def test_compare_methods_writes_a_run_the_report_reads(tmp_path):
    from sklearn_dinoatten.evaluation import read_run

    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "compare_methods.py"), "--n-samples", "12",
         "--folds", "2", "--epochs", "1", "--image-size", "28", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "2-fold stratified cross-validation of 12 scans" in result.stdout
    run = read_run(out)
    assert list(run.names.values()) == ["DinoAtten3D", "Attention, CE only", "Mean pooling",
                                        "Gated attention", "MST aggregator", "SC-MIL",
                                        "3D ResNet"]
    assert len(run.labels) == 12 and run.info["random_weights"] is True


@pytest.mark.slow  # 20 s: every regressor, the ridge and the training mean on 12 scans
def test_brain_age_benchmark_writes_a_regression_run(tmp_path):
    from sklearn_dinoatten.evaluation import read_run

    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "brain_age.py"), "--n-subjects", "6",
         "--epochs", "2", "--folds", "2", "--image-size", "28", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| ridge-voxels |" in result.stdout and "| Training mean |" in result.stdout
    assert "MAE as a share of the training mean's (this run):" in result.stdout
    run = read_run(out)
    assert run.task == "regression" and "ridge-voxels" in run.predictions


@pytest.mark.slow  # 15 s
def test_regression_losses_benchmark_prints_ratios_to_mse(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "regression_losses.py"), "--seeds", "1",
         "--n-bags", "20", "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| MSE | " in result.stdout and "| 1.000 |" in result.stdout
    assert "| MSE + 1 RnC (t=0.1) |" in result.stdout


def test_dicom_reading_benchmark_prints_ratios_to_nifti():
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "dicom_reading.py"), "--n-slices", "12",
         "--image-size", "28", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| .nii.gz | " in result.stdout and "| 1.00x |" in result.stdout
    assert "| DICOM series | " in result.stdout and "padded to 12 axial slices" in result.stdout


@pytest.mark.slow  # 40 s: seven options, two candidate kernels
def test_cpu_speed_benchmark_ends_with_its_line():
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "cpu_speed.py"), "--image-size", "28",
         "--n-slices", "12", "--repeats", "1", "--study-volumes", "8", "--study-shape", "16",
         "16", "4"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| plain PyTorch float32 (every slice) |" in result.stdout
    for name in ("OpenVINO float32", "ONNX Runtime static int8 (QDQ)", "OpenVINO NNCF int8"):
        assert f"| {name} " in result.stdout or f"Left out: {name}: " in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("cpu_speedup=") and " engine=" in last and " auc_change=" in last
