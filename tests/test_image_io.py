"""Tests for aigi.image_io: loading every odd or broken input, and collecting files."""

from __future__ import annotations

import contextlib
import functools
import http.server
import pickle
import io
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from bad_images import (
    BLUE,
    ERROR_NAMES,
    FLOAT_SAMPLES,
    GRAY16_SAMPLES,
    GREEN,
    OK_NAMES,
    RED,
    RGBA_BANDS,
    WHITE,
    CorpusEntry,
)
from PIL import Image, ImageFile

from aigi.image_io import (
    MIN_IMAGE_SIDE,
    ImageLoadError,
    collect_image_files,
    load_image,
)

Corpus = dict[str, CorpusEntry]


def assert_pixel_close(
    image: Image.Image, xy: tuple[int, int], expected: tuple[int, int, int], tolerance: int
) -> None:
    actual = np.asarray(image)[xy[1], xy[0]].astype(int)
    assert np.abs(actual - expected).max() <= tolerance, f"{tuple(actual)} != {expected} at {xy}"


@pytest.mark.parametrize("name", OK_NAMES)
def test_ok_entries_load_as_rgb_with_expected_size(bad_image_corpus: Corpus, name: str) -> None:
    entry = bad_image_corpus[name]
    image = load_image(entry.path)
    assert image.mode == "RGB"
    assert image.size == entry.expected_size
    assert np.asarray(image).shape == (entry.expected_size[1], entry.expected_size[0], 3)


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_entries_raise_with_reason_and_file_name(bad_image_corpus: Corpus, name: str) -> None:
    entry = bad_image_corpus[name]
    with pytest.raises(ImageLoadError) as caught:
        load_image(entry.path)
    assert caught.value.reason == entry.reason
    assert caught.value.source == str(entry.path)
    assert entry.path.name in str(caught.value)


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_entries_as_bytes_give_the_same_reason(bad_image_corpus: Corpus, name: str) -> None:
    entry = bad_image_corpus[name]
    with pytest.raises(ImageLoadError) as caught:
        load_image(entry.path.read_bytes())
    assert caught.value.reason == entry.reason
    assert caught.value.source == "<bytes>"


def test_one_bad_file_does_not_stop_a_batch(bad_image_corpus: Corpus) -> None:
    loaded, failed = [], []
    for entry in bad_image_corpus.values():
        try:
            loaded.append(load_image(entry.path))
        except ImageLoadError as error:
            failed.append(error.reason)
    assert len(loaded) == len(OK_NAMES)
    assert len(failed) == len(ERROR_NAMES)


@pytest.mark.parametrize("name", ["gray16_png", "int32_tiff"])
def test_sixteen_bit_grey_is_scaled_not_clipped(bad_image_corpus: Corpus, name: str) -> None:
    pixels = np.asarray(load_image(bad_image_corpus[name].path))
    for column, (_, expected) in GRAY16_SAMPLES.items():
        assert tuple(pixels[0, column]) == (expected,) * 3, f"column {column}"
    gradient = pixels[0, len(GRAY16_SAMPLES) :, 0].astype(int)
    assert np.all(np.diff(gradient) >= 0) and gradient[-1] == 255


def test_float_image_is_clipped_to_8_bit_range(bad_image_corpus: Corpus) -> None:
    pixels = np.asarray(load_image(bad_image_corpus["float32_tiff"].path))
    for column, (_, expected) in FLOAT_SAMPLES.items():
        assert tuple(pixels[0, column]) == (expected,) * 3, f"column {column}"


def test_rgba_is_composited_onto_white(bad_image_corpus: Corpus) -> None:
    image = load_image(bad_image_corpus["rgba_png"].path)
    for index, (_, expected) in enumerate(RGBA_BANDS):
        assert_pixel_close(image, (16 * index + 8, 16), expected, tolerance=1)


def test_palette_transparency_is_composited_onto_white(bad_image_corpus: Corpus) -> None:
    image = load_image(bad_image_corpus["palette_transparent_png"].path)
    assert image.getpixel((8, 24)) == GREEN
    assert image.getpixel((56, 24)) == WHITE


@pytest.mark.parametrize("name", ["animated_gif", "animated_png", "animated_webp"])
def test_animation_gives_its_first_frame(bad_image_corpus: Corpus, name: str) -> None:
    image = load_image(bad_image_corpus[name].path)
    assert_pixel_close(image, (16, 16), RED, tolerance=2)


def test_exif_orientation_is_applied(bad_image_corpus: Corpus) -> None:
    image = load_image(bad_image_corpus["exif_rotated_jpeg"].path)
    assert image.size == (32, 64)
    assert_pixel_close(image, (16, 8), RED, tolerance=30)
    assert_pixel_close(image, (16, 56), BLUE, tolerance=30)


