"""The Gradio demo: the handler, the app through gradio_client, and the page in headless Debian Chromium."""

import base64
import csv
import io
import re
import os
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from aigi.demo import (
    HEATMAP_CROPS,
    LAUNCH_OPTIONS,
    MAX_IMAGE_PIXELS,
    MODELS_ENV,
    TABLE_HEADERS,
    UNSURE_MARGIN,
    Detections,
    DetectorPool,
    Downloads,
    ImageInput,
    build_demo,
    detect,
    detector_choices,
    results_html,
    summarize,
)
from aigi.modeling.gensign import GenSignConfig, GenSignForImageClassification, GenSignImageProcessor
from aigi.modeling.rescalecl import RescaleCLImageProcessor
from aigi.inference.pipeline import fake_score
from aigi.registry import DEFAULT_DETECTOR, default_detector_path
from helpers import score_crops_by_brightness, write_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SPACE_DIR = Path(__file__).parents[1] / "spaces" / "aigi-detector"
CHROMIUM = "/usr/bin/chromium"
# Besides Playwright's --headless: without the background-networking flags Chromium's own connections are refused
# on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def choices():
    """The Space as shipped: no extra models, so the bundled default detector alone."""
    return detector_choices()


@pytest.fixture(scope="module")
def default_detector():
    """(name, folder, calibrated threshold) of the bundled default."""
    from transformers import AutoConfig

    folder = default_detector_path()
    return DEFAULT_DETECTOR, folder, AutoConfig.from_pretrained(folder).decision_threshold


@pytest.fixture(scope="module")
def app_url(choices):
    demo = build_demo(choices)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def probe_image(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("space") / "probe.png", seed=3, size=(48, 40))


@pytest.fixture(scope="module")
def broken_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("space_broken") / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    return path


def expected_p_fake(model_dir, image_path) -> float:
    from transformers import pipeline

    return fake_score(pipeline("ai-image-detection", model=str(model_dir))(str(image_path)))


def expected_heatmap_crops(model_dir, image_path) -> list[dict]:
    from transformers import pipeline

    output = pipeline("ai-image-detection", model=str(model_dir))(str(image_path), num_crops=HEATMAP_CROPS,
                                                                  return_crops=True)
    return next(entry["crops"] for entry in output if entry["label"] == "fake")


def heatmap_pictures(results: str) -> list[Image.Image]:
    """The heat map images of the demo's results HTML, in order."""
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'<figure class="aigi-heatmap"><img src="data:image/png;base64,([^"]+)"', results)]


def test_detector_choices_take_models_and_the_environment(tiny_detector_dir, tmp_path, monkeypatch):
    second = shutil.copytree(tiny_detector_dir, tmp_path / "second")
    monkeypatch.setenv(MODELS_ENV, os.pathsep.join([str(second), str(tiny_detector_dir)]))
    assert detector_choices([str(tiny_detector_dir)]) == {DEFAULT_DETECTOR: default_detector_path(),
                                                          str(tiny_detector_dir): str(tiny_detector_dir),
                                                          str(second): str(second)}
    with pytest.raises(ValueError, match="No detector to demo"):
        build_demo({})


def test_detector_choices_from_a_detectors_folder_default_first(tiny_detector_dir, tmp_path):
    shutil.copytree(tiny_detector_dir, tmp_path / "detectors" / "a_tiny")
    shutil.copytree(default_detector_path(), tmp_path / "detectors" / DEFAULT_DETECTOR)
    (tmp_path / "detectors" / "notes").mkdir()
    folder = tmp_path / "detectors"
    assert detector_choices(detectors_dir=folder) == {
        DEFAULT_DETECTOR: str(folder / DEFAULT_DETECTOR), "a_tiny": str(folder / "a_tiny"),
    }


def test_the_shipped_space_offers_the_bundled_default_alone(choices):
    assert choices == {DEFAULT_DETECTOR: default_detector_path()}


