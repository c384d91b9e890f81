"""Small builders shared by tests: synthetic detection folders and tiny saved detectors."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
from aigi.modeling.rescalecl import (
    RescaleCLConfig,
    RescaleCLForImageClassification,
    RescaleCLImageProcessor,
)
from PIL import Image

TINY_IMAGE_SIZE = 32


def smooth_image(seed: int, size: int = 48, fake: bool = False) -> Image.Image:
    """A photo-like smooth image; 'fake' ones carry a periodic checkerboard a detector can learn."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
    if fake:
        checker = ((np.indices((size, size)).sum(0) % 2) * 40 - 20)[..., None]
        pixels = pixels + checker
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_detection_folder(root: Path, n_real: int = 8, n_fake_per_generator: int = 4,
                           generators: tuple[str, ...] = ("gen_a", "gen_b"), size: int = 48) -> Path:
    """`root/real/*.jpg` and `root/fake/<generator>/*.png`, like the external data (and its format bias)."""
    (root / "real").mkdir(parents=True, exist_ok=True)
    for index in range(n_real):
        smooth_image(index, size).save(root / "real" / f"real_{index:03d}.jpg", quality=95)
    for generator_index, generator in enumerate(generators):
        (root / "fake" / generator).mkdir(parents=True, exist_ok=True)
        for index in range(n_fake_per_generator):
            seed = 1000 * (generator_index + 1) + index
            smooth_image(seed, size, fake=True).save(root / "fake" / generator / f"{generator}_{index:03d}.png")
    return root


def save_tiny_detector(directory: Path, decision_threshold: float = 0.5) -> Path:
    config = RescaleCLConfig(backbone="test_resnet", image_size=TINY_IMAGE_SIZE, decision_threshold=decision_threshold)
    RescaleCLForImageClassification(config).eval().save_pretrained(directory)
    crop = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    RescaleCLImageProcessor(crop_size=crop).save_pretrained(directory)
    return directory


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    """A random-noise image at `path` in the format its suffix names (JPEG at q95)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)  # quality is ignored by lossless formats
    return path


def write_mixed_folder(folder: Path, bad_image_corpus: dict, detection_folder: Path, good_count: int) -> Path:
    """Every broken file of the bad-image corpus and the first `good_count` images of `detection_folder`."""
    folder.mkdir()
    for entry in bad_image_corpus.values():
        shutil.copy(entry.path, folder / entry.path.name)
    for index, image in enumerate(sorted(detection_folder.rglob("*.*"))[:good_count]):
        shutil.copy(image, folder / f"good_{index}{image.suffix}")
    return folder


SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "datasets_scripts"


def load_script(name: str) -> ModuleType:
    """A script of datasets_scripts/ as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_crops_by_brightness(pipe) -> None:
    """Make the pipeline's model a known function of the pixels: each crop's fake log-odds is 8 x its mean
    (normalised) pixel value, so bright regions score high. For geometry tests of crops and heat maps."""
    import torch
    from transformers.modeling_outputs import ImageClassifierOutput

    fake_index = int(pipe.model.config.label2id["fake"])

    def forward(pixel_values, **_):
        log_odds = 8.0 * pixel_values.float().mean((1, 2, 3))
        logits = torch.zeros(len(pixel_values), 2)
        logits[:, fake_index] = log_odds
        return ImageClassifierOutput(logits=logits)

    pipe.model.forward = forward
    pipe.scoring_model = pipe.model  # the pipeline scores through this (its batch-norm-folded copy otherwise)


def with_random_statistics(model, seed: int = 0):
    """`model` in eval mode with random batch-norm statistics and affine parameters (a fold of the defaults is
    almost the identity, so it would hide a wrong pairing)."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(shape, generator=generator) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(shape, generator=generator))
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)
    return model.eval()
