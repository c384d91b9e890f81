import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

from aigi.cli import main as aigi_main
from aigi.inference.pipeline import fake_score
from aigi.train import parse_training_arguments, train
from test_training import tiny_arguments

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def fiser_arguments(data, output_dir, **overrides) -> list[str]:
    values = {"per_device_batch_size": 8, "augment_preset": "fiser", "aug_symmetric_codec": 1.0, **overrides}
    return tiny_arguments("fiser", data, output_dir, **values)


@pytest.fixture(scope="module")
def fiser_run(detection_folder, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("fiser_run")
    train(parse_training_arguments(fiser_arguments(detection_folder, output_dir)))
    return output_dir


def test_training_logs_both_terms_and_saves_the_encoder(fiser_run):
    log = [json.loads(line) for line in (fiser_run / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2, 3, 4]
    for record in log:
        assert record["loss"] == pytest.approx(record["coarse"] + record["fine"], rel=1e-5)
        assert record["bank_size"] == 8
    assert any(record["fine"] > 0 for record in log)
    final = fiser_run / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["model_type"] == "fiser" and config["backbone"] == "test_resnet" and config["feature_layer"] is None
    assert json.loads((final / "generators.json").read_text()) == {"gen_a": 0, "gen_b": 1, "real": 2}


def test_coarse_only_ablation_trains_without_the_fine_term(detection_folder, tmp_path):
    train(parse_training_arguments(fiser_arguments(detection_folder, tmp_path, fine_weight=0.0, max_steps=2)))
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["loss"] == pytest.approx(record["coarse"], rel=1e-6)


@pytest.mark.parametrize("head", ["knn", "prototype"])
def test_fit_head_makes_a_detector_the_pipeline_loads(fiser_run, detection_folder, tmp_path, head):
    import aigi  # noqa: F401  (registration)

    output = tmp_path / head
    assert aigi_main(["fit-head", "--model", str(fiser_run / "final"), "--data", str(detection_folder),
                      "--output", str(output), "--head", head]) == 0
    report = json.loads((output / "head_fit.json").read_text())
    assert (report["real_count"], report["fake_count"]) == (8, 8)
    weights = load_file(str(output / "model.safetensors"))
    encoder = load_file(str(fiser_run / "final" / "model.safetensors"))
    for name, value in encoder.items():  # the encoder is copied unchanged
        torch.testing.assert_close(weights[f"fiser.{name}"], value)
    if head == "knn":
        assert weights["head.bank"].shape[0] == 16 and report["head_size"] == 16
    detector = pipeline("ai-image-detection", model=str(output))
    scores = [fake_score(detector(str(path))) for path in sorted(detection_folder.rglob("*.*"))]
    assert len(scores) == 16 and all(0.0 <= score <= 1.0 for score in scores)


def test_fewshot_fits_an_svm_on_k_images_of_one_generator(fiser_run, detection_folder, tmp_path):
    # Starting from a fitted detector (its kNN head replaced) works like starting from the encoder.
    knn_detector, output = tmp_path / "knn", tmp_path / "fewshot"
    assert aigi_main(["fit-head", "--model", str(fiser_run / "final"), "--data", str(detection_folder),
                      "--output", str(knn_detector), "--head", "knn"]) == 0
    assert aigi_main(["fewshot", "--model", str(knn_detector), "--data", str(detection_folder),
                      "--output", str(output), "--shots", "3", "--fake-generators", "gen_b"]) == 0
    report = json.loads((output / "head_fit.json").read_text())
    assert (report["head"], report["shots"], report["real_count"], report["fake_count"]) == ("svm", 3, 3, 3)
    assert report["fake_generators"] == ["gen_b"]
    config = json.loads((output / "config.json").read_text())
    assert config["head"] == "svm" and 1 <= config["head_size"] <= 6 and config["svm_gamma"] > 0
    weights = load_file(str(output / "model.safetensors"))
    assert "head.bank" not in weights and weights["head.support_vectors"].shape[0] == config["head_size"]
    for name, value in load_file(str(fiser_run / "final" / "model.safetensors")).items():
        torch.testing.assert_close(weights[f"fiser.{name}"], value)


def test_fewshot_refuses_a_head_that_needs_all_the_data(fiser_run, detection_folder, tmp_path, capsys):
    assert aigi_main(["fewshot", "--model", str(fiser_run / "final"), "--data", str(detection_folder),
                      "--output", str(tmp_path / "x"), "--head", "knn"]) == 2
    assert "--head must be one of" in capsys.readouterr().err


def test_feature_map_writes_a_picture_and_its_coordinates(fiser_run, detection_folder, tmp_path):
    detector_dir = tmp_path / "detector"
    assert aigi_main(["fit-head", "--model", str(fiser_run / "final"), "--data", str(detection_folder),
                      "--output", str(detector_dir)]) == 0
    picture = tmp_path / "map.png"
    assert aigi_main(["feature-map", "--model", str(detector_dir), "--data", str(detection_folder),
                      "--output", str(picture), "--protocol", "raw"]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads(picture.with_suffix(".json").read_text())
    assert sorted({point["generator"] for point in points}) == ["gen_a", "gen_b", "real"] and len(points) == 16


def test_two_processes_contrast_against_the_gathered_bank(detection_folder, tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "aigi.train",
        *fiser_arguments(detection_folder, tmp_path, max_steps=2, per_device_batch_size=4),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [record["bank_size"] for record in log] == [8, 8]  # 2 processes x 4 images
    assert (tmp_path / "final" / "model.safetensors").is_file()
