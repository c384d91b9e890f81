"""`aigi benchmark` on tiny detectors: every row (trained, zero-fake, loaded, failed), resumption and the default."""

import json

import numpy as np
import pytest
import yaml

from aigi.cli import main
from aigi.evaluation.benchmark import read_predictions, training_flags
from aigi.evaluation.metrics import threshold_at_fpr

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY_TRAINING = {
    "backbone": "test_resnet", "image_size": 32, "patch_size": 32, "max_steps": 2, "per_device_batch_size": 4,
    "checkpointing_steps": 2, "logging_steps": 1, "num_workers": 0, "seed": 0,
}


@pytest.fixture(scope="module")
def benchmark_run(detection_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    config = {
        "output_dir": str(root / "runs"),
        "results_dir": str(root / "results"),
        "train_data": str(detection_folder),
        "jobs": 2,
        "stages": {"dair": {"task": "dair", "dair_channels": [4, 4, 8, 8], "max_steps": 2, "patch_size": 32,
                            "per_device_batch_size": 2, "num_workers": 0, "checkpointing_steps": 2}},
        "zero_fake": {"self_augmentation_dair": "{stage:dair}", "p_aug": 0.5},
        "datasets": {
            "folder": {"data": str(detection_folder), "protocols": "normalized,jpeg_q50", "held_out": ["gen_b"]},
        },
        "selection": {"data": str(detection_folder), "protocol": "normalized", "target_fpr": 0.25},
        "detectors": {
            "cnn": {"train": {"task": "classify", **TINY_TRAINING}},
            "fiser": {"train": {"task": "fiser", **TINY_TRAINING}, "head": {"head": "prototype",
                                                                            "protocol": "normalized"}},
            "absent": {"model": str(root / "no_such_model")},
        },
    }
    config_file = root / "benchmark.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["benchmark", "--config", str(config_file)]) == 0
    return root, config_file


def test_flags_of_a_training_entry():
    assert training_flags({"max_steps": 3, "real_only": True, "dair_channels": [4, 8], "model": None}) == [
        "--max_steps", "3", "--real_only", "true", "--dair_channels", "4", "8"]


def test_every_detector_gets_a_row_and_a_failure_is_reported(benchmark_run):
    root, _ = benchmark_run
    results = json.loads((root / "results" / "results.json").read_text())
    rows = {row["name"]: row for row in results["detectors"]}
    assert list(rows) == ["cnn", "cnn_zero_fake", "fiser", "fiser_zero_fake", "absent"]
    assert rows["absent"]["status"] == "failed" and "no_such_model" in rows["absent"]["error"]
    for name in ("cnn", "cnn_zero_fake", "fiser", "fiser_zero_fake"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        folder = rows[name]["datasets"]["folder"]
        assert folder["protocol"] == "normalized" and folder["n"] == 16
        assert set(folder["robustness_auroc"]) == {"normalized", "jpeg_q50"}
        assert set(folder["held_out_auroc"]) == {"gen_b"}
        assert 0.0 <= folder["ece"] <= 1.0
    assert rows["cnn_zero_fake"]["variant"] == "zero-fake"
    leaderboard = (root / "results" / "leaderboard.md").read_text()
    assert "| cnn_zero_fake | zero-fake |" in leaderboard and "failed: FileNotFoundError" in leaderboard
    copied = root / "results" / "eval" / "cnn" / "folder" / "jpeg_q50" / "metrics.json"
    assert json.loads(copied.read_text())["pooled"]["auroc"] == rows["cnn"]["datasets"]["folder"][
        "robustness_auroc"]["jpeg_q50"]
    for plot in ("per_generator_auroc_folder.png", "roc_folder.png", "robustness_folder.png"):
        assert (root / "results" / plot).read_bytes()[:4] == b"\x89PNG"


def test_zero_fake_runs_see_no_generator_output(benchmark_run):
    root, _ = benchmark_run
    arguments = json.loads((root / "runs" / "runs" / "cnn_zero_fake" / "training_args.json").read_text())
    assert arguments["real_only"] is True and arguments["self_augmentation_dair"].endswith("dair/final")
    head_fit = json.loads((root / "runs" / "runs" / "fiser_zero_fake_prototype" / "head_fit.json").read_text())
    assert head_fit["data"].endswith("pseudo_fakes/manifest.csv")
    manifest = (root / "runs" / "pseudo_fakes" / "manifest.csv").read_text()
    assert "gen_a" not in manifest and "gen_b" not in manifest and "dair_pseudo_fake" in manifest


def test_default_detector_is_the_best_selection_auroc_with_its_calibrated_threshold(benchmark_run):
    root, _ = benchmark_run
    results = json.loads((root / "results" / "results.json").read_text())
    choice = results["default_detector"]
    trained = [row for row in results["detectors"] if row["status"] == "ok"]
    assert choice["selection_auroc"] == max(row["selection"]["auroc"] for row in trained)
    row = next(row for row in trained if row["name"] == choice["name"])
    labels, scores, _ = read_predictions(root / "runs" / "eval" / choice["name"] / "selection" / "predictions.csv")
    assert choice["threshold"] == threshold_at_fpr(scores[labels == 0], 0.25)
    assert np.mean(scores[labels == 0] >= choice["threshold"]) <= 0.25
    assert row["selection"]["threshold_at_target_fpr"] == choice["threshold"]


def test_a_second_run_reuses_everything_on_disk(benchmark_run):
    root, config_file = benchmark_run
    weights = root / "runs" / "runs" / "cnn" / "final" / "model.safetensors"
    metrics = root / "runs" / "eval" / "cnn" / "folder" / "normalized" / "metrics.json"
    stamps = (weights.stat().st_mtime_ns, metrics.stat().st_mtime_ns)
    before = json.loads((root / "results" / "results.json").read_text())
    assert main(["benchmark", "--config", str(config_file), "--only", "cnn"]) == 0
    assert (weights.stat().st_mtime_ns, metrics.stat().st_mtime_ns) == stamps
    after = json.loads((root / "results" / "results.json").read_text())
    assert after["detectors"][:2] == before["detectors"][:2]


def test_a_config_sharing_the_runs_copies_only_its_own_reports(benchmark_run):
    root, config_file = benchmark_run
    config = yaml.safe_load(config_file.read_text())
    config["results_dir"] = str(root / "results_cnn_only")
    other = root / "cnn_only.yaml"
    other.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["benchmark", "--config", str(other), "--only", "cnn"]) == 0
    copied = {path.name for path in (root / "results_cnn_only" / "eval").iterdir()}
    assert copied == {"cnn", "cnn_zero_fake"}
    assert {"fiser", "fiser_zero_fake"} <= {path.name for path in (root / "runs" / "eval").iterdir()}
