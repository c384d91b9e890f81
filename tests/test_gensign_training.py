import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from aigi.dair import DAIR, DAIRConfig
from aigi.modeling.gensign import GenSignForImageClassification
from aigi.train import parse_training_arguments, train
from aigi.train.gensign import SignatureExtractorCheckpoint
from aigi.train.fiser import PSEUDO_FAKE_GENERATOR, FiSeRContrastiveTask
from aigi.train.tasks import ClassificationTask
from test_training import final_weights, tiny_arguments

TINY_DAIR_CHANNELS = (4, 4, 8, 8)
TINY_DETECTOR = {"family": "gensign", "backbone": "test_resnet", "signature_backbone": "test_efficientnet"}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tiny_dair_dir(tmp_path_factory):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("dair")
    DAIR(DAIRConfig(channels=TINY_DAIR_CHANNELS)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_extractor_dir(tmp_path_factory):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("extractor")
    SignatureExtractorCheckpoint(width=4, num_blocks=1).save_pretrained(directory)
    return directory


def train_interrupted_and_straight(task: str, data, tmp_path, extra_flags=(), **overrides) -> tuple[dict, dict]:
    """Final weights of a 4-step run, and of a 2-step run resumed to 4 steps."""
    def run(output_dir, **more):
        train(parse_training_arguments([*tiny_arguments(task, data, output_dir, **overrides, **more), *extra_flags]))

    run(tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    run(interrupted, max_steps=2)
    shutil.rmtree(interrupted / "final")
    run(interrupted, resume_from_checkpoint="latest")
    steps = [json.loads(line)["step"] for line in (interrupted / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    return final_weights(tmp_path / "straight"), final_weights(interrupted)


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=0, atol=0)


def test_dair_stage_saves_its_perceptual_kind_and_resumes_exactly(detection_folder, tmp_path):
    channels = ["--dair_channels", *map(str, TINY_DAIR_CHANNELS)]
    straight, resumed = train_interrupted_and_straight("dair", detection_folder, tmp_path, extra_flags=channels)
    assert_same_weights(straight, resumed)
    final_dir = tmp_path / "straight" / "final"
    config = json.loads((final_dir / "config.json").read_text())
    assert config["perceptual_kind"] in ("lpips-vgg", "multiscale-ssim-gradient")
    assert DAIR.from_pretrained(final_dir).config == DAIRConfig(channels=TINY_DAIR_CHANNELS)
    record = json.loads((tmp_path / "straight" / "log.jsonl").read_text().splitlines()[-1])
    assert record["loss"] == pytest.approx(record["mse"] + 0.25 * record["perceptual"], rel=1e-5)


def test_extractor_stage_regresses_the_frozen_dair_residual_and_resumes_exactly(
    detection_folder, tiny_dair_dir, tmp_path
):
    shape = {"signature_extractor_width": 4, "signature_extractor_blocks": 1}
    straight, resumed = train_interrupted_and_straight(
        "gensign-extractor", detection_folder, tmp_path, dair=tiny_dair_dir, **shape
    )
    assert_same_weights(straight, resumed)
    extractor = SignatureExtractorCheckpoint.from_pretrained(tmp_path / "straight" / "final")
    assert (extractor.width, extractor.num_blocks) == (4, 1)
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert all(record["zero_prediction_mse"] > 0 for record in log)
    # The DAIR is frozen: it is not part of what the stage saves.
    assert load_file(str(tiny_dair_dir / "model.safetensors")).keys().isdisjoint(straight)


def test_gensign_detector_uses_the_trained_extractor_and_resumes_exactly(
    detection_folder, tiny_dair_dir, tiny_extractor_dir, tmp_path
):
    straight, resumed = train_interrupted_and_straight(
        "classify", detection_folder, tmp_path, extractor=tiny_extractor_dir, self_augmentation_dair=tiny_dair_dir,
        p_aug=0.5, **TINY_DETECTOR,
    )
    assert_same_weights(straight, resumed)
    for name, value in load_file(str(tiny_extractor_dir / "model.safetensors")).items():
        torch.testing.assert_close(straight[f"gensign.signature_extractor.{name}"], value, rtol=0, atol=0)
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "straight" / "final")
    assert isinstance(model, GenSignForImageClassification)
    assert model.config.signature_extractor_width == 4 and model.config.use_signature_stream
    assert not any(parameter.requires_grad for parameter in model.gensign.signature_extractor.parameters())


def test_detector_without_signature_stream(detection_folder, tmp_path):
    final_dir = train(parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path, use_signature_stream="false", max_steps=1, **TINY_DETECTOR
    )))
    weights = load_file(str(final_dir / "model.safetensors"))
    assert not any("signature" in name for name in weights)
    model = AutoModelForImageClassification.from_pretrained(final_dir).eval()
    assert model.config.use_signature_stream is False
    rgb_features = model.gensign.rgb_backbone.num_features
    assert model.classifier[0].in_features == rgb_features == model.gensign.feature_dim
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32) * 2 - 1).logits.shape == (2, 2)


