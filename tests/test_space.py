"""The Gradio demo: the handler, the app through gradio_client, and the page in headless Debian Chromium."""

import csv
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from aigi.demo import (
    LAUNCH_OPTIONS,
    MAX_IMAGE_PIXELS,
    MODELS_ENV,
    TABLE_HEADERS,
    DetectorPool,
    build_demo,
    detect,
    detector_choices,
)
from aigi.modeling.gensign import GenSignConfig, GenSignForImageClassification, GenSignImageProcessor
from aigi.inference.pipeline import fake_score
from aigi.registry import DEFAULT_DETECTOR, default_detector_path
from helpers import write_image

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


def test_detector_choices_take_models_and_the_environment(tiny_detector_dir, tmp_path, monkeypatch):
    second = shutil.copytree(tiny_detector_dir, tmp_path / "second")
    monkeypatch.setenv(MODELS_ENV, os.pathsep.join([str(second), str(tiny_detector_dir)]))
    assert detector_choices([str(tiny_detector_dir)]) == {DEFAULT_DETECTOR: default_detector_path(),
                                                          str(tiny_detector_dir): str(tiny_detector_dir),
                                                          str(second): str(second)}
    with pytest.raises(ValueError, match="No detector to demo"):
        build_demo({})


def test_the_shipped_space_offers_the_bundled_default_alone(choices):
    assert choices == {DEFAULT_DETECTOR: default_detector_path()}


def test_detect_scores_samples_and_reports_bad_files(choices, default_detector, broken_image, tmp_path):
    pool = DetectorPool(choices)
    too_large = tmp_path / "too_large.png"
    Image.new("RGB", (MAX_IMAGE_PIXELS // 1000 + 1, 1000)).save(too_large)
    summary, rows, csv_path, signatures = detect(
        pool, [str(broken_image), str(too_large)], ["real/coffee.png"], list(choices),
    )
    assert [row[0] for row in rows] == ["broken.png", "too_large.png", "real/coffee.png"]
    assert rows[0][4:] == ["error", "not_an_image: content is not a recognised image format"]
    assert rows[1][4] == "error" and f"at most {MAX_IMAGE_PIXELS:,} pixels" in rows[1][5]
    from aigi.registry import SAMPLES_DIR

    _, folder, threshold = default_detector
    assert rows[2][2] == pytest.approx(expected_p_fake(folder, SAMPLES_DIR / "real/coffee.png"), abs=1e-4)
    assert rows[2][3] == threshold and rows[2][4] == ("fake" if rows[2][2] >= threshold else "real")
    with open(csv_path, newline="") as file:
        table = list(csv.reader(file))
    assert table[0] == TABLE_HEADERS and len(table) == 4
    assert "1 verdicts" in summary and "2 errors" in summary and "**broken.png**: error" in summary
    assert signatures == []


def test_gensign_detector_shows_its_signature(tmp_path, probe_image):
    config = GenSignConfig(rgb_backbone="test_resnet", signature_backbone="test_efficientnet",
                           signature_extractor_width=8, signature_extractor_blocks=2, head_hidden_size=16,
                           image_size=32, decision_threshold=0.3)
    GenSignForImageClassification(config).eval().save_pretrained(tmp_path / "gensign")
    GenSignImageProcessor(crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "gensign")
    pool = DetectorPool({"gensign": str(tmp_path / "gensign")})
    _, rows, _, signatures = detect(pool, [str(probe_image)], [], ["gensign"])
    assert rows[0][3] == 0.3 and rows[0][4] == ("fake" if rows[0][2] >= 0.3 else "real")
    [(signature, caption)] = signatures
    assert signature.size == Image.open(probe_image).size and caption == "probe.png: gensign"


def test_client_predicts_and_reports_a_broken_file(app_url, choices, default_detector, probe_image, broken_image):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    [detector] = choices
    summary, table, csv_path, _ = client.predict(
        [handle_file(str(probe_image)), handle_file(str(broken_image))], [], [detector], api_name="/detect",
    )
    assert table["headers"] == TABLE_HEADERS
    probe_row, broken_row = table["data"]
    assert probe_row[0] == "probe.png"
    assert probe_row[2] == pytest.approx(expected_p_fake(default_detector[1], probe_image), abs=1e-4)
    assert broken_row[0] == "broken.png" and broken_row[4] == "error" and "not_an_image" in broken_row[5]
    assert Path(csv_path).read_text().splitlines()[0] == ",".join(TABLE_HEADERS)
    assert "**probe.png**" in summary


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
            summary = page.locator("#summary")
            expect(summary).to_contain_text("P(fake)", timeout=60_000)
            text = summary.inner_text()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {screenshot}")
    name, folder, threshold = default_detector
    p_fake = expected_p_fake(folder, probe_image)
    verdict = "fake" if p_fake >= threshold else "real"
    assert f"probe.png: {verdict} by {name}" in text
    assert f"P(fake) = {p_fake:.4f}" in text
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