def test_detect_scores_samples_and_reports_bad_files(choices, default_detector, broken_image, tmp_path):
    pool = DetectorPool(choices)
    too_large = tmp_path / "too_large.png"
    Image.new("RGB", (MAX_IMAGE_PIXELS // 1000 + 1, 1000)).save(too_large)
    detections = detect(pool, [str(broken_image), str(too_large)], ["real/coffee.png"], list(choices))
    rows = detections.rows
    assert [row[0] for row in rows] == ["broken.png", "too_large.png", "real/coffee.png"]
    assert rows[0][4:] == ["error", "not_an_image: content is not a recognised image format"]
    assert rows[1][4] == "error" and f"at most {MAX_IMAGE_PIXELS:,} pixels" in rows[1][5]
    from aigi.registry import SAMPLES_DIR

    _, folder, threshold = default_detector
    assert rows[2][2] == pytest.approx(expected_p_fake(folder, SAMPLES_DIR / "real/coffee.png"), abs=1e-4)
    assert rows[2][3] == threshold and rows[2][4] == ("fake" if rows[2][2] >= threshold else "real")
    # The verdict at the detector's own crops, the heat map from a pass of HEATMAP_CROPS crops.
    assert detections.crops_per_image[:2] == [[None], [None]]
    [crops] = detections.crops_per_image[2]
    expected_crops = expected_heatmap_crops(folder, SAMPLES_DIR / "real/coffee.png")
    assert [crop["box"] for crop in crops] == [crop["box"] for crop in expected_crops]
    assert [crop["score"] for crop in crops] == pytest.approx([crop["score"] for crop in expected_crops], abs=1e-4)
    downloads = Downloads()  # held: its folder goes when it does
    with open(downloads.write_csv(rows), newline="") as file:
        table = list(csv.reader(file))
    assert table[0] == TABLE_HEADERS and len(table) == 4 and float(table[3][2]) == rows[2][2]
    summary, results = summarize(rows), results_html(detections)
    assert "1 verdicts" in summary and "2 errors" in summary and "How to read this" in summary
    assert "<strong>broken.png</strong>" in results and "not_an_image" in results
    [heatmap] = heatmap_pictures(results)
    assert heatmap.size == (160, 160) and heatmap.format == "PNG"
    low, high = min(crop["score"] for crop in crops), max(crop["score"] for crop in crops)
    # As many crops as the default detector's crop size fits in the 256-px sample (one for a 256-px crop).
    caption = f"{len(crops)} crops, P(fake) {low:.3f} to {high:.3f}" if len(crops) > 1 else f"1 crop, P(fake) {low:.3f}"
    assert f"{DEFAULT_DETECTOR}: {caption}</figcaption>" in results
    assert f'<span style="left: {100 * threshold:.1f}%"></span>' in results  # the threshold on the legend
    assert detections.signatures == []


@pytest.fixture
def brightness_pool(tiny_detector_dir, tmp_path):
    """The tiny detector with 80-px crops, scoring each crop by its brightness."""
    folder = shutil.copytree(tiny_detector_dir, tmp_path / "bright")
    RescaleCLImageProcessor(crop_size={"height": 80, "width": 80}).save_pretrained(folder)
    pool = DetectorPool({"bright": str(folder)})
    score_crops_by_brightness(pool.pipeline("bright"))
    return pool


@pytest.mark.parametrize(("left", "top"), [(240, 160), (80, 0)])
def test_the_heat_map_shows_a_bright_square_where_it_was_painted(brightness_pool, tmp_path, left, top):
    pixels = np.full((240, 320, 3), 20, np.uint8)
    pixels[top:top + 80, left:left + 80] = 255  # one crop of the 3 x 4 grid of 80-px crops
    path = tmp_path / "bright.png"
    Image.fromarray(pixels).save(path)
    detections = detect(brightness_pool, [str(path)], [], ["bright"])
    [[crops]] = detections.crops_per_image
    assert len(crops) == 12 and max(crops, key=lambda crop: crop["score"])["box"] == [left, top, left + 80, top + 80]
    results = results_html(detections)
    [heatmap] = heatmap_pictures(results)
    assert heatmap.size == (160, 120)  # fitted into the 160-px thumbnail square, as the thumbnail is
    colors = np.asarray(heatmap.convert("RGB")).astype(int)
    red = np.argwhere(colors[..., 0] > colors[..., 1])
    assert red.min(0).tolist() == [top // 2, left // 2] and red.max(0).tolist() == [top // 2 + 39, left // 2 + 39]
    assert "bright: 12 crops, P(fake) 0.001 to 1.000</figcaption>" in results

    [[center]] = detect(brightness_pool, [str(path)], [], ["bright"], heatmap_crops=1).crops_per_image
    assert [crop["box"] for crop in center] == [[120, 80, 200, 160]]  # the detector's own single centre crop
    for crops in (0, 65):
        with pytest.raises(gr.Error, match="1 to 64 crops"):
            detect(brightness_pool, [str(path)], [], ["bright"], heatmap_crops=crops)


def test_gensign_detector_shows_its_signature(tmp_path, probe_image):
    config = GenSignConfig(rgb_backbone="test_resnet", signature_backbone="test_efficientnet",
                           signature_extractor_width=8, signature_extractor_blocks=2, head_hidden_size=16,
                           image_size=32, decision_threshold=0.3)
    GenSignForImageClassification(config).eval().save_pretrained(tmp_path / "gensign")
    GenSignImageProcessor(crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "gensign")
    pool = DetectorPool({"gensign": str(tmp_path / "gensign")})
    detections = detect(pool, [str(probe_image)], [], ["gensign"])
    rows, signatures = detections.rows, detections.signatures
    assert rows[0][3] == 0.3 and rows[0][4] == ("fake" if rows[0][2] >= 0.3 else "real")
    [(signature, caption)] = signatures
    assert signature.size == Image.open(probe_image).size and caption == "probe.png: gensign"


def test_client_predicts_and_reports_a_broken_file(app_url, choices, default_detector, probe_image, broken_image):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    [detector] = choices
    summary, results, table, csv_path, _ = client.predict(
        [handle_file(str(probe_image)), handle_file(str(broken_image))], [], [detector], HEATMAP_CROPS,
        api_name="/detect",
    )
    assert table["headers"] == TABLE_HEADERS
    probe_row, broken_row = table["data"]
    assert probe_row[0] == "probe.png"
    # Shown to 3 decimals; the CSV keeps full precision.
    p_fake = expected_p_fake(default_detector[1], probe_image)
    assert probe_row[2] == round(probe_row[2], 3) and probe_row[2] == pytest.approx(p_fake, abs=5e-4)
    assert probe_row[3] == round(default_detector[2], 3)
    assert broken_row[0] == "broken.png" and broken_row[4] == "error" and "not_an_image" in broken_row[5]
    with open(csv_path, newline="") as file:
        header, csv_probe, _ = list(csv.reader(file))
    assert header == TABLE_HEADERS
    assert float(csv_probe[2]) == pytest.approx(p_fake, abs=1e-6) and float(csv_probe[3]) == default_detector[2]
    assert "<strong>probe.png</strong>" in results and results.count('<img class="aigi-thumbnail"') == 1
    [heatmap] = heatmap_pictures(results)
    assert heatmap.size == (48, 40)  # as the probe: never enlarged
    assert "1 verdicts" in summary


def test_server_refuses_an_upload_over_the_size_limit(app_url):
    import requests

    limit = int(LAUNCH_OPTIONS["max_file_size"].removesuffix("mb")) * 1024 * 1024
    response = requests.post(f"{app_url}gradio_api/upload", files={"files": ("big.png", bytes(limit + 1))}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text


def test_browser_uploads_clicks_and_reads_the_verdict(app_url, default_detector, probe_image, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    screenshot = tmp_path / "space.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.goto(app_url)
            page.locator("#uploads input[type=file]").set_input_files(str(probe_image))
            expect(page.locator("#uploads a[href$='/probe.png']")).to_be_visible(timeout=30_000)
            page.locator("#detect").click()
            results = page.locator("#results")
            expect(results).to_contain_text("P(fake)", timeout=60_000)
            text = results.inner_text()
            thumbnail_width = results.locator("img.aigi-thumbnail").evaluate("image => image.naturalWidth")
            heatmap = results.locator(".aigi-heatmap img")
            expect(heatmap).to_be_visible()
            heatmap_width = heatmap.evaluate("image => image.naturalWidth")
            legend = results.locator(".aigi-legend").evaluate(
                "legend => [getComputedStyle(legend).backgroundImage, legend.firstElementChild.style.left]"
            )
            expect(page.locator("#summary")).to_contain_text("How to read this")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {screenshot}")
    name, folder, threshold = default_detector
    p_fake = expected_p_fake(folder, probe_image)
    verdict = "unsure" if abs(p_fake - threshold) < UNSURE_MARGIN else "fake" if p_fake >= threshold else "real"
    assert "probe.png" in text and f"{name}: {verdict}, P(fake) {p_fake:.3f}" in text
    assert f"threshold {threshold:.3f}" in text and thumbnail_width == 48
    [crop] = expected_heatmap_crops(folder, probe_image)  # smaller than a crop: one, the whole image
    assert heatmap_width == 48 and f"{name}: 1 crop, P(fake) {crop['score']:.3f}" in text
    assert legend[0].startswith("linear-gradient") and legend[1] == f"{100 * threshold:.1f}%"
    assert screenshot.stat().st_size > 10_000


def test_space_pins_match_the_installed_gradio():
    import gradio

    header = SPACE_DIR.joinpath("README.md").read_text().split("---")[1]
    assert f"sdk_version: {gradio.__version__}" in header and "app_file: app.py" in header
    assert f"gradio=={gradio.__version__}" in SPACE_DIR.joinpath("requirements.txt").read_text().splitlines()


def test_space_app_builds_from_the_environment(tiny_detector_dir, monkeypatch):
    import runpy

    monkeypatch.setenv(MODELS_ENV, str(tiny_detector_dir))
    demo = runpy.run_path(str(SPACE_DIR / "app.py"))["demo"]
    [detectors] = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "detectors"]
    assert detectors.value == [DEFAULT_DETECTOR]  # the default is preselected, the extra model offered
    assert str(tiny_detector_dir) in [choice[0] if isinstance(choice, tuple) else choice
                                      for choice in detectors.choices]


def test_scores_near_the_threshold_read_as_unsure_and_names_are_escaped():
    threshold = 0.5
    scores = {"sure_fake.png": 0.5 + UNSURE_MARGIN + 0.001, "leans_fake.png": 0.5 + UNSURE_MARGIN - 0.001,
              "leans_real.png": 0.5 - UNSURE_MARGIN + 0.001, "<b>sure_real</b>.png": 0.5 - UNSURE_MARGIN - 0.001}
    images = [ImageInput(name, Image.new("RGB", (400, 200), "gray"), "") for name in scores]
    rows = [[[name, "det", p_fake, threshold, "fake" if p_fake >= threshold else "real", ""]]
            for name, p_fake in scores.items()]
    crops = [[[{"box": [0, 0, 400, 200], "score": p_fake}]] for p_fake in scores.values()]
    images.append(ImageInput("broken.png", None, "not_an_image: no"))
    detections = Detections(images, rows + [[["broken.png", "det", None, threshold, "error", "error"]]],
                            crops + [[None]], [])
    results = results_html(detections)
    assert "det: <b class=\"aigi-fake\">fake</b>, P(fake) 0.551 ≥ threshold 0.500" in results
    assert "det: <b class=\"aigi-unsure\">unsure</b>, P(fake) 0.549 is within 0.05 of the threshold 0.500 " \
           "(leans fake)" in results
    assert "P(fake) 0.451 is within 0.05 of the threshold 0.500 (leans real)" in results
    assert "det: <b class=\"aigi-real\">real</b>, P(fake) 0.449 &lt; threshold 0.500" in results
    assert "<strong>&lt;b&gt;sure_real&lt;/b&gt;.png</strong>" in results and "<b>sure_real</b>" not in results
    assert results.count('<img class="aigi-thumbnail"') == 4 and results.count("no preview") == 1
    assert len(heatmap_pictures(results)) == 4 and "det: 1 crop, P(fake) 0.549</figcaption>" in results
    assert 'alt="heat map of &lt;b&gt;sure_real&lt;/b&gt;.png by det"' in results
    summary = summarize([row for image_rows in rows for row in image_rows])
    assert summary.startswith("**4 verdicts: 1 fake, 1 real, 2 unsure; 0 errors.**")


def test_downloads_keep_the_latest_files_in_one_folder_per_app(tiny_detector_dir):
    downloads = Downloads(keep=3)
    assert downloads.folder.parent == Path(tempfile.gettempdir()) and downloads.folder.name.startswith("aigi_demo_")
    paths = [Path(downloads.write_csv([["a.png", "det", index / 7, 0.5, "real", ""]])) for index in range(5)]
    assert sorted(downloads.folder.iterdir()) == sorted(paths[-3:])
    assert "a.png,det,0.5714285714285714,0.5,real," in paths[-1].read_text()  # full precision
    downloads.remove()
    assert not downloads.folder.exists()

    folders = []
    for _ in range(2):
        demo = build_demo({"tiny": str(tiny_detector_dir)})
        [event] = demo.fns.values()
        csv_path = Path(event.fn(None, ["real/coffee.png"], ["tiny"], HEATMAP_CROPS)[3])
        folders.append(csv_path.parent)
        demo.close()
    assert folders[0] != folders[1] and all(folder.name.startswith("aigi_demo_") for folder in folders)