def test_cmyk_jpeg_keeps_its_colours(bad_image_corpus: Corpus) -> None:
    image = load_image(bad_image_corpus["cmyk_jpeg"].path)
    assert_pixel_close(image, (32, 24), RED, tolerance=10)


def test_loading_leaves_pillow_guards_as_they_were(bad_image_corpus: Corpus) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    for entry in bad_image_corpus.values():
        with contextlib.suppress(ImageLoadError):
            load_image(entry.path)
    assert limit_before is not None
    assert limit_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bad_image_corpus["huge_png"].path)
    # Outside load_image the bomb warning is a warning again, not an error.
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(bad_image_corpus["large_png"].path).close()


def test_large_image_opened_by_the_caller_is_refused(bad_image_corpus: Corpus) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        lazy_image = Image.open(bad_image_corpus["large_png"].path)
    with lazy_image, pytest.raises(ImageLoadError) as caught:
        load_image(lazy_image)
    assert caught.value.reason == "too_large"


def test_large_file_is_refused_without_a_warning(bad_image_corpus: Corpus) -> None:
    with warnings.catch_warnings(record=True) as emitted:
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError):
            load_image(bad_image_corpus["large_png"].path)
    assert not [w for w in emitted if issubclass(w.category, Image.DecompressionBombWarning)]


def _outcome(source: Path | bytes) -> tuple[str, str]:
    try:
        load_image(source)
    except ImageLoadError as error:
        return error.reason, error.detail
    return "ok", ""


def test_errors_are_the_same_from_many_threads(bad_image_corpus: Corpus) -> None:
    entries = list(bad_image_corpus.values())
    sources = [entry.path for entry in entries] + [entry.path.read_bytes() for entry in entries]
    expected = [_outcome(source) for source in sources]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for round_index in range(20):
            assert list(pool.map(_outcome, sources)) == expected, f"round {round_index}"
    limit = Image.MAX_IMAGE_PIXELS
    assert _outcome(bad_image_corpus["large_png"].path) == (
        "too_large", f"10000x10000 pixels exceeds the limit of {limit}"
    )
    assert _outcome(bad_image_corpus["huge_png"].path) == (
        "too_large", f"40000x40000 pixels exceeds the limit of {limit}"
    )


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


_SOURCE_KINDS: dict[str, Callable[[Image.Image, Path], object]] = {
    "path": lambda image, tmp_path: (image.save(tmp_path / "a.png"), tmp_path / "a.png")[1],
    "bytes": lambda image, tmp_path: _png_bytes(image),
    "opened_pil": lambda image, tmp_path: Image.open(io.BytesIO(_png_bytes(image))),
    "pil": lambda image, tmp_path: image,
    "array": lambda image, tmp_path: np.asarray(image),
}


@pytest.mark.parametrize("kind", _SOURCE_KINDS)
@pytest.mark.parametrize("size", [(40, 40), (64, 48)], ids=["warn_zone", "error_zone"])
def test_every_source_kind_gets_the_same_too_large_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, size: tuple[int, int]
) -> None:
    # 1600 pixels lies between 1x and 2x this limit (Pillow warns), 3072 above 2x (Pillow raises).
    image = Image.new("RGB", size, RED)
    source = _SOURCE_KINDS[kind](image, tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageLoadError) as caught:
            load_image(source)  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.detail) == (
        "too_large", f"{size[0]}x{size[1]} pixels exceeds the limit of 1000"
    )


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    with pytest.raises(ImageLoadError) as caught:
        load_image(missing)
    assert caught.value.reason == "not_found"
    assert "nowhere.jpg" in str(caught.value)


def test_path_given_as_string_loads(bad_image_corpus: Corpus) -> None:
    assert load_image(str(bad_image_corpus["normal_jpeg"].path)).size == (64, 48)


def test_bytes_input_matches_path_input(bad_image_corpus: Corpus) -> None:
    path = bad_image_corpus["exif_rotated_jpeg"].path
    from_bytes = load_image(path.read_bytes())
    assert from_bytes.tobytes() == load_image(path).tobytes()


def test_pil_input_is_converted_without_mutation() -> None:
    rgba = Image.new("RGBA", (32, 32), (0, 0, 255, 0))
    loaded = load_image(rgba)
    assert (loaded.mode, loaded.getpixel((0, 0))) == ("RGB", WHITE)
    assert (rgba.mode, rgba.getpixel((0, 0))) == ("RGBA", (0, 0, 255, 0))
    rgb = Image.new("RGB", (32, 32), RED)
    loaded_rgb = load_image(rgb)
    loaded_rgb.putpixel((0, 0), BLUE)
    assert rgb.getpixel((0, 0)) == RED, "the result must not share pixels with the input"


