"""The detector demo: a Gradio app that scores uploaded or bundled images with one or several detectors.

`build_demo` makes the `gr.Blocks`; `aigi demo` and the Space app (`spaces/aigi-detector/app.py`, written by
`aigi export-space`) launch it. Detectors are the bundled checkpoints, or the model folders of a `detectors_dir` (the
detectors an exported Space ships), the default one pre-selected; plus any model given to `detector_choices` and
the entries of the `AIGI_DEMO_MODELS` environment variable (bundled names or directories, separated by `os.pathsep`).

Each image is shown as a thumbnail beside its heat map and verdict per detector, with P(fake) and the threshold to
`DISPLAY_DECIMALS` decimals, and as "unsure" when P(fake) is within `UNSURE_MARGIN` of the threshold; the CSV
download keeps full precision. The verdict is the pipeline's at the detector's own crop setting, the one its
threshold was calibrated at; the heat map is the per-crop P(fake) of a second pass with up to `heatmap_crops` crops
(default `HEATMAP_CROPS`), skipped when the detector's own setting is that many crops already. One app's CSVs live
in its own temporary folder, which keeps the latest `MAX_DOWNLOADS` and is removed when the app is garbage-collected
or the process exits.
"""

import base64
import csv
import html
import io
import os
import shutil
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Read by gradio at import time (its version check and telemetry): the demo never phones home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr
from PIL import Image

from .image_io import IMAGE_EXTENSIONS, ImageLoadError, load_image
from .inference.heatmaps import heatmap_overlay, legend_colors, output_crops
from .inference.pipeline import fake_score
from .inference.scoring import score_sources
from .registry import DEFAULT_DETECTOR, SAMPLES_DIR, bundled_checkpoints, resolve_model

MODELS_ENV = "AIGI_DEMO_MODELS"
MAX_FILE_SIZE_MB = 20
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_IMAGES = 64
MAX_SIGNATURES = 8
MAX_DOWNLOADS = 100
TABLE_HEADERS = ["image", "detector", "p_fake", "threshold", "verdict", "error"]
DISPLAY_DECIMALS = 3
UNSURE_MARGIN = 0.05
THUMBNAIL_PIXELS = 160
HEATMAP_CROPS = 16
MAX_HEATMAP_CROPS = 64

HOW_TO_READ = (
    "**How to read this:** P(fake) runs from 0 (the detector sees a real photograph) to 1 (it sees an AI-generated "
    "image); the verdict is *fake* from the detector's threshold up, *real* below it. Within "
    f"{UNSURE_MARGIN} of the threshold the detector is **unsure**: do not rely on its verdict there. The heat map "
    "beside each image colours every part of it by the P(fake) of the crops of the image that cover it, green (real) "
    "to red (fake); the black mark on its scale is the threshold. A score is one signal, not a proof."
)

RESULTS_CSS = """
.aigi-result { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; padding: 8px 0;
               border-bottom: 1px solid var(--border-color-primary); }
.aigi-thumbnail { width: 160px; max-height: 160px; object-fit: contain; flex: none; }
.aigi-heatmap { width: 160px; margin: 0; flex: none; font-size: var(--text-sm); }
.aigi-heatmap img { width: 160px; max-height: 160px; object-fit: contain; display: block; }
.aigi-legend { position: relative; height: 10px; margin-top: 4px; }
.aigi-legend span { position: absolute; top: -3px; width: 2px; height: 16px; margin-left: -1px; background: black; }
.aigi-scale { display: flex; justify-content: space-between; color: var(--body-text-color-subdued); }
.aigi-missing { width: 160px; height: 60px; flex: none; display: flex; align-items: center; justify-content: center;
                border: 1px dashed var(--border-color-primary); color: var(--body-text-color-subdued); }
.aigi-result ul { margin: 4px 0 0; padding-left: 18px; }
.aigi-unsure, .aigi-error { color: var(--color-accent); }
""" + f".aigi-legend {{ background: linear-gradient(to right, {', '.join(legend_colors())}); }}\n"

LAUNCH_OPTIONS = {
    "max_file_size": f"{MAX_FILE_SIZE_MB}mb",
    "footer_links": ["gradio"],
    "theme": gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
}
"""Options of `Blocks.launch` shared by `aigi demo` and the Space (which sets the server address itself)."""


