"""Screenshot of the demo as the Space ships it (the bundled default detector, no extra models) in headless Debian
Chromium, after scoring two bundled samples, a real photo and a generated image: thumbnails, heat maps with their
colour scale, verdicts and the table. Rerun after any change to the demo or the default detector:

    HF_HUB_OFFLINE=1 .venv/bin/python results/space/make_screenshot.py
"""

import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from aigi.demo import LAUNCH_OPTIONS, build_demo, detector_choices
from aigi.registry import SAMPLES_DIR

OUTPUT = Path(__file__).parent / "screenshot.png"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SAMPLES = [SAMPLES_DIR / "real" / "coffee.png", SAMPLES_DIR / "fake" / "sd2_base_tile0.png"]

with tempfile.TemporaryDirectory() as scratch:
    demo = build_demo(detector_choices())
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                Path(scratch) / "profile", executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            page = browser.new_page()
            page.goto(url)
            page.locator("#uploads input[type=file]").set_input_files([str(path) for path in SAMPLES])
            expect(page.locator(f"#uploads a[href$='/{SAMPLES[-1].name}']")).to_be_visible(timeout=30_000)
            page.locator("#detect").click()
            expect(page.locator("#results .aigi-heatmap img")).to_have_count(len(SAMPLES), timeout=60_000)
            # The last output (the CSV download), then the end of Gradio's fade-in of the updated outputs.
            expect(page.locator("a[href$='.csv']")).to_be_visible(timeout=60_000)
            page.wait_for_timeout(2_000)
            page.screenshot(path=str(OUTPUT), full_page=True)
            print(page.locator("#summary").inner_text())
            print(page.locator("#results").inner_text())
            browser.close()
    finally:
        demo.close()
print(f"screenshot: {OUTPUT}")
