import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, pipeline

from aigi.data.transforms import AUGMENT_PRESETS, TrainingAugment
from aigi.inference.pipeline import fake_score
from aigi.train import parse_training_arguments, train
from aigi.train.samples import AugmentedDetectionDataset, training_augment
from aigi.train.tasks import ClassificationTask


def tiny_arguments(task: str, data, output_dir, **overrides) -> list[str]:
    values = {
        "task": task, "train_data": str(data), "output_dir": str(output_dir), "backbone": "test_resnet",
        "image_size": 32, "patch_size": 32, "max_steps": 4, "per_device_batch_size": 4, "checkpointing_steps": 2,
        "logging_steps": 1, "num_workers": 0, "ratios_per_batch": 2, "phases_per_ratio": 2, "seed": 3,
    }
    values.update(overrides)
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


def final_weights(output_dir) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "final" / "model.safetensors"))


@pytest.mark.parametrize("task", ["rescalecl-pretrain", "classify"])
def test_training_runs_logs_and_saves(task, detection_folder, tmp_path):
    final_dir = train(parse_training_arguments(tiny_arguments(task, detection_folder, tmp_path)))
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in log)
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["step_2", "step_4"]
    assert (final_dir / "model.safetensors").is_file() and (final_dir / "preprocessor_config.json").is_file()
    assert json.loads((final_dir / "config.json").read_text())["model_type"] == "rescalecl"
    assert (tmp_path / "log.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretraining_with_ratio_classification_logs_both_terms(detection_folder, tmp_path):
    arguments = tiny_arguments("rescalecl-pretrain", detection_folder, tmp_path, ratio_classification_weight=0.5,
                               input_highpass=True, max_ratio_denominator=3, max_steps=2)
    final_dir = train(parse_training_arguments(arguments))
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert record["loss"] == pytest.approx(record["supcon"] + 0.5 * record["ratio_ce"], rel=1e-5)
    assert json.loads((final_dir / "config.json").read_text())["input_highpass"] is True


def test_pretrained_encoder_feeds_classification(detection_folder, tmp_path):
    encoder_dir = train(parse_training_arguments(tiny_arguments("rescalecl-pretrain", detection_folder, tmp_path / "pre")))
    classifier_dir = train(parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path / "cls", model=encoder_dir, finetune_mode="linear", max_steps=2
    )))
    encoder = load_file(str(encoder_dir / "model.safetensors"))
    classifier = load_file(str(classifier_dir / "model.safetensors"))
    for name, value in encoder.items():  # linear mode: the pre-trained encoder is untouched
        torch.testing.assert_close(classifier[f"rescalecl.{name}"], value)
    assert "classifier.weight" in classifier


def test_resume_is_exact_and_never_overwrites(detection_folder, tmp_path):
    arguments = tiny_arguments("classify", detection_folder, tmp_path / "straight")
    train(parse_training_arguments(arguments))
    interrupted = tmp_path / "interrupted"
    train(parse_training_arguments(tiny_arguments("classify", detection_folder, interrupted, max_steps=2)))
    shutil.rmtree(interrupted / "final")
    with pytest.raises(FileExistsError):
        train(parse_training_arguments(tiny_arguments("classify", detection_folder, interrupted)))
    train(parse_training_arguments(tiny_arguments(
        "classify", detection_folder, interrupted, resume_from_checkpoint="latest"
    )))
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(interrupted)
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
    steps = [json.loads(line)["step"] for line in (interrupted / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize(("family", "flags", "config_class"), [
    ("cnnspot", {"augment_preset": "cnnspot"}, "CNNSpotConfig"),  # test_resnet: the backbone of tiny_arguments
    ("univfd", {}, "UnivFDConfig"),  # the offline, random frozen CLIP tower
    ("npr", {}, "NPRConfig"),  # the paper-size network: its width does not depend on --backbone
])
def test_baseline_families_train_from_scratch(family, flags, config_class, detection_folder, tmp_path):
    final_dir = train(parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path, family=family, max_steps=2, **flags
    )))
    model = AutoModelForImageClassification.from_pretrained(final_dir).eval()
    assert type(model.config).__name__ == config_class and model.config.image_size == 32
    scores = pipeline("ai-image-detection", model=str(final_dir))(str(next((detection_folder / "real").iterdir())))
    assert 0.0 <= fake_score(scores) <= 1.0


def test_cli_few_shot_accumulation_bf16(detection_folder, tmp_path):
    # A subprocess: accelerate's process-wide state cannot switch precision inside one interpreter.
    arguments = tiny_arguments(
        "classify", detection_folder, tmp_path, samples_per_class=4, per_device_batch_size=2,
        gradient_accumulation_steps=2, mixed_precision="bf16", max_steps=2,
    )
    completed = subprocess.run(
        [sys.executable, "-m", "aigi.cli", "train", *arguments], capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "process_0.json").read_text())
    assert summary["steps"] == 2 and summary["samples_seen"] == 8  # 2 steps x 2 micro-batches x 2 images


