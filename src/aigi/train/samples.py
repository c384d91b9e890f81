"""Training samples shared by the tasks: per-sample seeds, augmented detection data, and random crops of the real
photos of a data source."""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from ..dair import DAIR, SelfAugmentation
from ..data.layouts import load_detection_records
from ..data.records import REAL_LABEL, DetectionDataset, DetectionRecord, load_record_image, one_crop_pixel_values
from ..data.transforms import AUGMENT_PRESETS, TrainingAugment, random_crop_or_pad
from .args import TrainingArguments

LabelledTransform = Callable[[Image.Image, int, random.Random], tuple[Image.Image, int]]
"""`(image, label, rng) -> (image, label)`: a transform that may change the label (`aigi.dair.SelfAugmentation`)."""
LABELLED_TRANSFORM_STREAM = 1  # the `sample_seed` part that separates its random stream from the augmentation's


def sample_seed(*parts: int) -> int:
    """A deterministic seed for one sample at one epoch, so augmentation is identical after a resume."""
    return hash(parts) & 0x7FFFFFFF


def training_records(args: TrainingArguments) -> list[DetectionRecord]:
    """The records of `--train_data`; with `--real_only`, its real photos alone (the zero-fake variant)."""
    if args.real_only:
        return real_photos(args.train_data)
    return load_detection_records(args.train_data)


def self_augmentation(args: TrainingArguments) -> SelfAugmentation | None:
    """GenSign's DAIR pseudo-fakes for any family; None without `--self_augmentation_dair` or with `--p_aug 0`.

    It reconstructs only the `pseudo_fake_window` that the training crop of `training_augment(args)` and
    `--patch_size` (`AugmentedDetectionDataset`) can draw on, not the whole decoded image.
    """
    if not args.self_augmentation_dair or args.p_aug == 0:
        return None
    return SelfAugmentation(
        DAIR.from_pretrained(args.self_augmentation_dair), p_aug=args.p_aug,
        window=pseudo_fake_window(training_augment(args), args.patch_size),
    )


def pseudo_fake_window(augment: TrainingAugment, crop_size: int) -> int | None:
    """Side of a square region of a decoded image from which `random_crop_or_pad(augment(region), crop_size)`
    never needs to pad, whatever the augmentation draws; None when only the whole image will do.

    The augmentation's operations keep the size, except the symmetric codec's resize (a factor of at least
    `scale_range[0]`: the crop then spans up to `crop_size / scale` source pixels) and the random resized crop
    (a share of the whole image, so a region would change its scale). A crop of a uniformly placed region is a
    little less often at the image's borders than a crop of the whole image.
    """
    if augment.p_random_resized_crop > 0:
        return None
    codec = augment.symmetric_codec
    may_shrink = augment.p_symmetric_codec > 0 and codec.p_resize > 0
    smallest_scale = min(codec.scale_range[0], 1.0) if may_shrink else 1.0
    return math.ceil(crop_size / smallest_scale)


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


def training_augment(args: TrainingArguments) -> TrainingAugment:
    """`args.augment_preset` with the `aug_*` probabilities that are set; a random resized crop gives `patch_size`."""
    probabilities = {
        f"p_{operation}": getattr(args, f"aug_{operation}")
        for operation in TrainingAugment.OPERATIONS
        if getattr(args, f"aug_{operation}") is not None
    }
    return replace(AUGMENT_PRESETS[args.augment_preset], resized_crop_size=args.patch_size, **probabilities)


class AugmentedDetectionDataset(DetectionDataset):
    """The same augmentation on both classes, then a random training crop; reproducible per (seed, epoch, index).

    `labelled_transform` (e.g. self-augmentation) runs first, on the decoded image and its label, with a random
    stream of its own: the augmentation draws the same numbers with or without it. It may return a smaller image
    (`SelfAugmentation`'s window) as long as the crop fits in it after the augmentation, see `pseudo_fake_window`.
    """

    def __init__(self, records, image_processor, augment: TrainingAugment, crop_size: int, seed: int,
                 labelled_transform: LabelledTransform | None = None):
        super().__init__(records, image_processor)
        self.augment, self.crop_size, self.seed, self.epoch = augment, crop_size, seed, 0
        self.labelled_transform = labelled_transform

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        record = self.records[index]
        image, label = load_record_image(record), record.label
        if self.labelled_transform is not None:
            labelled_rng = random.Random(sample_seed(self.seed, self.epoch, index, LABELLED_TRANSFORM_STREAM))
            image, label = self.labelled_transform(image, label, labelled_rng)
        rng = random.Random(sample_seed(self.seed, self.epoch, index))
        image = random_crop_or_pad(self.augment(image, rng), self.crop_size, rng)
        crop = {"height": self.crop_size, "width": self.crop_size}
        pixel_values = one_crop_pixel_values(self.image_processor, image, crop_size=crop)[0]
        return {"pixel_values": pixel_values, "labels": label}
