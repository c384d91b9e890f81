"""Multi-crop scoring: native-resolution crops spread over the image, their logits aggregated, declared in
`preprocessor_config.json`, identical whatever the batching, with the per-crop evidence on request."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_IMAGE_SIZE, score_crops_by_brightness, write_image
from PIL import Image
from transformers import AutoImageProcessor, pipeline

from aigi.cli import main
from aigi.data.records import one_crop_pixel_values
from aigi.modeling.rescalecl import RescaleCLImageProcessor

CROP = TINY_IMAGE_SIZE


@pytest.fixture(scope="module")
def pipe(tiny_detector_dir):
    return pipeline("ai-image-detection", model=str(tiny_detector_dir))


@pytest.fixture
def brightness_pipe(tiny_detector_dir):
    scored = pipeline("ai-image-detection", model=str(tiny_detector_dir))
    score_crops_by_brightness(scored)
    return scored


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("height", "width"), [(32, 32), (40, 100), (100, 40), (97, 151), (300, 300)])
@pytest.mark.parametrize("num_crops", [1, 2, 4, 9, 50])
def test_crop_boxes_are_crop_sized_inside_the_image_and_at_most_num_crops(height, width, num_crops):
    boxes = RescaleCLImageProcessor.crop_boxes(height, width, CROP, CROP, num_crops)
    assert 1 <= len(boxes) <= num_crops
    assert len(set(boxes)) == len(boxes)
    for left, top, right, bottom in boxes:
        assert (right - left, bottom - top) == (CROP, CROP)
        assert 0 <= left and 0 <= top and right <= width and bottom <= height
    cover = math.ceil(height / CROP) * math.ceil(width / CROP)
    if num_crops >= cover:  # enough crops: every pixel is seen
        seen = np.zeros((height, width), bool)
        for left, top, right, bottom in boxes:
            seen[top:bottom, left:right] = True
        assert seen.all() and len(boxes) == cover
    if num_crops == 1:
        assert boxes == [((width - CROP) // 2, (height - CROP) // 2, (width + CROP) // 2, (height + CROP) // 2)]


def test_one_crop_is_the_centre_crop_of_before(pipe):
    image = noise(90, 70)
    processor = pipe.image_processor
    default = processor(images=image, return_tensors="pt")
    assert set(default) == {"pixel_values"}  # model(**processor(...)) keeps working
    explicit = processor(images=image, num_crops=1, return_tensors="pt")["pixel_values"]
    left, top = (90 - CROP) // 2, (70 - CROP) // 2
    manual = processor(images=image.crop((left, top, left + CROP, top + CROP)), return_tensors="pt")["pixel_values"]
    assert torch.equal(default["pixel_values"], explicit) and torch.equal(explicit, manual)
    assert pipe(image) == pipe(image, num_crops=1)


def test_processor_crops_are_native_pixels_at_their_boxes(pipe):
    image = noise(100, 60, seed=3)
    features = pipe.image_processor(images=[image, noise(20, 20)], num_crops=4, return_tensors="pt")
    assert features["crop_counts"] == [4, 1]
    assert features["pixel_values"].shape == (5, 3, CROP, CROP)
    for crop, box in zip(features["pixel_values"], features["crop_boxes"][0]):
        expected = pipe.image_processor(images=image.crop(box), return_tensors="pt")["pixel_values"][0]
        assert torch.equal(crop, expected)


def test_the_crop_on_a_bright_square_scores_highest_and_max_aggregation_takes_it(brightness_pipe):
    pixels = np.full((64, 96, 3), 30, np.uint8)
    pixels[32:64, 64:96] = 250  # the bottom-right crop of a 2 x 3 grid
    image = Image.fromarray(pixels)
    output = brightness_pipe(image, num_crops=6, return_crops=True, crop_aggregation="max")
    crops = next(entry for entry in output if entry["label"] == "fake")["crops"]
    assert len(crops) == 6
    brightest = max(crops, key=lambda crop: crop["score"])
    assert brightest["box"] == [64, 32, 96, 64]
    fake_score = next(entry["score"] for entry in output if entry["label"] == "fake")
    assert fake_score == pytest.approx(brightest["score"], abs=1e-6)
    mean_output = brightness_pipe(image, num_crops=6, return_crops=True)
    log_odds = [math.log(crop["score"] / (1 - crop["score"])) for crop in crops]
    mean_score = next(entry["score"] for entry in mean_output if entry["label"] == "fake")
    assert mean_score == pytest.approx(1 / (1 + math.exp(-np.mean(log_odds))), abs=1e-5)
    median_output = brightness_pipe(image, num_crops=6, crop_aggregation="median")
    median_score = next(entry["score"] for entry in median_output if entry["label"] == "fake")
    assert median_score == pytest.approx(sorted(crop["score"] for crop in crops)[2], abs=1e-6)


def test_boxes_of_a_padded_small_image_stay_inside_it(brightness_pipe):
    output = brightness_pipe(noise(20, 50), num_crops=4, return_crops=True)
    boxes = [crop["box"] for entry in output for crop in entry.get("crops", [])]
    assert boxes and all(0 <= left < right <= 20 and 0 <= top < bottom <= 50 for left, top, right, bottom in boxes)


def flat(outputs: list) -> list:
    """(label order, boxes) and the scores of pipeline outputs, for comparisons with a float tolerance."""
    structure, scores = [], []
    for output in outputs:
        if isinstance(output, dict):
            structure.append(output)
            continue
        structure.append([(entry["label"], [crop["box"] for crop in entry.get("crops", [])]) for entry in output])
        scores += [entry["score"] for entry in output] + [crop["score"] for e in output for crop in e.get("crops", [])]
    return [structure, scores]


def test_outputs_do_not_depend_on_batching_or_threads(pipe, tmp_path):
    sources = [noise(90, 70, 0), str(tmp_path / "missing.png"), noise(33, 200, 1), noise(32, 32, 2), noise(150, 64, 3)]
    options = {"num_crops": 5, "return_crops": True}
    reference = pipe(sources, batch_size=1, num_workers=0, **options)
    assert "error" in reference[1]
    for batch_size in (2, 3, 8):
        batched = pipe(sources, batch_size=batch_size, num_workers=0, **options)
        # Threads only change who preprocesses: exactly the same; a batch size changes the kernels' float sums.
        assert pipe(sources, batch_size=batch_size, num_workers=2, **options) == batched
        structure, scores = flat(batched)
        assert structure == flat(reference)[0]
        assert scores == pytest.approx(flat(reference)[1], abs=1e-5)


def test_preprocessor_config_declares_the_crops_and_the_pipeline_uses_them(tiny_detector_dir, tmp_path, pipe):
    folder = tmp_path / "multicrop"
    pipe.model.save_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(tiny_detector_dir)
    processor.num_crops, processor.crop_aggregation = 4, "max"
    processor.save_pretrained(folder)
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert (saved["num_crops"], saved["crop_aggregation"]) == (4, "max")
    declared = pipeline("ai-image-detection", model=str(folder))
    image = noise(100, 100, 5)
    assert declared(image) == pipe(image, num_crops=4, crop_aggregation="max")
    assert declared(image, num_crops=1) == pipe(image)
    # Training and features still see one crop per record.
    assert one_crop_pixel_values(declared.image_processor, image).shape == (1, 3, CROP, CROP)


@pytest.mark.parametrize("options", [{"num_crops": 0}, {"crop_aggregation": "mode"}])
def test_bad_crop_options_are_clear_errors(pipe, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        pipe(noise(64, 64), **options)


def test_detect_and_evaluate_take_the_crop_options(tiny_detector_dir, detection_folder, tmp_path, capsys):
    image = write_image(tmp_path / "wide.png", size=(120, 40))
    assert main(["detect", str(image), "--model", str(tiny_detector_dir), "--json", "--num-crops", "3",
                 "--crop-aggregation", "max"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    expected = pipeline("ai-image-detection", model=str(tiny_detector_dir))(
        str(image), num_crops=3, crop_aggregation="max")
    assert row["score"] == pytest.approx(next(e["score"] for e in expected if e["label"] == "fake"), abs=1e-7)
    output = tmp_path / "evaluation"
    assert main(["evaluate", "--model", str(tiny_detector_dir), "--data", str(detection_folder), "--output",
                 str(output), "--protocol", "raw", "--num-crops", "2"]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["num_crops"], metrics["crop_aggregation"]) == (2, "mean")


def test_every_family_processor_is_a_copy_of_one_implementation():
    """The processors live in self-contained remote-code folders, so they are copies; they must stay identical
    apart from their names, docstrings and default crop size and normalisation."""
    def normalised(path: Path) -> str:
        text = path.read_text()
        text = text[text.index('"""', 3) + 3:]  # the module docstring differs
        text = re.sub(r"\b\w+ImageProcessor", "ImageProcessor", text)
        return re.sub(r"(crop_size|image_mean|image_std) = .*", r"\1 = ...", text)

    modeling = Path(RescaleCLImageProcessor.__module__.replace(".", "/")).parts
    folder = Path(__import__("aigi.modeling", fromlist=["x"]).__path__[0])
    assert modeling  # the import path above resolves into aigi.modeling
    processors = sorted(folder.glob("*/image_processing_*.py"))
    assert len(processors) >= 7
    reference = normalised(processors[0])
    for path in processors[1:]:
        assert normalised(path) == reference, path.name


def test_native_protocol_keeps_the_whole_image_and_equalises_the_codec():
    from aigi.data.transforms import get_protocol, jpeg_reencode

    image = noise(700, 120, 7)
    native = get_protocol("native")(image)
    assert native.size == (700, 120)
    assert np.array_equal(np.asarray(native), np.asarray(jpeg_reencode(image, 95)))
    bounded = get_protocol("native_512")(image)
    assert bounded.size == (512, 120)  # the long side centre-cropped, the short one kept (not padded)
    assert np.array_equal(np.asarray(bounded), np.asarray(jpeg_reencode(image.crop((94, 0, 606, 120)), 95)))


def test_cross_source_scorings_pair_protocols_with_crops():
    from aigi.evaluation.benchmark import scoring_name, scorings

    assert scorings({"protocol": "normalized", "num_crops": [1, 4]}) == [("normalized", 1), ("normalized", 4)]
    assert scorings({"num_crops": 2}) == [("normalized", 2)]
    spec = {"scorings": [{"protocol": "normalized"}, {"protocol": "native", "num_crops": 8}]}
    assert scorings(spec) == [("normalized", 1), ("native", 8)]
    assert scoring_name("native", 8) == "native_crops8"
