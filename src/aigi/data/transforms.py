"""Image transforms for training augmentation and evaluation protocols (PIL in, PIL out).

Every transform here is applied identically to real and fake images, so that a detector
cannot learn the file format or size of a class instead of generation artefacts.

Evaluation protocols (`PROTOCOLS`, looked up by name with `get_protocol`):

- `raw`: the image as decoded.
- `normalized`: centre crop or reflect-pad to 256 x 256, then JPEG q95.
- the robustness suite (`ROBUSTNESS_SUITE`), after the seed papers' robustness tables. Each is
  `normalized` followed by one degradation: normalising first removes the codec and size bias
  of the data (e.g. reals JPEG, fakes PNG), so a score change measures the degradation alone.
  - `jpeg_q95`, `jpeg_q75`, `jpeg_q50`: JPEG re-encoding at that quality (on top of q95).
  - `blur_s1`, `blur_s2`: Gaussian blur with sigma 1 or 2 px (kernel 4 sigma each way, as the
    scipy filter of CNNDetection's blur augmentation).
  - `downscale_0.5`, `downscale_0.75`: bicubic (antialiased) downscale to 128 or 192 px. Not
    resized back: the detector's processor pads small images, and an upscale would add
    interpolation traces of its own.
  - `random_crop_192`: a random 192 x 192 window of the 256 x 256 image (no resampling).
  - `noise_s5`: additive Gaussian noise with sigma 5 on the 0-255 scale, rounded and clipped.
  Random protocols seed their generator from a hash of the image's pixels, so a rerun gives
  identical images and scores.

Training augmentation: `TrainingAugment` with the presets of `AUGMENT_PRESETS`.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from functools import partial
from typing import ClassVar

import numpy as np
from PIL import Image, ImageEnhance
from torchvision.transforms.functional import gaussian_blur as torchvision_gaussian_blur

Transform = Callable[[Image.Image], Image.Image]

RESAMPLING_FILTERS = (
    Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST, Image.Resampling.LANCZOS,
)


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


def _pixel_rng(img: Image.Image) -> random.Random:
    """A generator seeded from the image's mode, size and pixels: the same image always gets the same draws."""
    digest = hashlib.blake2b(f"{img.mode}{img.size}".encode(), digest_size=8)
    digest.update(img.tobytes())
    return random.Random(int.from_bytes(digest.digest(), "big"))


def _happens(probability: float, rng: random.Random) -> bool:
    """True with `probability`; draws a random number only when the outcome is uncertain (0 < p < 1)."""
    return probability >= 1.0 or (probability > 0.0 and rng.random() < probability)


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


def resize_by(img: Image.Image, scale: float, resample: Image.Resampling) -> Image.Image:
    """`img` resized by `scale` on both sides (at least one pixel each)."""
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new_size, resample=resample)


def gaussian_blur(img: Image.Image, sigma: float, kernel_size: int | None = None) -> Image.Image:
    """Blur with a Gaussian of standard deviation `sigma` px over a `kernel_size` square; borders are reflected.

    The default kernel reaches 4 sigma each way, as scipy's filter in CNNDetection's blur augmentation. Sigma 0 is
    the identity (as in scipy). Returns RGB.
    """
    if sigma == 0:
        return img.convert("RGB")
    if kernel_size is None:
        kernel_size = 2 * int(4 * sigma + 0.5) + 1
    return torchvision_gaussian_blur(img.convert("RGB"), kernel_size=[kernel_size] * 2, sigma=[sigma] * 2)


def add_gaussian_noise(img: Image.Image, sigma: float, rng: random.Random) -> Image.Image:
    """Add independent Gaussian noise of standard deviation `sigma` (0-255 scale) to every value; returns RGB."""
    pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels + noise), 0, 255).astype(np.uint8))


