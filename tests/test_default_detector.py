"""The bundled default detector: shipped in the package, calibrated, and used when no model is named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import load_file
from transformers import AutoConfig, pipeline

from aigi.demo import detector_choices
from aigi.evaluation.benchmark import read_predictions
from aigi.evaluation.metrics import threshold_at_fpr
from aigi.hub.export import export_model
from aigi.image_io import collect_image_files
from aigi.inference.pipeline import fake_score
from aigi.registry import DEFAULT_DETECTOR, SAMPLES_DIR, bundled_checkpoints, default_detector_path, resolve_model
from detector_tester import load_without_aigi

REPOSITORY = Path(__file__).parents[1]


def offline_environment(tmp_path: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    return environment


def test_the_default_is_a_bundled_safetensors_checkpoint_within_budget():
    assert DEFAULT_DETECTOR is not None
    bundled = {checkpoint["name"]: checkpoint for checkpoint in bundled_checkpoints()}
    assert DEFAULT_DETECTOR in bundled and bundled[DEFAULT_DETECTOR]["size_bytes"] <= 30_000_000
    folder = Path(default_detector_path())
    assert resolve_model(None) == str(folder)
    assert not list(folder.glob("*.bin")) and load_file(str(folder / "model.safetensors"))


def test_its_threshold_is_the_benchmark_calibration_at_five_percent_fpr():
    folder = Path(default_detector_path())
    provenance = json.loads((folder / "benchmark.json").read_text())["default_detector"]
    config = AutoConfig.from_pretrained(folder)
    assert config.decision_threshold == provenance["threshold"] and provenance["target_fpr"] == 0.05
    assert config.id2label == {0: "real", 1: "fake"} and config.label2id == {"real": 0, "fake": 1}


def test_its_threshold_is_recomputed_from_the_shipped_calibration_scores():
    folder = Path(default_detector_path())
    record = json.loads((folder / "benchmark.json").read_text())
    labels, scores, _ = read_predictions(REPOSITORY / record["calibration_predictions"])
    threshold = threshold_at_fpr(scores[labels == 0], 0.05)
    assert threshold == record["default_detector"]["threshold"]
    assert np.mean(scores[labels == 0] >= threshold) <= 0.05


def test_pipeline_without_a_model_uses_the_default_offline():
    detector = pipeline("ai-image-detection")
    assert Path(detector.model.name_or_path) == Path(default_detector_path())
    samples = [str(path) for path in collect_image_files([SAMPLES_DIR])]
    scores = [fake_score(output) for output in detector(samples, batch_size=4)]
    assert len(scores) == len(samples) and all(0.0 <= score <= 1.0 for score in scores)


def test_aigi_detect_scores_the_samples_with_no_model_argument(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "aigi", "detect", str(SAMPLES_DIR), "--json"], capture_output=True, text=True,
        env=offline_environment(tmp_path), cwd=tmp_path, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = json.loads(completed.stdout)
    threshold = AutoConfig.from_pretrained(default_detector_path()).decision_threshold
    assert len(rows) == len(collect_image_files([SAMPLES_DIR])) and not any(row["error"] for row in rows)
    for row in rows:
        assert row["label"] == ("fake" if row["score"] >= threshold else "real")


def test_the_demo_offers_the_default_first_without_extra_models():
    choices = detector_choices([])
    assert list(choices)[0] == DEFAULT_DETECTOR


def test_exported_default_loads_and_predicts_without_aigi(tmp_path):
    folder = export_model(DEFAULT_DETECTOR, tmp_path / "export")
    assert (folder / "README.md").is_file() and (folder / "model.safetensors").is_file()
    sample = sorted((SAMPLES_DIR / "fake").iterdir())[0]
    loaded = load_without_aigi(folder, sample, tmp_path)
    expected = fake_score(pipeline("ai-image-detection")(str(sample)))
    scores = {entry["label"]: entry["score"] for entry in loaded["output"]}
    assert abs(scores["fake"] - expected) < 1e-5