def detector_choices(models: Sequence[str] = (), *, detectors_dir: str | Path | None = None) -> dict[str, str]:
    """Display name -> model path: the detectors, the default first, then `models`, then `AIGI_DEMO_MODELS`.

    The detectors are the model folders in `detectors_dir`, shown by folder name, or without it the bundled
    checkpoints, shown by name. Any other model is shown by the name or path given. The same model given twice
    appears once.
    """
    if detectors_dir is None:
        detectors = {checkpoint["name"]: checkpoint["path"] for checkpoint in bundled_checkpoints()}
    else:
        detectors = {config.parent.name: str(config.parent) for config in Path(detectors_dir).glob("*/config.json")}
    choices = {name: detectors[name] for name in sorted(detectors, key=lambda name: (name != DEFAULT_DETECTOR, name))}
    for name in list(models) + [entry for entry in os.environ.get(MODELS_ENV, "").split(os.pathsep) if entry]:
        path = resolve_model(name)
        if path not in choices.values():
            choices[name] = path
    return choices


def sample_images() -> dict[str, Path]:
    """Bundled sample images by their path under `SAMPLES_DIR` (e.g. "real/coffee.png")."""
    return {
        path.relative_to(SAMPLES_DIR).as_posix(): path
        for path in sorted(SAMPLES_DIR.rglob("*"))
        if path.suffix.lower() in IMAGE_EXTENSIONS
    }


@dataclass
class ImageInput:
    name: str
    image: Image.Image | None
    error: str


def read_image(name: str, path: str | Path) -> ImageInput:
    """Decode one upload; an unreadable or oversized file becomes an error, never an exception."""
    try:
        image = load_image(path)
    except ImageLoadError as error:
        return ImageInput(name, None, f"{error.reason}: {error.detail}")
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        return ImageInput(
            name, None, f"too_large: {width}x{height} pixels; this demo accepts at most {MAX_IMAGE_PIXELS:,} pixels",
        )
    return ImageInput(name, image, "")


class DetectorPool:
    """The `ai-image-detection` pipelines of the demo's detectors, each loaded on first use."""

    def __init__(self, choices: dict[str, str]):
        self.choices = choices
        self._pipelines: dict[str, object] = {}
        self._lock = threading.Lock()

    def pipeline(self, name: str):
        from transformers import pipeline

        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = pipeline("ai-image-detection", model=self.choices[name])
            return self._pipelines[name]


def has_signature_stream(model) -> bool:
    from .modeling.gensign import GenSignPreTrainedModel

    return isinstance(model, GenSignPreTrainedModel) and model.config.use_signature_stream


@dataclass
class Detections:
    """One request: the images as read, each with one row per chosen detector (`TABLE_HEADERS`, full precision)
    and the crops of its heat map per chosen detector (the pipeline's `"crops"`; None for an image not scored), and
    the GenSign signature images with their captions."""

    images: list[ImageInput]
    rows_per_image: list[list[list]]
    crops_per_image: list[list[list[dict] | None]]
    signatures: list[tuple[Image.Image, str]]

    @property
    def rows(self) -> list[list]:
        return [row for rows in self.rows_per_image for row in rows]


def detect(
    pool: DetectorPool, uploads: Sequence[str] | None, samples: Sequence[str] | None, detectors: Sequence[str] | None,
    heatmap_crops: int = HEATMAP_CROPS,
) -> Detections:
    """Score every image with every chosen detector, at its own crop setting for the verdict and with up to
    `heatmap_crops` crops for the heat map; signatures only for detectors with a signature stream."""
    if not detectors:
        raise gr.Error("Choose at least one detector.")
    if not 1 <= heatmap_crops <= MAX_HEATMAP_CROPS:
        raise gr.Error(f"The heat map takes 1 to {MAX_HEATMAP_CROPS} crops, not {heatmap_crops}.")
    unknown = [name for name in detectors if name not in pool.choices]
    if unknown:
        raise gr.Error(f"Unknown detector(s): {', '.join(unknown)}.")
    bundled = sample_images()
    unknown = [name for name in samples or [] if name not in bundled]
    if unknown:
        raise gr.Error(f"Unknown sample(s): {', '.join(unknown)}.")
    sources = [(Path(upload).name, upload) for upload in uploads or []]
    sources += [(name, bundled[name]) for name in samples or []]
    if not sources:
        raise gr.Error("Upload an image or pick a bundled sample.")
    if len(sources) > MAX_IMAGES:
        raise gr.Error(f"{len(sources)} images: this demo scores at most {MAX_IMAGES} at a time.")
    images = [read_image(name, path) for name, path in sources]
    readable = [item for item in images if item.image is not None]

    rows_per_image: list[list[list]] = [[] for _ in images]
    crops_per_image: list[list[list[dict] | None]] = [[] for _ in images]
    signatures: list[tuple[Image.Image, str]] = []
    for detector in detectors:
        pipe = pool.pipeline(detector)
        threshold = float(pipe.model.config.decision_threshold)
        pictures = [item.image for item in readable]
        options = {"batch_size": 8, "num_workers": 0, "progress": False, "return_crops": True}
        verdicts = score_sources(pipe, pictures, **options)
        maps = verdicts if heatmap_crops == pipe.image_processor.num_crops else score_sources(
            pipe, pictures, num_crops=heatmap_crops, **options,
        )
        outputs = iter(zip(verdicts, maps))
        for item, rows, crops in zip(images, rows_per_image, crops_per_image):
            output, heatmap = next(outputs) if item.image is not None else ({"error": item.error}, None)
            if isinstance(output, dict):
                rows.append([item.name, detector, None, threshold, "error", output["error"]])
                crops.append(None)
            else:  # the pipeline puts the verdict at the threshold first
                rows.append([item.name, detector, fake_score(output), threshold, output[0]["label"], ""])
                crops.append(output_crops(heatmap))
        if has_signature_stream(pipe.model):
            from .modeling.gensign import gensign_signature

            for item in readable[:MAX_SIGNATURES]:
                signatures.append((gensign_signature(pipe.model, item.image), f"{item.name}: {detector}"))
    return Detections(images, rows_per_image, crops_per_image, signatures)


