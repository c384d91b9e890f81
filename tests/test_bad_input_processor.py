"""Odd images through the image processor: every readable file yields a finite crop of the model's size."""

import numpy as np
import pytest
import torch
from PIL import Image

from aigi.image_io import load_image
from aigi.modeling.rescalecl import RescaleCLImageProcessor

SIDE = 32


@pytest.fixture(scope="module")
def processor():
    return RescaleCLImageProcessor(crop_size={"height": SIDE, "width": SIDE})


def test_every_loadable_corpus_file_processes(processor, bad_image_corpus):
    for name, entry in bad_image_corpus.items():
        if entry.expect != "ok":
            continue
        pixel_values = processor(images=load_image(entry.path), return_tensors="pt")["pixel_values"]
        assert pixel_values.shape == (1, 3, SIDE, SIDE), name
        assert torch.isfinite(pixel_values).all() and pixel_values.abs().max() <= 1.0 + 1e-6, name


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1"])
def test_pil_modes_are_converted_to_rgb(processor, mode):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert(mode)
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, SIDE, SIDE)


def test_strip_image_is_reflect_padded_both_ways(processor):
    strip = Image.fromarray(np.random.default_rng(1).integers(0, 256, (3, 200, 3), dtype=np.uint8))
    pixel_values = processor(images=strip, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, SIDE, SIDE) and torch.isfinite(pixel_values).all()