def test_yaml_config_with_flag_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("task: classify\ntrain_data: data\noutput_dir: out\nmax_steps: 7\nlearning_rate: 0.001\n")
    arguments = parse_training_arguments([str(config), "--max_steps", "3"])
    assert arguments.max_steps == 3 and arguments.learning_rate == 0.001 and arguments.task == "classify"
    with pytest.raises(ValueError, match="task"):
        parse_training_arguments(["--task", "nope", "--train_data", "d", "--output_dir", "o"])


def test_augmentation_defaults_to_the_codec_preset():
    arguments = parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o"])
    assert arguments.augment_preset == "codec"
    assert training_augment(arguments) == TrainingAugment(p_symmetric_codec=1.0, resized_crop_size=arguments.patch_size)


def test_augmentation_flags_override_the_preset(tmp_path):
    flags = ["--augment_preset", "fiser", "--aug_flip", "0", "--aug_symmetric_codec", "1", "--patch_size", "64"]
    arguments = parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o", *flags])
    augment = training_augment(arguments)
    fiser = AUGMENT_PRESETS["fiser"]
    assert (augment.p_flip, augment.p_symmetric_codec, augment.resized_crop_size) == (0.0, 1.0, 64)
    for operation in set(TrainingAugment.OPERATIONS) - {"flip", "symmetric_codec"}:
        assert getattr(augment, f"p_{operation}") == getattr(fiser, f"p_{operation}")
    config = tmp_path / "run.yaml"
    config.write_text("task: classify\ntrain_data: d\noutput_dir: o\naugment_preset: none\naug_noise: 0.25\n"
                      "aug_blur: 0.5\n")
    augment = training_augment(parse_training_arguments([str(config), "--aug_blur", "0.75"]))
    assert (augment.p_noise, augment.p_blur, augment.p_jpeg) == (0.25, 0.75, 0.0)


@pytest.mark.parametrize(("flags", "message"), [
    (["--aug_jpeg", "1.5"], "aug_jpeg"), (["--aug_noise", "-0.1"], "aug_noise"), (["--augment_preset", "x"], "preset"),
])
def test_augmentation_flags_are_validated(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o", *flags])


def test_classification_samples_use_the_augmentation_reproducibly(detection_folder, tmp_path):
    arguments = parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path, augment_preset="fiser", aug_symmetric_codec=1
    ))
    dataset = ClassificationTask(arguments).build_dataset()
    assert dataset.augment == training_augment(arguments)
    first = dataset[3]
    assert first["pixel_values"].shape == (3, 32, 32)
    torch.testing.assert_close(dataset[3]["pixel_values"], first["pixel_values"], rtol=0, atol=0)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3]["pixel_values"], first["pixel_values"])


def test_every_epoch_draws_its_own_order_and_augmentation_also_after_a_resume(
    detection_folder, tmp_path, monkeypatch
):
    fetched = []
    fetch = AugmentedDetectionDataset.__getitem__

    def recording_fetch(dataset, index):
        fetched.append((dataset.epoch, index))
        return fetch(dataset, index)

    monkeypatch.setattr(AugmentedDetectionDataset, "__getitem__", recording_fetch)
    # 16 images in batches of 4: 4 steps an epoch; the run stops in the middle of the second epoch and resumes.
    for max_steps, resume in ((6, {}), (12, {"resume_from_checkpoint": "latest"})):
        train(parse_training_arguments(tiny_arguments(
            "classify", detection_folder, tmp_path, max_steps=max_steps, checkpointing_steps=6, **resume
        )))
        shutil.rmtree(tmp_path / "final")
    orders = {}
    for epoch, index in fetched:
        orders.setdefault(epoch, []).append(index)
    assert sorted(orders) == [0, 1, 2]
    assert all(set(order) == set(range(16)) for order in orders.values())
    assert orders[0][:16] != orders[2][:16]


def test_two_processes_with_accelerate_launch(detection_folder, tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "aigi.train",
        *tiny_arguments("classify", detection_folder, tmp_path, max_steps=2, per_device_batch_size=2),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summaries = [json.loads((tmp_path / f"process_{rank}.json").read_text()) for rank in (0, 1)]
    assert [summary["num_processes"] for summary in summaries] == [2, 2]
    assert [summary["process_index"] for summary in summaries] == [0, 1]
    assert all(summary["steps"] == 2 and summary["samples_seen"] == 4 for summary in summaries)
    assert (tmp_path / "final" / "model.safetensors").is_file()