def shift_hue(img: Image.Image, shift: float) -> Image.Image:
    """Rotate every pixel's hue by `shift` turns (-0.5 to 0.5) in PIL's 8-bit HSV, as torchvision does; returns RGB."""
    hue, saturation, value = img.convert("HSV").split()
    rotated = (np.asarray(hue, dtype=np.int16) + round(shift * 255)) % 256
    return Image.merge("HSV", (Image.fromarray(rotated.astype(np.uint8)), saturation, value)).convert("RGB")


def _enhance(enhancer: type, img: Image.Image, factor: float) -> Image.Image:
    """`img` through a PIL `ImageEnhance` class at `factor` (1 = unchanged)."""
    return enhancer(img).enhance(factor)


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


def _check_quality_range(name: str, quality_range: tuple[int, int]) -> None:
    low, high = quality_range
    if not 1 <= low <= high <= 100:
        raise ValueError(f"{name} must satisfy 1 <= low <= high <= 100, got {quality_range}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_range(name: str, value_range: tuple[float, float], *, positive: bool = False) -> None:
    low, high = value_range
    if (low <= 0 if positive else low < 0) or low > high:
        raise ValueError(f"{name} must satisfy {'0 <' if positive else '0 <='} low <= high, got {value_range}")


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
        _check_range("scale_range", self.scale_range, positive=True)
        _check_quality_range("jpeg_quality_range", self.jpeg_quality_range)
        _check_quality_range("webp_quality_range", self.webp_quality_range)

    def __call__(self, img: Image.Image, rng: random.Random | int | None = None) -> Image.Image:
        """Augment `img`; `rng` is a generator or seed (None: the module-level `random`)."""
        rng = _as_rng(rng)
        img = img.convert("RGB")
        if rng.random() < self.p_resize:
            scale = rng.uniform(*self.scale_range)
            resample = rng.choice((Image.Resampling.BILINEAR, Image.Resampling.BICUBIC))
            img = resize_by(img, scale, resample)
        if rng.random() < self.p_lossless:
            # A PNG round trip of an RGB image is the identity, so it is skipped.
            return img
        if rng.random() < self.p_jpeg:
            return jpeg_reencode(img, rng.randint(*self.jpeg_quality_range))
        return webp_reencode(img, rng.randint(*self.webp_quality_range))


@dataclass(frozen=True)
class TrainingAugment:
    """Training augmentation shared by all detectors: each operation runs with its own probability, in this order.

    1. `symmetric_codec`: the `symmetric_codec` augment (random resize, then a random lossy JPEG/WebP
       re-encode), first, so that both classes reach the other operations in the same random format;
    2. `random_resized_crop`: a window of `resized_crop_scale` of the area and aspect ratio in
       `resized_crop_ratio`, resized to `resized_crop_size` squared (bicubic, antialiased);
    3. `flip`: horizontal flip;
    4. `color_jitter`: brightness, contrast and saturation factors in 1 +- their strength and a
       hue shift in +- `hue`, in random order (torchvision's ColorJitter);
    5. `down_up_resize`: down by a factor in `down_up_scale_range`, back up to the original size,
       each way with a random one of `RESAMPLING_FILTERS`;
    6. `jpeg`: JPEG at a quality in `jpeg_quality_range`;
    7. `blur`: Gaussian blur with sigma in `blur_sigma_range` and a `blur_kernel_size` kernel (None: 4 sigma
       each way, as `gaussian_blur`);
    8. `noise`: Gaussian noise with sigma in `noise_sigma_range` (0-255 scale).

    Operations 2-8 with the probabilities of the "fiser" preset are FiSeR's reference training
    transform. An operation with probability 0 or 1 draws no random number for its coin, so the
    "codec" preset consumes exactly the random numbers of `CodecResizeAugment` alone and
    reproduces earlier runs bit for bit. Output is RGB.
    """

    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "symmetric_codec", "random_resized_crop", "flip", "color_jitter", "down_up_resize", "jpeg", "blur", "noise",
    )

    p_symmetric_codec: float = 0.0
    # A lossless branch would keep the reals' JPEG traces next to the fakes' clean PNGs.
    symmetric_codec: CodecResizeAugment = CodecResizeAugment(p_lossless=0.0)
    p_random_resized_crop: float = 0.0
    resized_crop_size: int = 224
    resized_crop_scale: tuple[float, float] = (0.5, 1.0)
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    p_flip: float = 0.0
    p_color_jitter: float = 0.0
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.03
    p_down_up_resize: float = 0.0
    down_up_scale_range: tuple[float, float] = (0.4, 1.0)
    p_jpeg: float = 0.0
    jpeg_quality_range: tuple[int, int] = (25, 100)
    p_blur: float = 0.0
    blur_sigma_range: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: int | None = 5
    p_noise: float = 0.0
    noise_sigma_range: tuple[float, float] = (0.0, 10.0)

    def __post_init__(self) -> None:
        for operation in self.OPERATIONS:
            _check_probability(f"p_{operation}", getattr(self, f"p_{operation}"))
        if self.resized_crop_size < 1:
            raise ValueError(f"resized_crop_size must be >= 1, got {self.resized_crop_size}")
        _check_range("resized_crop_scale", self.resized_crop_scale, positive=True)
        _check_range("resized_crop_ratio", self.resized_crop_ratio, positive=True)
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        _check_range("down_up_scale_range", self.down_up_scale_range, positive=True)
        _check_quality_range("jpeg_quality_range", self.jpeg_quality_range)
        _check_range("blur_sigma_range", self.blur_sigma_range)
        if self.blur_kernel_size is not None and (self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0):
            raise ValueError(f"blur_kernel_size must be odd and >= 1, got {self.blur_kernel_size}")
        _check_range("noise_sigma_range", self.noise_sigma_range)

    def __call__(self, img: Image.Image, rng: random.Random | int | None = None) -> Image.Image:
        """Augment `img`; `rng` is a generator or seed (None: the module-level `random`)."""
        rng = _as_rng(rng)
        img = img.convert("RGB")
        if _happens(self.p_symmetric_codec, rng):
            img = self.symmetric_codec(img, rng)
        if _happens(self.p_random_resized_crop, rng):
            img = self._random_resized_crop(img, rng)
        if _happens(self.p_flip, rng):
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if _happens(self.p_color_jitter, rng):
            img = self._jitter_colors(img, rng)
        if _happens(self.p_down_up_resize, rng):
            scale = rng.uniform(*self.down_up_scale_range)
            down, up = rng.choice(RESAMPLING_FILTERS), rng.choice(RESAMPLING_FILTERS)
            img = resize_by(img, scale, down).resize(img.size, resample=up)
        if _happens(self.p_jpeg, rng):
            img = jpeg_reencode(img, rng.randint(*self.jpeg_quality_range))
        if _happens(self.p_blur, rng):
            img = gaussian_blur(img, rng.uniform(*self.blur_sigma_range), self.blur_kernel_size)
        if _happens(self.p_noise, rng):
            img = add_gaussian_noise(img, rng.uniform(*self.noise_sigma_range), rng)
        return img

    def _random_resized_crop(self, img: Image.Image, rng: random.Random) -> Image.Image:
        """torchvision's RandomResizedCrop: up to 10 tries at a fitting window, else the centred ratio-clamped one."""
        width, height = img.size
        min_ratio, max_ratio = self.resized_crop_ratio
        for _ in range(10):
            area = width * height * rng.uniform(*self.resized_crop_scale)
            ratio = math.exp(rng.uniform(math.log(min_ratio), math.log(max_ratio)))
            crop_width, crop_height = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < crop_width <= width and 0 < crop_height <= height:
                left, top = rng.randint(0, width - crop_width), rng.randint(0, height - crop_height)
                break
        else:
            crop_width, crop_height = width, height
            if width / height < min_ratio:
                crop_height = round(width / min_ratio)
            elif width / height > max_ratio:
                crop_width = round(height * max_ratio)
            left, top = (width - crop_width) // 2, (height - crop_height) // 2
        box = (left, top, left + crop_width, top + crop_height)
        size = (self.resized_crop_size, self.resized_crop_size)
        return img.resize(size, resample=Image.Resampling.BICUBIC, box=box)

    def _jitter_colors(self, img: Image.Image, rng: random.Random) -> Image.Image:
        enhancers = (
            (ImageEnhance.Brightness, self.brightness),
            (ImageEnhance.Contrast, self.contrast),
            (ImageEnhance.Color, self.saturation),
        )
        steps = [
            partial(_enhance, enhancer, factor=rng.uniform(max(0.0, 1 - strength), 1 + strength))
            for enhancer, strength in enhancers
        ]
        steps.append(partial(shift_hue, shift=rng.uniform(-self.hue, self.hue)))
        rng.shuffle(steps)
        for step in steps:
            img = step(img)
        return img


