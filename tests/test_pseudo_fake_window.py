"""The region of a decoded image that self-augmentation reconstructs for the training crop (issue 16)."""

import random
from dataclasses import replace

import pytest
import torch

from aigi.dair import DAIR, DAIRConfig
from aigi.data.transforms import AUGMENT_PRESETS, CodecResizeAugment
from aigi.train import parse_training_arguments
from aigi.train.samples import pseudo_fake_window, self_augmentation, training_augment
from detector_tester import random_image
from test_training import tiny_arguments

FISER_WITH_CODEC = replace(AUGMENT_PRESETS["fiser"], p_symmetric_codec=1.0, p_random_resized_crop=0.0)


@pytest.mark.parametrize(
    ("augment", "window"),
    [
        (AUGMENT_PRESETS["codec"], 64),  # resized by 0.5 at the least: the crop spans up to twice its side
        (FISER_WITH_CODEC, 64),  # the benchmark's FiSeR recipe
        (AUGMENT_PRESETS["none"], 32),
        (AUGMENT_PRESETS["cnnspot"], 32),
        (replace(AUGMENT_PRESETS["codec"], symmetric_codec=CodecResizeAugment(p_resize=0.0)), 32),
        (replace(AUGMENT_PRESETS["codec"], symmetric_codec=CodecResizeAugment(scale_range=(0.3, 1.0))), 107),
        (AUGMENT_PRESETS["fiser"], None),  # its random resized crop takes a share of the whole image
    ],
)
def test_window_covers_what_the_crop_can_draw_on(augment, window):
    assert pseudo_fake_window(augment, 32) == window


@pytest.mark.parametrize("augment", [AUGMENT_PRESETS["codec"], FISER_WITH_CODEC, AUGMENT_PRESETS["cnnspot"]])
def test_augmented_window_is_never_smaller_than_the_crop(augment):
    window = pseudo_fake_window(augment, 32)
    region = random_image(window, window, seed=1)
    sides = [min(augment(region, random.Random(seed)).size) for seed in range(40)]
    assert min(sides) >= 32


def test_training_self_augmentation_gets_the_window_of_its_crop(detection_folder, tmp_path):
    torch.manual_seed(0)
    DAIR(DAIRConfig(channels=(4, 4, 8, 8))).save_pretrained(tmp_path / "dair")
    arguments = parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path / "run", self_augmentation_dair=tmp_path / "dair", p_aug=0.5,
    ))
    pseudo_fakes = self_augmentation(arguments)
    assert pseudo_fakes.window == pseudo_fake_window(training_augment(arguments), arguments.patch_size) == 64