def is_unsure(p_fake: float, threshold: float) -> bool:
    return abs(p_fake - threshold) < UNSURE_MARGIN


def reading(row: list) -> tuple[str, str]:
    """(verdict as shown: fake, real, unsure or error; the numbers or the error behind it) for one row."""
    _, _, p_fake, threshold, verdict, error = row
    if error:
        return "error", error
    shown_p, shown_threshold = f"{p_fake:.{DISPLAY_DECIMALS}f}", f"{threshold:.{DISPLAY_DECIMALS}f}"
    if is_unsure(p_fake, threshold):
        return "unsure", (
            f"P(fake) {shown_p} is within {UNSURE_MARGIN} of the threshold {shown_threshold} (leans {verdict})"
        )
    return verdict, f"P(fake) {shown_p} {'≥' if verdict == 'fake' else '<'} threshold {shown_threshold}"


def summarize(rows: list[list]) -> str:
    """The counts of the verdicts as shown, and how to read them (Markdown)."""
    shown = [reading(row)[0] for row in rows]
    counts = {label: shown.count(label) for label in ("fake", "real", "unsure", "error")}
    header = (
        f"**{len(rows) - counts['error']} verdicts: {counts['fake']} fake, {counts['real']} real, "
        f"{counts['unsure']} unsure; {counts['error']} errors.**"
    )
    return f"{header}\n\n{HOW_TO_READ}"


def data_uri(image: Image.Image, image_format: str, **options) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return f"data:image/{image_format.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(image: Image.Image) -> str:
    """A JPEG data URI of `image` fitted into `THUMBNAIL_PIXELS` square."""
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return data_uri(small, "JPEG", quality=85)


def heatmap_figure(image: Image.Image, row: list, crops: list[dict]) -> str:
    """The heat map of one detector's crops over `image` (a lossless PNG, fitted like the thumbnail), its colour
    scale with the detector's threshold marked, and the range of its crops' P(fake)."""
    name, detector, threshold = html.escape(row[0]), html.escape(row[1]), row[3]
    scores = [crop["score"] for crop in crops]
    low, high = f"{min(scores):.{DISPLAY_DECIMALS}f}", f"{max(scores):.{DISPLAY_DECIMALS}f}"
    spread = f"P(fake) {low}" if low == high else f"P(fake) {low} to {high}"
    picture = data_uri(heatmap_overlay(image, crops, THUMBNAIL_PIXELS), "PNG")
    return (
        f'<figure class="aigi-heatmap"><img src="{picture}" alt="heat map of {name} by {detector}">'
        f'<div class="aigi-legend" title="P(fake) from 0 to 1; the mark is the threshold">'
        f'<span style="left: {100 * threshold:.1f}%"></span></div>'
        '<div class="aigi-scale"><span>0 real</span><span>1 fake</span></div>'
        f"<figcaption>{detector}: {'1 crop' if len(crops) == 1 else f'{len(crops)} crops'}, {spread}</figcaption>"
        "</figure>"
    )


def results_html(detections: Detections) -> str:
    """Each image as a thumbnail beside its heat map and verdict per detector (an unreadable one with its error
    instead)."""
    cards = []
    for item, rows, crops in zip(detections.images, detections.rows_per_image, detections.crops_per_image):
        name = html.escape(item.name)
        if item.image is None:
            picture = '<div class="aigi-missing">no preview</div>'
            lines = [f'<li><b class="aigi-error">not scored</b>: {html.escape(item.error)}</li>']
        else:
            picture = f'<img class="aigi-thumbnail" src="{thumbnail(item.image)}" alt="{name}">'
            picture += "".join(
                heatmap_figure(item.image, row, row_crops)
                for row, row_crops in zip(rows, crops) if row_crops is not None
            )
            lines = []
            for row in rows:
                verdict, detail = reading(row)
                lines.append(
                    f'<li>{html.escape(row[1])}: <b class="aigi-{verdict}">{verdict}</b>, {html.escape(detail)}</li>'
                )
        text = f'<div><strong>{name}</strong><ul>{"".join(lines)}</ul></div>'
        cards.append(f'<div class="aigi-result">{picture}{text}</div>')
    return "".join(cards)


