"""Generate a small corpus of broken and unusual image files for loader tests.

Importable helper (not a test module): ``make_bad_image_corpus(directory)`` writes every file
with Pillow and numpy only, in well under a second, and says what loading each should give.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 128, 0)
WHITE = (255, 255, 255)

GRAY16_SAMPLES: dict[int, tuple[int, int]] = {
    0: (0, 0),
    1: (65535, 255),
    2: (32896, 128),
    3: (25700, 100),
}
"""Column -> (16-bit value stored, 8-bit value expected) in ``gray16.png`` and ``int32.tif``."""

FLOAT_SAMPLES: dict[int, tuple[float, int]] = {0: (-10.0, 0), 1: (100.4, 100), 2: (300.0, 255)}
"""Column -> (float value stored, 8-bit value expected) in ``float32.tif``."""

RGBA_BANDS: tuple[tuple[tuple[int, int, int, int], tuple[int, int, int]], ...] = (
    ((255, 0, 0, 255), RED),
    ((0, 0, 0, 128), (127, 127, 127)),
    ((0, 0, 0, 0), WHITE),
)
"""16-pixel-wide vertical bands in ``rgba.png``: (RGBA stored, RGB expected over white)."""


@dataclass(frozen=True)
class CorpusEntry:
    """One generated file and what ``load_image`` should make of it."""

    path: Path
    expect: Literal["ok", "error"]
    reason: str | None = None
    expected_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Recipe:
    file_name: str
    make_bytes: Callable[[], bytes]
    expect: Literal["ok", "error"]
    reason: str | None = None
    expected_size: tuple[int, int] | None = None


def _ok(file_name: str, make_bytes: Callable[[], bytes], size: tuple[int, int]) -> _Recipe:
    return _Recipe(file_name, make_bytes, "ok", None, size)


def _error(file_name: str, make_bytes: Callable[[], bytes], reason: str) -> _Recipe:
    return _Recipe(file_name, make_bytes, "error", reason, None)


def make_bad_image_corpus(directory: Path) -> dict[str, CorpusEntry]:
    """Write the corpus into ``directory`` (created if needed) and describe each file by name."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, CorpusEntry] = {}
    for name, recipe in _RECIPES.items():
        path = directory / recipe.file_name
        path.write_bytes(recipe.make_bytes())
        corpus[name] = CorpusEntry(path, recipe.expect, recipe.reason, recipe.expected_size)
    return corpus


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _random_bytes(count: int) -> bytes:
    return np.random.default_rng(1).integers(0, 256, count, dtype=np.uint8).tobytes()