def test_pil_input_gets_exif_orientation(bad_image_corpus: Corpus) -> None:
    with Image.open(bad_image_corpus["exif_rotated_jpeg"].path) as stored:
        assert load_image(stored).size == (32, 64)


@pytest.mark.parametrize(
    ("array", "expected_pixel"),
    [
        (np.full((20, 30), 7, dtype=np.uint8), (7, 7, 7)),
        (np.full((20, 30, 1), 7, dtype=np.uint8), (7, 7, 7)),
        (np.tile(np.array([10, 20, 30], dtype=np.uint8), (20, 30, 1)), (10, 20, 30)),
    ],
    ids=["HxW", "HxWx1", "HxWx3"],
)
def test_numpy_input(array: np.ndarray, expected_pixel: tuple[int, int, int]) -> None:
    image = load_image(array)
    assert (image.mode, image.size, image.getpixel((0, 0))) == ("RGB", (30, 20), expected_pixel)


def test_numpy_rgba_input_is_composited_onto_white() -> None:
    pixels = np.zeros((20, 30, 4), dtype=np.uint8)
    assert load_image(pixels).getpixel((0, 0)) == WHITE


@pytest.mark.parametrize(
    "array", [np.zeros((20, 30, 3), dtype=np.float32), np.zeros((20, 30, 2), dtype=np.uint8)]
)
def test_unsupported_numpy_input_is_refused(array: np.ndarray) -> None:
    with pytest.raises(ImageLoadError) as caught:
        load_image(array)
    assert caught.value.reason == "unreadable"


def test_tiny_numpy_input_is_too_small() -> None:
    with pytest.raises(ImageLoadError) as caught:
        load_image(np.zeros((MIN_IMAGE_SIDE - 1, 64, 3), dtype=np.uint8))
    assert caught.value.reason == "too_small"
    assert load_image(np.zeros((MIN_IMAGE_SIDE, 64, 3), dtype=np.uint8)).size == (64, 16)


def test_unsupported_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_image(42)  # type: ignore[arg-type]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_server(bad_image_corpus: Corpus) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving the corpus folder."""
    folder = bad_image_corpus["normal_jpeg"].path.parent
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for variable in ("NO_PROXY", "no_proxy"):  # a configured proxy must not see local URLs
            monkeypatch.setenv(variable, "127.0.0.1,localhost")
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def test_url_loads(image_server: str, bad_image_corpus: Corpus) -> None:
    image = load_image(f"{image_server}/exif_rotated.jpg")
    path_image = load_image(bad_image_corpus["exif_rotated_jpeg"].path)
    assert image.tobytes() == path_image.tobytes()


def test_url_not_found_is_url_error(image_server: str) -> None:
    url = f"{image_server}/missing.jpg"
    with pytest.raises(ImageLoadError) as caught:
        load_image(url)
    assert (caught.value.reason, caught.value.source) == ("url_error", url)
    assert "404" in str(caught.value)


def test_url_with_bad_content_reports_the_url(image_server: str) -> None:
    url = f"{image_server}/truncated.jpg"
    with pytest.raises(ImageLoadError) as caught:
        load_image(url)
    assert (caught.value.reason, caught.value.source) == ("truncated", url)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """root/{b.png, a.JPG, notes.txt, .hidden.jpg, sub/{c.webp, d.gif}, .git/e.jpg}"""
    for relative in (
        "b.png",
        "a.JPG",
        "notes.txt",
        ".hidden.jpg",
        "sub/c.webp",
        "sub/d.gif",
        ".git/e.jpg",
    ):
        path = tmp_path / "root" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path / "root"


def test_collect_walks_folders_recursively_and_filters_extensions(image_tree: Path) -> None:
    found = collect_image_files([image_tree])
    assert [path.relative_to(image_tree).as_posix() for path in found] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
        "sub/d.gif",
    ]


def test_collect_non_recursive_stays_in_the_folder(image_tree: Path) -> None:
    found = collect_image_files([image_tree], recursive=False)
    assert [path.name for path in found] == ["a.JPG", "b.png"]


def test_collect_keeps_explicit_files_first_and_deduplicates(image_tree: Path) -> None:
    notes, picture = image_tree / "notes.txt", image_tree / "sub" / "d.gif"
    found = collect_image_files([notes, picture, image_tree / "sub", str(picture)])
    assert found == [notes, picture, image_tree / "sub" / "c.webp"]


def test_collect_missing_path_raises_with_the_path(image_tree: Path) -> None:
    missing = image_tree / "gone"
    with pytest.raises(FileNotFoundError, match="gone"):
        collect_image_files([image_tree, missing])


def test_image_load_error_survives_pickling() -> None:
    error = ImageLoadError("photos/a.jpg", "truncated", "image file is truncated")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.reason, str(copy)) == (error.source, error.reason, str(error))