AUGMENT_PRESETS: dict[str, TrainingAugment] = {
    # The augmentation of the shipped RescaleCL runs.
    "codec": TrainingAugment(p_symmetric_codec=1.0),
    "fiser": TrainingAugment(
        p_random_resized_crop=1.0, p_flip=0.5, p_color_jitter=1.0, p_down_up_resize=0.5, p_jpeg=0.5, p_blur=0.3,
        p_noise=0.3,
    ),
    # CNNDetection's "Blur+JPEG (0.5)": each with probability 0.5, sigma ~ U[0, 3], quality ~ U{30..100}. The
    # reference blurs before the JPEG; TrainingAugment's fixed order re-encodes first.
    "cnnspot": TrainingAugment(p_jpeg=0.5, jpeg_quality_range=(30, 100), p_blur=0.5, blur_sigma_range=(0.0, 3.0),
                               blur_kernel_size=None),
    "none": TrainingAugment(),
}


def raw_protocol(img: Image.Image) -> Image.Image:
    """The image as decoded (original bytes when stored)."""
    return img


@dataclass(frozen=True)
class NormalizedProtocol:
    """Centre crop or reflect-pad to `size` x `size`, then re-encode as JPEG at `quality`.

    When one class has originals smaller than `size` (e.g. 128 px GAN outputs next to 256 px
    photos), its padding is a cue a detector can use: pick a `size` no larger than the smallest
    originals (`normalized_128`), so that no class is padded more than the other.
    """

    size: int
    quality: int = 95

    def __call__(self, img: Image.Image) -> Image.Image:
        return jpeg_reencode(center_crop_or_pad(img, self.size), self.quality)


