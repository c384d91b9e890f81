"""Where in an image the evidence is: per-crop P(fake) (`pipeline(..., return_crops=True)`) as a heat map.

The crops are native-resolution windows of the image (never resized); each pixel's value is the mean P(fake) of the
crops that cover it (NaN where none does). Only the drawing is scaled, to `max_side` pixels. `draw_heatmap` makes a
matplotlib figure with a colour bar; `heatmap_overlay` and `legend_colors` give the same colours as a PIL image and
CSS colours (the demo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HEATMAP_COLORMAP = "RdYlGn_r"  # green: real, red: fake
HEATMAP_ALPHA = 0.45
"""Opacity of the P(fake) colours over the image."""


def crop_heatmap(width: int, height: int, crops: list[dict[str, Any]]) -> np.ndarray:
    """`[height, width]` float array: each pixel's mean P(fake) over the crops covering it, NaN where none does."""
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for crop in crops:
        left, top, right, bottom = crop["box"]
        total[top:bottom, left:right] += crop["score"]
        count[top:bottom, left:right] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def output_crops(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-crop evidence of one pipeline output (`return_crops=True`)."""
    crops = next((entry["crops"] for entry in output if "crops" in entry), None)
    if crops is None:
        raise ValueError("the output has no crops: score with return_crops=True")
    return crops


def heatmap_colors(values: np.ndarray) -> np.ndarray:
    """RGBA floats in [0, 1] of P(fake) `values` on `HEATMAP_COLORMAP`, transparent where a value is NaN."""
    from matplotlib import colormaps

    return colormaps[HEATMAP_COLORMAP](values)


def legend_colors(stops: int = 11) -> list[str]:
    """CSS colours (#rrggbb) of `HEATMAP_COLORMAP` at `stops` evenly spaced P(fake) from 0 to 1."""
    colors = np.round(heatmap_colors(np.linspace(0.0, 1.0, stops))[:, :3] * 255).astype(int)
    return [f"#{red:02x}{green:02x}{blue:02x}" for red, green, blue in colors]


def heatmap_overlay(image: Image.Image, crops: list[dict[str, Any]], max_side: int) -> Image.Image:
    """RGB `image` fitted into a `max_side` square (as `Image.thumbnail`: never enlarged) with its crops' heat map
    blended over it at `HEATMAP_ALPHA`; pixels no crop covers are left as they are."""
    shown = image.convert("RGB")
    shown.thumbnail((max_side, max_side))
    scale_x, scale_y = shown.width / image.width, shown.height / image.height
    scaled = [
        {"box": [round(side * scale) for side, scale in zip(crop["box"], (scale_x, scale_y) * 2)],
         "score": crop["score"]}
        for crop in crops
    ]
    colors = heatmap_colors(crop_heatmap(*shown.size, scaled))
    alpha = HEATMAP_ALPHA * colors[..., 3:]
    blended = np.asarray(shown) / 255.0 * (1.0 - alpha) + colors[..., :3] * alpha
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8))


def draw_heatmap(image: Image.Image, output: list[dict[str, Any]], path: str | Path, *, threshold: float,
                 title: str = "", max_side: int = 768) -> Path:
    """A PNG of `image` with its crops' P(fake) overlaid, the crop outlines, and a legend (colour bar)."""
    from matplotlib.figure import Figure

    crops = output_crops(output)
    heatmap = crop_heatmap(*image.size, crops)
    scale = min(1.0, max_side / max(image.size))
    shown = image.convert("RGB")
    if scale < 1.0:  # the drawing only; the scores came from the native pixels
        shown = shown.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    figure = Figure(figsize=(6.4, 6.4 * image.height / image.width + 0.9), layout="constrained")
    axis = figure.subplots()
    extent = (0, image.width, image.height, 0)
    axis.imshow(np.asarray(shown), extent=extent)
    overlay = axis.imshow(np.ma.masked_invalid(heatmap), extent=extent, cmap=HEATMAP_COLORMAP, vmin=0.0, vmax=1.0,
                          alpha=HEATMAP_ALPHA, interpolation="nearest")
    for crop in crops:
        left, top, right, bottom = crop["box"]
        axis.add_patch(_rectangle((left, top), right - left, bottom - top))
    axis.set_axis_off()
    fake_score = next(entry["score"] for entry in output if entry["label"] == "fake")
    verdict = output[0]["label"]
    axis.set_title(f"{title}\n{verdict}: P(fake) {fake_score:.3f} (threshold {threshold:.3f}), {len(crops)} crops"
                   if title else f"{verdict}: P(fake) {fake_score:.3f}", fontsize=9)
    bar = figure.colorbar(overlay, ax=axis, orientation="horizontal", fraction=0.05, pad=0.02)
    bar.set_label("P(fake) of the crops covering each pixel", fontsize=8)
    bar.ax.axvline(threshold, color="black", linewidth=1.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _rectangle(corner, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, fill=False, edgecolor="white", linewidth=0.6, alpha=0.7)
