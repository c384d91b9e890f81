"""Heat maps of per-crop P(fake): the evidence lands where it is in the image, and `aigi detect --heatmaps` draws
one PNG per readable image."""

import numpy as np
import pytest
from helpers import score_crops_by_brightness, write_image
from PIL import Image
from transformers import pipeline

from aigi.cli import main
from aigi.inference.heatmaps import crop_heatmap, draw_heatmap, output_crops


@pytest.fixture
def brightness_pipe(tiny_detector_dir):
    scored = pipeline("ai-image-detection", model=str(tiny_detector_dir))
    score_crops_by_brightness(scored)
    return scored


@pytest.mark.parametrize(("left", "top"), [(0, 0), (96, 0), (32, 64), (96, 64)])
def test_a_bright_square_is_the_hottest_place_of_the_heat_map(brightness_pipe, left, top):
    pixels = np.full((96, 128, 3), 20, np.uint8)
    pixels[top:top + 32, left:left + 32] = 255  # one crop-sized square, on the 3 x 4 grid of 32-px crops
    output = brightness_pipe(Image.fromarray(pixels), num_crops=12, return_crops=True)
    heatmap = crop_heatmap(128, 96, output_crops(output))
    assert not np.isnan(heatmap).any()  # 12 crops cover the image
    hottest = np.argwhere(heatmap == heatmap.max())
    assert hottest[:, 0].min() == top and hottest[:, 0].max() == top + 31
    assert hottest[:, 1].min() == left and hottest[:, 1].max() == left + 31
    cold = np.ones_like(heatmap, bool)
    cold[top:top + 32, left:left + 32] = False
    assert heatmap[cold].max() < heatmap.max()


def test_overlapping_crops_average_and_uncovered_pixels_are_nan():
    crops = [{"box": [0, 0, 4, 4], "score": 0.2}, {"box": [2, 0, 6, 4], "score": 0.6}]
    heatmap = crop_heatmap(8, 5, crops)
    assert heatmap[0, 0] == pytest.approx(0.2) and heatmap[0, 3] == pytest.approx(0.4)
    assert heatmap[0, 5] == pytest.approx(0.6)
    assert np.isnan(heatmap[4, 0]) and np.isnan(heatmap[0, 7])


def test_an_output_without_crops_is_a_clear_error(brightness_pipe, tmp_path):
    output = brightness_pipe(Image.new("RGB", (40, 40)))
    with pytest.raises(ValueError, match="return_crops"):
        draw_heatmap(Image.new("RGB", (40, 40)), output, tmp_path / "map.png", threshold=0.5)


def test_detect_heatmaps_writes_one_png_per_readable_image(tiny_detector_dir, tmp_path, capsys):
    folder = tmp_path / "images"
    write_image(folder / "a.png", size=(100, 60))
    write_image(folder / "sub" / "a.jpg", seed=1, size=(64, 64))
    (folder / "broken.png").write_bytes(b"not an image")
    maps = tmp_path / "maps"
    assert main(["detect", str(folder), "--model", str(tiny_detector_dir), "--num-crops", "6", "--heatmaps",
                 str(maps)]) == 0
    written = sorted(path.name for path in maps.iterdir())
    assert written == ["a.png", "a_2.png"]
    for path in maps.iterdir():
        with Image.open(path) as drawn:
            assert drawn.format == "PNG" and min(drawn.size) > 100
    assert "ERROR" in capsys.readouterr().out  # the broken file still gets its row


def test_heatmaps_refuse_the_streaming_path(tiny_detector_dir, tmp_path, capsys):
    image = write_image(tmp_path / "a.png")
    assert main(["detect", str(image), "--model", str(tiny_detector_dir), "--output", str(tmp_path / "rows.csv"),
                 "--heatmaps", str(tmp_path / "maps")]) == 2
    assert "--heatmaps" in capsys.readouterr().err
