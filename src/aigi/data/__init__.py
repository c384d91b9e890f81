"""Detection data: record sources, splits, torch datasets and image transforms."""

from aigi.data.sources import (
    DETECTION_FEATURES,
    LABEL_NAMES,
    DetectionDataset,
    DetectionRecord,
    dataset_card,
    load_detection_records,
    parse_label,
    records_to_dataset,
    split_records,
)
from aigi.data.transforms import (
    PROTOCOLS,
    CodecResizeAugment,
    center_crop_or_pad,
    get_protocol,
    jpeg_reencode,
    webp_reencode,
)

__all__ = [
    "DETECTION_FEATURES",
    "LABEL_NAMES",
    "PROTOCOLS",
    "CodecResizeAugment",
    "DetectionDataset",
    "DetectionRecord",
    "center_crop_or_pad",
    "dataset_card",
    "get_protocol",
    "jpeg_reencode",
    "load_detection_records",
    "parse_label",
    "records_to_dataset",
    "split_records",
    "webp_reencode",
]
