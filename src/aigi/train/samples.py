"""Training samples shared by the tasks: per-sample seeds, and random crops of the real photos of a data source."""

import random
from collections.abc import Sequence

import numpy as np
import torch

from ..data.layouts import load_detection_records
from ..data.records import REAL_LABEL, DetectionRecord, load_record_image
from ..data.transforms import random_crop_or_pad


def sample_seed(*parts: int) -> int:
    """A deterministic seed for one sample at one epoch, so augmentation is identical after a resume."""
    return hash(parts) & 0x7FFFFFFF


def real_photos(train_data: str) -> list[DetectionRecord]:
    """The real photos of a data source (its fakes dropped)."""
    return [record for record in load_detection_records(train_data) if record.label == REAL_LABEL]


class RealPhotoCrops(torch.utils.data.Dataset):
    """Real photos only, as `[3, S, S]` float tensors in [0, 1] (random crop, reflect-padded if smaller)."""

    def __init__(self, records: Sequence[DetectionRecord], crop_size: int, seed: int):
        self.records, self.crop_size, self.seed, self.epoch = list(records), crop_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_record_image(self.records[index])
        image = random_crop_or_pad(image, self.crop_size, random.Random(sample_seed(self.seed, self.epoch, index)))
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
