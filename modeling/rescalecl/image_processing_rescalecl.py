"""RescaleCL image processor: centre crop, never resample.

Resizing would add (or erase) exactly the interpolation traces the detector reads, so the default pipeline is:
reflect-pad any side shorter than the crop (centred), centre crop to `crop_size`, scale to [0, 1], normalise.

`num_crops` > 1 takes several such native-resolution crops spread over the image instead of one.
"""

import math

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.processing_utils import ImagesKwargs

CROP_AGGREGATIONS = ("mean", "max", "median")


class RescaleCLImageProcessorKwargs(ImagesKwargs, total=False):
    small_image_padding: str | None
    num_crops: int
    crop_aggregation: str


class RescaleCLImageProcessor(PilBackend):
    r"""
    num_crops (`int`, defaults to 1):
        Up to this many native-resolution crops of `crop_size`, spread over the image in a grid (`crop_boxes`); 1 is
        the centre crop. With more than one, the output also holds `crop_counts` (crops per image, in the order of
        `pixel_values`) and `crop_boxes` (left, top, right, bottom in the padded image), and the logits of an image
        are those of its crops aggregated by `aggregate_crop_logits`.
    crop_aggregation (`str`, defaults to `"mean"`):
        How crop logits make the image's: "mean" (of the logits), "max" or "median" (the logits of the crop with the
        highest or the median fake log-odds).
    """

    valid_kwargs = RescaleCLImageProcessorKwargs
    model_input_names = ["pixel_values"]

    do_convert_rgb = True
    do_resize = False
    do_center_crop = True
    crop_size = {"height": 256, "width": 256}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    small_image_padding = "reflect"
    num_crops = 1
    crop_aggregation = "mean"

    def pad_to_at_least(self, image: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
        """Centre-pad a channels-first image so that it is at least `height` x `width`."""
        _, image_height, image_width = image.shape
        missing_height, missing_width = max(0, height - image_height), max(0, width - image_width)
        if missing_height == missing_width == 0:
            return image
        top, left = missing_height // 2, missing_width // 2
        pad_width = ((0, 0), (top, missing_height - top), (left, missing_width - left))
        return np.pad(image, pad_width, mode=mode)

    @staticmethod
    def crop_boxes(height: int, width: int, crop_height: int, crop_width: int, num_crops: int) -> list[tuple]:
        """(left, top, right, bottom) of up to `num_crops` crops of an image at least as large as the crop: the
        grid of the most crops (at most as many per side as it takes to cover that side), its shape closest to
        the image's, evenly spaced from edge to edge (one per side: centred, as a centre crop)."""
        rows_to_cover, columns_to_cover = math.ceil(height / crop_height), math.ceil(width / crop_width)
        image_shape = math.log(rows_to_cover / columns_to_cover)

        def preference(rows: int) -> tuple:
            columns = min(columns_to_cover, num_crops // rows)
            return rows * columns, -abs(math.log(rows / columns) - image_shape), -rows

        rows = max(range(1, min(rows_to_cover, num_crops) + 1), key=preference)
        columns = min(columns_to_cover, num_crops // rows)

        def offsets(count: int, room: int) -> list[int]:
            room = max(0, room)  # a side shorter than the crop (no padding): the crop pads it
            return [room // 2] if count == 1 else [round(index * room / (count - 1)) for index in range(count)]

        return [
            (left, top, left + crop_width, top + crop_height)
            for top in offsets(rows, height - crop_height)
            for left in offsets(columns, width - crop_width)
        ]

    @staticmethod
    def aggregate_crop_logits(logits, crop_counts, fake_index: int, crop_aggregation: str = "mean"):
        """Logits `[images, labels]` from the crop logits `[sum(crop_counts), labels]` of consecutive images."""
        import torch

        if crop_aggregation not in CROP_AGGREGATIONS:
            raise ValueError(f"crop_aggregation must be one of {CROP_AGGREGATIONS}, got {crop_aggregation!r}")
        aggregated = []
        for crops in torch.split(logits, [int(count) for count in crop_counts]):
            if crop_aggregation == "mean":
                aggregated.append(crops.mean(0))
                continue
            others = torch.cat([crops[:, :fake_index], crops[:, fake_index + 1:]], dim=1)
            fake_log_odds = crops[:, fake_index] - others.logsumexp(1)
            order = fake_log_odds.argsort(descending=True)
            aggregated.append(crops[order[0] if crop_aggregation == "max" else order[(len(order) - 1) // 2]])
        return torch.stack(aggregated)

    def _preprocess(self, images, do_center_crop, crop_size, small_image_padding=None, num_crops=None,
                    crop_aggregation=None, **kwargs):
        num_crops = self.num_crops if num_crops is None else int(num_crops)
        if num_crops < 1:
            raise ValueError(f"num_crops must be at least 1, got {num_crops}")
        if (crop_aggregation or self.crop_aggregation) not in CROP_AGGREGATIONS:
            raise ValueError(f"crop_aggregation must be one of {CROP_AGGREGATIONS}, got {crop_aggregation!r}")
        if do_center_crop and small_image_padding:
            images = [
                self.pad_to_at_least(image, crop_size.height, crop_size.width, small_image_padding)
                for image in images
            ]
        if not do_center_crop or num_crops == 1:
            return super()._preprocess(images, do_center_crop=do_center_crop, crop_size=crop_size, **kwargs)
        crops, crop_counts, crop_boxes = [], [], []
        for image in images:
            boxes = self.crop_boxes(*image.shape[1:], crop_size.height, crop_size.width, num_crops)
            crops += [
                self.center_crop(image[:, top:bottom, left:right], crop_size) for left, top, right, bottom in boxes
            ]
            crop_counts.append(len(boxes))
            crop_boxes.append(boxes)
        features = super()._preprocess(crops, do_center_crop=False, crop_size=crop_size, **kwargs)
        features["crop_counts"], features["crop_boxes"] = crop_counts, crop_boxes
        return features


RescaleCLImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["RescaleCLImageProcessor"]
