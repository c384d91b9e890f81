"""SynerDetect image processor: centre crop to 256, never resample, normalise to [-1, 1].

Resizing would blur (or add) the traces the constrained convolution and the DDIM inversion read, so a side shorter
than the crop is reflect-padded (centred) instead. [-1, 1] is the VAE's input range; the CLIP tower converts its own
centre crop to CLIP's normalisation.
"""

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.processing_utils import ImagesKwargs


class SynerDetectImageProcessorKwargs(ImagesKwargs, total=False):
    small_image_padding: str | None


class SynerDetectImageProcessor(PilBackend):
    valid_kwargs = SynerDetectImageProcessorKwargs
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

    def pad_to_at_least(self, image: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
        """Centre-pad a channels-first image so that it is at least `height` x `width`."""
        _, image_height, image_width = image.shape
        missing_height, missing_width = max(0, height - image_height), max(0, width - image_width)
        if missing_height == missing_width == 0:
            return image
        top, left = missing_height // 2, missing_width // 2
        pad_width = ((0, 0), (top, missing_height - top), (left, missing_width - left))
        return np.pad(image, pad_width, mode=mode)

    def _preprocess(self, images, do_center_crop, crop_size, small_image_padding=None, **kwargs):
        if do_center_crop and small_image_padding:
            images = [
                self.pad_to_at_least(image, crop_size.height, crop_size.width, small_image_padding)
                for image in images
            ]
        return super()._preprocess(images, do_center_crop=do_center_crop, crop_size=crop_size, **kwargs)


SynerDetectImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["SynerDetectImageProcessor"]