def display_rows(rows: list[list]) -> list[list]:
    """The table as shown: P(fake) and threshold rounded to `DISPLAY_DECIMALS`."""
    return [
        [name, detector, None if p_fake is None else round(p_fake, DISPLAY_DECIMALS),
         round(threshold, DISPLAY_DECIMALS), verdict, error]
        for name, detector, p_fake, threshold, verdict, error in rows
    ]


class Downloads:
    """The CSV downloads of one app: a private temporary folder keeping the latest `keep` files, removed when this
    object is garbage-collected or the process exits."""

    def __init__(self, keep: int = MAX_DOWNLOADS):
        self.folder = Path(tempfile.mkdtemp(prefix="aigi_demo_"))
        self.keep = keep
        self._files: deque[Path] = deque()
        self._lock = threading.Lock()
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def write_csv(self, rows: list[list]) -> str:
        with self._lock:
            with tempfile.NamedTemporaryFile(
                "w", newline="", suffix=".csv", prefix="aigi_detections_", dir=self.folder, delete=False,
            ) as file:
                writer = csv.writer(file)
                writer.writerow(TABLE_HEADERS)
                writer.writerows(rows)
            self._files.append(Path(file.name))
            while len(self._files) > self.keep:
                self._files.popleft().unlink(missing_ok=True)
        return file.name

    def remove(self) -> None:
        """Delete the folder now (it is gone anyway at exit)."""
        self._remove()


def build_demo(choices: dict[str, str]) -> gr.Blocks:
    """The app for these detectors (display name -> model path, as from `detector_choices`)."""
    if not choices:
        raise ValueError(
            "No detector to demo: no checkpoint is bundled with this aigi yet. Pass one or more with "
            f"`aigi demo --model DIR` or list them in ${MODELS_ENV}."
        )
    pool = DetectorPool(choices)
    downloads = Downloads()
    names = list(choices)
    preselected = DEFAULT_DETECTOR if DEFAULT_DETECTOR in choices else names[0]

    def run(uploads, samples, detectors, heatmap_crops):
        detections = detect(pool, uploads, samples, detectors, int(heatmap_crops))
        rows = detections.rows
        return (
            summarize(rows), results_html(detections), display_rows(rows), downloads.write_csv(rows),
            gr.Gallery(value=detections.signatures or None, visible=bool(detections.signatures)),
        )

    title = "aigi: real photo or AI-generated?"
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# Real photograph or AI-generated?\n"
            "Each detector gives P(fake), the probability that the image was generated, and its verdict at the "
            "detector's calibrated threshold. Images are scored at their own size, never rescaled. "
            f"Up to {MAX_IMAGES} images, each at most {MAX_FILE_SIZE_MB} MB and {MAX_IMAGE_PIXELS:,} pixels."
        )
        with gr.Row():
            with gr.Column():
                uploads = gr.File(label="Images", file_count="multiple", elem_id="uploads")
                samples = gr.Dropdown(
                    choices=list(sample_images()), multiselect=True, label="Or bundled samples", elem_id="samples",
                )
                detectors = gr.CheckboxGroup(
                    choices=names, value=[preselected], label="Detectors", elem_id="detectors",
                )
                heatmap_crops = gr.Slider(
                    minimum=1, maximum=MAX_HEATMAP_CROPS, value=HEATMAP_CROPS, step=1,
                    label="Heat map: up to this many crops per image (at the detector's crop size, never rescaled)",
                    elem_id="heatmap_crops",
                )
                button = gr.Button("Detect", variant="primary", elem_id="detect")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                results = gr.HTML(css_template=RESULTS_CSS, elem_id="results")
                table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Results", elem_id="table")
                csv_file = gr.File(label="Results as CSV (full precision)", elem_id="csv")
                signature_gallery = gr.Gallery(
                    label="GenSign signature (|residual| per channel)", format="png", visible=False,
                    elem_id="signatures",
                )
        button.click(
            run, inputs=[uploads, samples, detectors, heatmap_crops],
            outputs=[summary, results, table, csv_file, signature_gallery], api_name="detect",
        )
    return demo


def launch_demo(models: Sequence[str] = (), *, port: int | None = None):
    """Serve the demo on 127.0.0.1 only, with no share link, until interrupted."""
    demo = build_demo(detector_choices(models))
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, **LAUNCH_OPTIONS)
