"""Image transforms for training augmentation and evaluation protocols (PIL in, PIL out).

Every transform here is applied identically to real and fake images, so that a detector
cannot learn the file format or size of a class instead of generation artefacts.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

Transform = Callable[[Image.Image], Image.Image]


def _as_rng(rng: random.Random | int | None) -> random.Random:
    """A `random.Random` from a generator, a seed, or (None) drawn from the module-level `random`.

    torch's DataLoader re-seeds the module-level `random` in each worker, so `None` gives
    distinct augmentations per worker that still follow the DataLoader's seed.
    """
    if rng is None:
        return random.Random(random.getrandbits(64))
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


def _reencode(img: Image.Image, format: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format=format, quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def jpeg_reencode(img: Image.Image, quality: int) -> Image.Image:
    """Round-trip `img` through an in-memory JPEG at `quality` (1-100); returns RGB."""
    return _reencode(img, "JPEG", quality)


def webp_reencode(img: Image.Image, quality: int) -> Image.Image:
    """Round-trip `img` through an in-memory lossy WebP at `quality` (1-100); returns RGB."""
    return _reencode(img, "WEBP", quality)


def _crop_or_pad_axis(pixels: np.ndarray, axis: int, size: int) -> np.ndarray:
    length = pixels.shape[axis]
    if length >= size:
        start = (length - size) // 2
        return pixels.take(range(start, start + size), axis=axis)
    before = (size - length) // 2
    pad_width = [(0, 0)] * pixels.ndim
    pad_width[axis] = (before, size - length - before)
    # numpy cannot reflect a single pixel; repeating it is the only sensible extension.
    mode = "reflect" if length > 1 else "edge"
    return np.pad(pixels, pad_width, mode=mode)


def center_crop_or_pad(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to `size` x `size`, reflect-padding (centred) any side shorter than `size`.

    Never resamples: every output pixel is a copy of an input pixel. Returns RGB.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    pixels = np.asarray(img.convert("RGB"))
    pixels = _crop_or_pad_axis(pixels, axis=0, size=size)
    pixels = _crop_or_pad_axis(pixels, axis=1, size=size)
    return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")


def _check_quality_range(name: str, quality_range: tuple[int, int]) -> None:
    low, high = quality_range
    if not 1 <= low <= high <= 100:
        raise ValueError(f"{name} must satisfy 1 <= low <= high <= 100, got {quality_range}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class CodecResizeAugment:
    """Training augmentation: optional random resize, then a random re-encode.

    With probability `p_resize` the image is resized by a factor drawn uniformly from
    `scale_range` (bilinear or bicubic at random). Then, with probability `p_lossless`
    it is kept lossless; otherwise it is re-encoded as JPEG (probability `p_jpeg`) or
    WebP, with a quality drawn uniformly from the codec's range. Output is RGB.
    """

    p_resize: float = 0.5
    scale_range: tuple[float, float] = (0.5, 1.5)
    p_lossless: float = 0.1
    p_jpeg: float = 0.5
    jpeg_quality_range: tuple[int, int] = (60, 100)
    webp_quality_range: tuple[int, int] = (60, 100)

    def __post_init__(self) -> None:
        for name in ("p_resize", "p_lossless", "p_jpeg"):
            _check_probability(name, getattr(self, name))
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        _check_quality_range("jpeg_quality_range", self.jpeg_quality_range)
        _check_quality_range("webp_quality_range", self.webp_quality_range)

    def __call__(self, img: Image.Image, rng: random.Random | int | None = None) -> Image.Image:
        """Augment `img`; `rng` is a generator or seed (None: the module-level `random`)."""
        rng = _as_rng(rng)
        img = img.convert("RGB")
        if rng.random() < self.p_resize:
            scale = rng.uniform(*self.scale_range)
            resample = rng.choice((Image.Resampling.BILINEAR, Image.Resampling.BICUBIC))
            new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(new_size, resample=resample)
        if rng.random() < self.p_lossless:
            # A PNG round trip of an RGB image is the identity, so it is skipped.
            return img
        if rng.random() < self.p_jpeg:
            return jpeg_reencode(img, rng.randint(*self.jpeg_quality_range))
        return webp_reencode(img, rng.randint(*self.webp_quality_range))


NORMALIZED_SIZE = 256
NORMALIZED_JPEG_QUALITY = 95


def raw_protocol(img: Image.Image) -> Image.Image:
    """The image as decoded (original bytes when stored)."""
    return img


def normalized_protocol(img: Image.Image) -> Image.Image:
    """Centre crop or reflect-pad to 256 x 256, then re-encode as JPEG q95."""
    return jpeg_reencode(center_crop_or_pad(img, NORMALIZED_SIZE), NORMALIZED_JPEG_QUALITY)


PROTOCOLS: dict[str, Transform] = {
    "raw": raw_protocol,
    "normalized": normalized_protocol,
}


def get_protocol(name: str) -> Transform:
    """The evaluation protocol registered in `PROTOCOLS` under `name`."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown protocol {name!r}; available: {', '.join(sorted(PROTOCOLS))}"
        ) from None


def random_crop_or_pad(img: Image.Image, size: int, rng: random.Random | int | None = None) -> Image.Image:
    """A random `size` x `size` crop (training); sides shorter than `size` are reflect-padded first. Never resamples."""
    rng = _as_rng(rng)
    pixels = np.asarray(img.convert("RGB"))
    for axis in (0, 1):
        if pixels.shape[axis] < size:
            pixels = _crop_or_pad_axis(pixels, axis=axis, size=size)
    top = rng.randint(0, pixels.shape[0] - size)
    left = rng.randint(0, pixels.shape[1] - size)
    return Image.fromarray(np.ascontiguousarray(pixels[top : top + size, left : left + size]), mode="RGB")
