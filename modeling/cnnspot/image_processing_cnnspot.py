"""CNNSpot image processor: centre crop to 224 (the paper's test crop), never resample, ImageNet normalisation.

A resize would add (or erase) resampling traces of its own, so the default pipeline is: reflect-pad any side shorter
than the crop (centred), centre crop to `crop_size`, scale to [0, 1], normalise with the ImageNet mean and std.
"""

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.processing_utils import ImagesKwargs


class CNNSpotImageProcessorKwargs(ImagesKwargs, total=False):
    small_image_padding: str | None


class CNNSpotImageProcessor(PilBackend):
    valid_kwargs = CNNSpotImageProcessorKwargs
    model_input_names = ["pixel_values"]

    do_convert_rgb = True
    do_resize = False
    do_center_crop = True
    crop_size = {"height": 224, "width": 224}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [0.485, 0.456, 0.406]
    image_std = [0.229, 0.224, 0.225]
    small_image_padding = "reflect"

    def pad_to_at_least(self, image: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
        """Centre-pad a channels-first image so that it is at least `height` x `width`."""
        _, image_height, image_width = image.shape
        missing_height, missing_width = max(0, height - image_height), max(0, width - image_width)
        if missing_height == missing_width == 0:
            return image
        pad_width = (
            (0, 0),
            (missing_height // 2, missing_height - missing_height // 2),
            (missing_width // 2, missing_width - missing_width // 2),
        )
        return np.pad(image, pad_width, mode=mode)

    def _preprocess(self, images, do_center_crop, crop_size, small_image_padding=None, **kwargs):
        if do_center_crop and small_image_padding:
            images = [
                self.pad_to_at_least(image, crop_size.height, crop_size.width, small_image_padding)
                for image in images
            ]
        return super()._preprocess(images, do_center_crop=do_center_crop, crop_size=crop_size, **kwargs)


CNNSpotImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["CNNSpotImageProcessor"]
