"""The unit of detection data: one labelled image (`DetectionRecord`), and a torch dataset of records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from aigi.image_io import ImageLoadError, load_image

REAL_LABEL = 0
FAKE_LABEL = 1
LABEL_NAMES = ("real", "fake")
REAL_GENERATOR = "real"
UNKNOWN_GENERATOR = "fake"

# "0_real"/"1_fake" are the names imagefolder gives a ForenSynths-style tree; GenImage says ai/nature.
_LABELS_BY_NAME = {"real": REAL_LABEL, "fake": FAKE_LABEL, "0": REAL_LABEL, "1": FAKE_LABEL,
                   "0_real": REAL_LABEL, "1_fake": FAKE_LABEL, "nature": REAL_LABEL, "ai": FAKE_LABEL}


@dataclass(frozen=True, kw_only=True)
class DetectionRecord:
    """One labelled image: a path, raw encoded bytes, or a decoded image.

    `split` is the split the source assigns ("train", "val", "test"), None when it has none.
    """

    image: str | bytes | Image.Image
    label: int
    generator: str
    source: str = ""
    id: str
    split: str | None = None


def parse_label(value: object) -> int:
    """0 (real) or 1 (fake) from a label such as "real", "fake", 0, 1, "0_real", "1_fake", "nature" or "ai"."""
    try:
        return _LABELS_BY_NAME[str(value).strip().lower()]
    except KeyError:
        raise ValueError(
            f"unrecognised label {value!r}; expected one of {sorted(_LABELS_BY_NAME)}"
        ) from None


def generator_for(label: int, generator: str | None) -> str:
    """The generator column's value: "real" for real images, else `generator` or "fake" when unknown."""
    if label == REAL_LABEL:
        return REAL_GENERATOR
    return generator or UNKNOWN_GENERATOR


def load_record_image(record: DetectionRecord) -> Image.Image:
    """The record's image as RGB; a failure raises ImageLoadError naming the record id."""
    try:
        return load_image(record.image)
    except ImageLoadError as error:
        raise ImageLoadError(record.id, error.reason, error.detail) from error


ImageProcessor = Callable[..., Any]
"""A transformers image processor: `processor(images=img, return_tensors="pt")["pixel_values"]`."""


def one_crop_pixel_values(image_processor: ImageProcessor, images, **options) -> torch.Tensor:
    """`pixel_values` of one crop per image, whatever `num_crops` the processor's config declares for scoring:
    training and feature extraction see one crop per record."""
    if hasattr(image_processor, "num_crops"):
        options["num_crops"] = 1
    return image_processor(images=images, return_tensors="pt", **options)["pixel_values"]


class DetectionDataset(torch.utils.data.Dataset):
    """Torch dataset of records: decode, `transform`, then `image_processor`.

    Items are `{"pixel_values": Tensor[C, H, W], "labels": int}`.
    """

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        image_processor: ImageProcessor,
        transform: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.records = list(records)
        self.image_processor = image_processor
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        record = self.records[index]
        image = load_record_image(record)
        if self.transform is not None:
            image = self.transform(image)
        pixel_values = one_crop_pixel_values(self.image_processor, image)[0]
        return {"pixel_values": pixel_values, "labels": record.label}