def _exif_rotated_jpeg() -> bytes:
    """64x32 stored with orientation 6 (rotate 90 deg clockwise): left half red, right blue.

    Displayed upright it is 32x64 with red on top and blue below.
    """
    image = Image.new("RGB", (64, 32), BLUE)
    image.paste(RED, (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    return _encode(image, "JPEG", quality=95, exif=exif.tobytes())


def _gray16_gradient(dtype: type[np.integer]) -> Image.Image:
    row = np.linspace(0, 65535, 64).round()
    for column, (value, _) in GRAY16_SAMPLES.items():
        row[column] = value
    return Image.fromarray(np.tile(row, (16, 1)).astype(dtype))


def _float_samples() -> Image.Image:
    row = np.linspace(0.0, 255.0, 64)
    for column, (value, _) in FLOAT_SAMPLES.items():
        row[column] = value
    return Image.fromarray(np.tile(row, (16, 1)).astype(np.float32))


def _rgba_bands() -> Image.Image:
    image = Image.new("RGBA", (16 * len(RGBA_BANDS), 32))
    for index, (stored, _) in enumerate(RGBA_BANDS):
        image.paste(stored, (16 * index, 0, 16 * (index + 1), 32))
    return image


def _palette_with_transparency() -> bytes:
    """Left half palette index 0 (green), right half index 1, which is transparent."""
    image = Image.new("P", (64, 48), 1)
    image.putpalette([*GREEN, 0, 0, 0])
    image.paste(0, (0, 0, 32, 48))
    return _encode(image, "PNG", transparency=1)


def _animation(image_format: str, **options: object) -> bytes:
    """Two 32x32 frames: red first, then blue."""
    first, second = Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)
    return _encode(
        first, image_format, save_all=True, append_images=[second], duration=100, loop=0, **options
    )


def _patch_png_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width and height (and its CRC) without touching the pixel data.

    Pillow reads the size from the header, so its bomb guard fires without allocating memory.
    """
    ihdr_start = 8  # after the PNG signature
    length, chunk_type = struct.unpack(">I4s", png[ihdr_start : ihdr_start + 8])
    assert chunk_type == b"IHDR"
    data_start = ihdr_start + 8
    data = struct.pack(">II", width, height) + png[data_start + 8 : data_start + length]
    crc = struct.pack(">I", zlib.crc32(chunk_type + data) & 0xFFFFFFFF)
    return (
        png[:ihdr_start]
        + struct.pack(">I", length)
        + chunk_type
        + data
        + crc
        + png[data_start + length + 4 :]
    )


@functools.cache
def _photo() -> Image.Image:
    # Noise makes JPEG scan data dominate the file, so cutting it in half lands mid-scan.
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@functools.cache
def _photo_jpeg() -> bytes:
    return _encode(_photo(), "JPEG", quality=90)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _solid_png(width: int, height: int) -> bytes:
    return _encode(Image.new("RGB", (width, height), GREEN), "PNG")


_RECIPES: dict[str, _Recipe] = {
    "normal_jpeg": _ok("normal.jpg", _photo_jpeg, (64, 48)),
    "grayscale_jpeg": _ok(
        "grayscale.jpg", lambda: _encode(_photo().convert("L"), "JPEG"), (64, 48)
    ),
    "cmyk_jpeg": _ok(
        "cmyk.jpg", lambda: _encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"), (64, 48)
    ),
    "exif_rotated_jpeg": _ok("exif_rotated.jpg", _exif_rotated_jpeg, (32, 64)),
    "webp": _ok("photo.webp", lambda: _encode(_photo(), "WEBP", lossless=True), (64, 48)),
    "bmp": _ok("photo.bmp", lambda: _encode(_photo(), "BMP"), (64, 48)),
    "tiff": _ok("scan.TIF", lambda: _encode(_photo(), "TIFF"), (64, 48)),
    "png_named_jpg": _ok("really_a_png.jpg", lambda: _encode(_photo(), "PNG"), (64, 48)),
    "gray16_png": _ok("gray16.png", lambda: _encode(_gray16_gradient(np.uint16), "PNG"), (64, 16)),
    "int32_tiff": _ok("int32.tif", lambda: _encode(_gray16_gradient(np.int32), "TIFF"), (64, 16)),
    "float32_tiff": _ok("float32.tif", lambda: _encode(_float_samples(), "TIFF"), (64, 16)),
    "bilevel_png": _ok("bilevel.png", lambda: _encode(_photo().convert("1"), "PNG"), (64, 48)),
    "rgba_png": _ok("rgba.png", lambda: _encode(_rgba_bands(), "PNG"), (48, 32)),
    "palette_transparent_png": _ok("palette_transparent.png", _palette_with_transparency, (64, 48)),
    "animated_gif": _ok("animated.gif", lambda: _animation("GIF"), (32, 32)),
    "animated_png": _ok("animated.png", lambda: _animation("PNG"), (32, 32)),
    "animated_webp": _ok("animated.webp", lambda: _animation("WEBP", lossless=True), (32, 32)),
    "truncated_jpeg": _error("truncated.jpg", lambda: _half(_photo_jpeg()), "truncated"),
    "truncated_png": _error("truncated.png", lambda: _half(_encode(_photo(), "PNG")), "truncated"),
    "zero_byte_jpg": _error("zero_byte.jpg", lambda: b"", "empty"),
    "text_as_png": _error(
        "notes.png", lambda: b"This is a text file, not an image.\n" * 20, "not_an_image"
    ),
    "random_bytes_jpg": _error("random.jpg", lambda: _random_bytes(2048), "not_an_image"),
    "huge_png": _error(
        "huge.png", lambda: _patch_png_size(_solid_png(8, 8), 40000, 40000), "too_large"
    ),
    # Between 1x and 2x Pillow's limit, where Pillow only warns: the loader must still refuse it.
    "large_png": _error(
        "large.png", lambda: _patch_png_size(_solid_png(8, 8), 10000, 10000), "too_large"
    ),
    "tiny_png": _error("tiny.png", lambda: _solid_png(4, 4), "too_small"),
    "thin_png": _error("thin.png", lambda: _solid_png(200, 8), "too_small"),
}

OK_NAMES: tuple[str, ...] = tuple(
    name for name, recipe in _RECIPES.items() if recipe.expect == "ok"
)
"""Corpus entries that must load, usable in ``pytest.mark.parametrize`` at collection time."""

ERROR_NAMES: tuple[str, ...] = tuple(
    name for name, recipe in _RECIPES.items() if recipe.expect == "error"
)
"""Corpus entries that must raise ``ImageLoadError``, usable in ``pytest.mark.parametrize``."""
