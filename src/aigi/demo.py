"""The detector demo: a Gradio app that scores uploaded or bundled images with one or several detectors.

`build_demo` makes the `gr.Blocks`; `aigi demo` and the Space `spaces/aigi-detector/app.py` launch it. Detectors are
the bundled checkpoints (the default one pre-selected) plus any model given to `detector_choices`, and the entries
of the `AIGI_DEMO_MODELS` environment variable (bundled names or directories, separated by `os.pathsep`).
"""

import csv
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Read by gradio at import time (its version check and telemetry): the demo never phones home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr
from PIL import Image

from .image_io import IMAGE_EXTENSIONS, ImageLoadError, load_image
from .inference.pipeline import fake_score
from .registry import DEFAULT_DETECTOR, SAMPLES_DIR, bundled_checkpoints, resolve_model

MODELS_ENV = "AIGI_DEMO_MODELS"
MAX_FILE_SIZE_MB = 20
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_IMAGES = 64
MAX_SIGNATURES = 8
TABLE_HEADERS = ["image", "detector", "p_fake", "threshold", "verdict", "error"]

LAUNCH_OPTIONS = {
    "max_file_size": f"{MAX_FILE_SIZE_MB}mb",
    "footer_links": ["gradio"],
    "theme": gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
}
"""Options of `Blocks.launch` shared by `aigi demo` and the Space (which sets the server address itself)."""


def detector_choices(models: Sequence[str] = ()) -> dict[str, str]:
    """Display name -> model path: bundled checkpoints (the default first), then `models`, then `AIGI_DEMO_MODELS`.

    A bundled checkpoint is shown by its name, any other model by the name or path given. The same model given twice
    appears once.
    """
    bundled = sorted(bundled_checkpoints(), key=lambda checkpoint: checkpoint["name"] != DEFAULT_DETECTOR)
    names = [checkpoint["name"] for checkpoint in bundled]
    names += list(models) + [entry for entry in os.environ.get(MODELS_ENV, "").split(os.pathsep) if entry]
    choices: dict[str, str] = {}
    for name in names:
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


def detect(
    pool: DetectorPool, uploads: Sequence[str] | None, samples: Sequence[str] | None, detectors: Sequence[str] | None,
) -> tuple[str, list[list], str, list[tuple[Image.Image, str]]]:
    """Score every image with every chosen detector.

    Returns the summary (Markdown), the table rows (`TABLE_HEADERS`), the path of the same table as CSV, and the
    GenSign signature images with their captions (empty unless a chosen detector has a signature stream).
    """
    if not detectors:
        raise gr.Error("Choose at least one detector.")
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
    inputs = [read_image(name, path) for name, path in sources]
    readable = [item for item in inputs if item.image is not None]

    rows_by_image: dict[int, list[list]] = {index: [] for index in range(len(inputs))}
    signatures: list[tuple[Image.Image, str]] = []
    for detector in detectors:
        pipe = pool.pipeline(detector)
        threshold = float(pipe.model.config.decision_threshold)
        outputs = iter(pipe([item.image for item in readable], batch_size=8)) if readable else iter(())
        for index, item in enumerate(inputs):
            output = next(outputs) if item.image is not None else {"error": item.error}
            if isinstance(output, dict):
                rows_by_image[index].append([item.name, detector, None, threshold, "error", output["error"]])
            else:  # the pipeline puts the verdict at the threshold first
                rows_by_image[index].append(
                    [item.name, detector, round(fake_score(output), 4), threshold, output[0]["label"], ""]
                )
        if has_signature_stream(pipe.model):
            from .modeling.gensign import gensign_signature

            for item in readable[:MAX_SIGNATURES]:
                signatures.append((gensign_signature(pipe.model, item.image), f"{item.name}: {detector}"))
    rows = [row for index in range(len(inputs)) for row in rows_by_image[index]]
    return summarize(rows), rows, write_csv(rows), signatures


def summarize(rows: list[list]) -> str:
    lines = []
    for name, detector, p_fake, threshold, verdict, error in rows:
        if error:
            lines.append(f"- **{name}**: error: {error}")
        else:
            relation = ">=" if verdict == "fake" else "<"
            lines.append(
                f"- **{name}**: **{verdict}** by {detector} "
                f"(P(fake) = {p_fake:.4f} {relation} threshold {threshold:.2f})"
            )
    scored = [row for row in rows if not row[5]]
    fakes = sum(row[4] == "fake" for row in scored)
    header = f"{len(scored)} verdicts: {fakes} fake, {len(scored) - fakes} real; {len(rows) - len(scored)} errors."
    return "\n".join([header, "", *lines])


def write_csv(rows: list[list]) -> str:
    with tempfile.NamedTemporaryFile(
        "w", newline="", suffix=".csv", prefix="aigi_detections_", delete=False,
    ) as file:
        writer = csv.writer(file)
        writer.writerow(TABLE_HEADERS)
        writer.writerows(rows)
    return file.name


def build_demo(choices: dict[str, str]) -> gr.Blocks:
    """The app for these detectors (display name -> model path, as from `detector_choices`)."""
    if not choices:
        raise ValueError(
            "No detector to demo: no checkpoint is bundled with this aigi yet. Pass one or more with "
            f"`aigi demo --model DIR` or list them in ${MODELS_ENV}."
        )
    pool = DetectorPool(choices)
    names = list(choices)
    preselected = DEFAULT_DETECTOR if DEFAULT_DETECTOR in choices else names[0]

    def run(uploads, samples, detectors):
        summary, rows, csv_path, signatures = detect(pool, uploads, samples, detectors)
        return (
            summary, rows, csv_path,
            gr.Gallery(value=signatures or None, visible=bool(signatures)),
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
                button = gr.Button("Detect", variant="primary", elem_id="detect")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Results", elem_id="table")
                csv_file = gr.File(label="Results as CSV", elem_id="csv")
                signature_gallery = gr.Gallery(
                    label="GenSign signature (|residual| per channel)", format="png", visible=False,
                    elem_id="signatures",
                )
        button.click(
            run, inputs=[uploads, samples, detectors], outputs=[summary, table, csv_file, signature_gallery],
            api_name="detect",
        )
    return demo


def launch_demo(models: Sequence[str] = (), *, port: int | None = None):
    """Serve the demo on 127.0.0.1 only, with no share link, until interrupted."""
    demo = build_demo(detector_choices(models))
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, **LAUNCH_OPTIONS)