def test_self_augmentation_flips_labels_at_the_rate_and_is_deterministic(detection_folder, tiny_dair_dir):
    def dataset(**overrides):
        arguments = tiny_arguments("classify", detection_folder, "unused", augment_preset="none", **overrides)
        return ClassificationTask(parse_training_arguments(arguments)).build_dataset()

    augmented, plain = dataset(self_augmentation_dair=tiny_dair_dir, p_aug=0.3), dataset()
    assert dataset(self_augmentation_dair=tiny_dair_dir, p_aug=0).labelled_transform is None
    replaced = []
    for epoch in range(8):
        augmented.set_epoch(epoch)
        plain.set_epoch(epoch)
        for index in range(len(plain)):
            item, original = augmented[index], plain[index]
            was_replaced = not torch.equal(item["pixel_values"], original["pixel_values"])
            # A replaced image is a fake whatever it was; the others are untouched, crop included.
            assert item["labels"] == (1 if was_replaced else original["labels"])
            replaced.append(was_replaced)
    assert len(replaced) == 128 and abs(sum(replaced) / len(replaced) - 0.3) < 0.1
    augmented.set_epoch(3)
    first = [augmented[index] for index in range(len(augmented))]
    for index, item in enumerate(first):
        repeat = augmented[index]
        assert repeat["labels"] == item["labels"]
        torch.testing.assert_close(repeat["pixel_values"], item["pixel_values"], rtol=0, atol=0)


def test_zero_fake_classify_trains_on_real_photos_with_pseudo_fakes_only(detection_folder, tiny_dair_dir, tmp_path):
    arguments = tiny_arguments(
        "classify", detection_folder, tmp_path, real_only="true", self_augmentation_dair=tiny_dair_dir, p_aug=0.5,
        max_steps=2,
    )
    dataset = ClassificationTask(parse_training_arguments(arguments)).build_dataset()
    assert dataset.records and all(record.label == 0 for record in dataset.records)
    labels = [dataset[index]["labels"] for index in range(len(dataset))]
    assert 0 < sum(labels) < len(labels)  # every fake is a DAIR reconstruction of a real photo
    final_dir = train(parse_training_arguments(arguments))
    assert json.loads((tmp_path / "training_args.json").read_text())["real_only"] is True
    assert AutoModelForImageClassification.from_pretrained(final_dir).config.label2id == {"real": 0, "fake": 1}


def test_zero_fake_fiser_gives_pseudo_fakes_a_generator_identity_of_their_own(detection_folder, tiny_dair_dir):
    arguments = tiny_arguments(
        "fiser", detection_folder, "unused", real_only="true", self_augmentation_dair=tiny_dair_dir, p_aug=0.5,
    )
    task = FiSeRContrastiveTask(parse_training_arguments(arguments))
    dataset = task.build_dataset()
    assert set(task.vocabulary) == {"real", PSEUDO_FAKE_GENERATOR}
    items = [dataset[index] for index in range(len(dataset))]
    assert {item["labels"] for item in items} == {0, 1}
    for item in items:
        expected = PSEUDO_FAKE_GENERATOR if item["labels"] == 1 else "real"
        assert item["generator_ids"] == task.vocabulary[expected]


@pytest.mark.parametrize(("flags", "message"), [
    (["--real_only", "true"], "--self_augmentation_dair"),
    (["--real_only", "true", "--self_augmentation_dair", "d", "--p_aug", "0"], "p_aug"),
    (["--task", "dair", "--self_augmentation_dair", "d"], "classify and fiser"),
    (["--family", "gensign"], "--extractor"),
    (["--family", "gensign", "--use_signature_stream", "false", "--extractor", "e"], "--extractor"),
    (["--family", "gensign", "--extractor", "e", "--image_size", "128", "--patch_size", "64"], "inference size"),
    (["--family", "nope"], "family"),
    (["--task", "gensign-extractor"], "--dair"),
    (["--task", "dair", "--family", "gensign"], "classify"),
    (["--p_aug", "1.5"], "p_aug"),
])
def test_gensign_flags_are_validated(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o", *flags])