@dataclass(frozen=True)
class NativeProtocol:
    """The image at its native resolution, each side centre-cropped to at most `max_side` (never padded, never
    resized; None: the whole image), re-encoded as JPEG at `quality`.

    The codec is the same for both classes, as in `normalized`, but the detector's image processor takes its own
    crops (`num_crops` of them over what is left), as it does on a user's file. `max_side` bounds the work on
    multi-megapixel photos.
    """

    max_side: int | None = None
    quality: int = 95

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.max_side is not None and max(img.size) > self.max_side:
            width, height = min(img.width, self.max_side), min(img.height, self.max_side)
            left, top = (img.width - width) // 2, (img.height - height) // 2
            img = img.crop((left, top, left + width, top + height))
        return jpeg_reencode(img, self.quality)


normalized_protocol = NormalizedProtocol(256)
NORMALIZED_PROTOCOLS = {"normalized": normalized_protocol, "normalized_128": NormalizedProtocol(128),
                        "native": NativeProtocol(), "native_512": NativeProtocol(512)}


class RobustnessProtocol(ABC):
    """Base of the robustness suite: the `normalized` protocol, then the subclass's `degrade`."""

    family: ClassVar[str]

    @property
    @abstractmethod
    def name(self) -> str:
        """The name in `PROTOCOLS`: the family, then the parameter."""

    @abstractmethod
    def degrade(self, img: Image.Image) -> Image.Image:
        """The degradation applied to the normalised image."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return self.degrade(normalized_protocol(img))


@dataclass(frozen=True)
class JpegProtocol(RobustnessProtocol):
    """`normalized`, then a JPEG re-encoding at `quality`."""

    quality: int
    family: ClassVar[str] = "jpeg"

    @property
    def name(self) -> str:
        return f"jpeg_q{self.quality}"

    def degrade(self, img: Image.Image) -> Image.Image:
        return jpeg_reencode(img, self.quality)


@dataclass(frozen=True)
class BlurProtocol(RobustnessProtocol):
    """`normalized`, then a Gaussian blur with standard deviation `sigma` px."""

    sigma: float
    family: ClassVar[str] = "blur"

    @property
    def name(self) -> str:
        return f"blur_s{self.sigma:g}"

    def degrade(self, img: Image.Image) -> Image.Image:
        return gaussian_blur(img, self.sigma)


@dataclass(frozen=True)
class DownscaleProtocol(RobustnessProtocol):
    """`normalized`, then a bicubic downscale by `factor`, not resized back."""

    factor: float
    family: ClassVar[str] = "downscale"

    @property
    def name(self) -> str:
        return f"downscale_{self.factor:g}"

    def degrade(self, img: Image.Image) -> Image.Image:
        return resize_by(img, self.factor, Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class RandomCropProtocol(RobustnessProtocol):
    """`normalized`, then a random `size` x `size` window, seeded from the pixels."""

    size: int
    family: ClassVar[str] = "random_crop"

    @property
    def name(self) -> str:
        return f"random_crop_{self.size}"

    def degrade(self, img: Image.Image) -> Image.Image:
        return random_crop_or_pad(img, self.size, _pixel_rng(img))


@dataclass(frozen=True)
class NoiseProtocol(RobustnessProtocol):
    """`normalized`, then Gaussian noise with standard deviation `sigma` (0-255 scale), seeded from the pixels."""

    sigma: float
    family: ClassVar[str] = "noise"

    @property
    def name(self) -> str:
        return f"noise_s{self.sigma:g}"

    def degrade(self, img: Image.Image) -> Image.Image:
        return add_gaussian_noise(img, self.sigma, _pixel_rng(img))


_ROBUSTNESS_PROTOCOLS = (
    JpegProtocol(95), JpegProtocol(75), JpegProtocol(50),
    BlurProtocol(1.0), BlurProtocol(2.0),
    DownscaleProtocol(0.5), DownscaleProtocol(0.75),
    RandomCropProtocol(192),
    NoiseProtocol(5.0),
)
ROBUSTNESS_SUITE: tuple[str, ...] = tuple(protocol.name for protocol in _ROBUSTNESS_PROTOCOLS)

PROTOCOLS: dict[str, Transform] = {
    "raw": raw_protocol,
    **NORMALIZED_PROTOCOLS,
    **{protocol.name: protocol for protocol in _ROBUSTNESS_PROTOCOLS},
}


def get_protocol(name: str) -> Transform:
    """The evaluation protocol registered in `PROTOCOLS` under `name`."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown protocol {name!r}; available: {', '.join(sorted(PROTOCOLS))}"
        ) from None


def describe_protocol(name: str) -> str:
    """One line for reports: the first line of the protocol's docstring, with its parameters if it has any."""
    protocol = get_protocol(name)
    summary = (protocol.__doc__ or "").strip().splitlines()[0]
    if not is_dataclass(protocol):
        return summary
    parameters = ", ".join(f"{field.name} = {getattr(protocol, field.name)}" for field in fields(protocol))
    return f"{summary.removesuffix('.')} ({parameters})."


def protocol_family(name: str) -> str:
    """The degradation family of a robustness protocol (e.g. "jpeg"); the name itself for `raw` and `normalized`."""
    return getattr(get_protocol(name), "family", name)
