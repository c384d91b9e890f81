import numpy as np
import pytest
import torch
from aigi.modeling.cnnspot import (
    CNNSpotConfig,
    CNNSpotForImageClassification,
    CNNSpotImageProcessor,
    CNNSpotModel,
)
from detector_tester import DetectorModelTesterMixin, random_image
from PIL import Image

from aigi.data.transforms import AUGMENT_PRESETS, TrainingAugment, gaussian_blur

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class TestCNNSpot(DetectorModelTesterMixin):
    config_class = CNNSpotConfig
    model_class = CNNSpotForImageClassification
    base_model_class = CNNSpotModel
    processor_class = CNNSpotImageProcessor

    def tiny_config(self):
        return CNNSpotConfig(backbone="test_resnet", image_size=self.image_size)


def test_paper_configuration_is_resnet50():
    model = CNNSpotForImageClassification(CNNSpotConfig()).eval()
    assert model.cnnspot.feature_dim == 2048 and model.config.image_size == 224
    # timm resnet50 without its ImageNet classifier (23,508,032) and the 2-way head (4,098).
    assert sum(parameter.numel() for parameter in model.parameters()) == 23_512_130
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).logits.shape == (1, 2)


def test_processor_defaults_are_imagenet_at_224():
    processor = CNNSpotImageProcessor()
    assert processor.crop_size.height == 224 and processor.do_resize is False
    assert list(processor.image_mean) == [0.485, 0.456, 0.406] and list(processor.image_std) == [0.229, 0.224, 0.225]


def test_cnnspot_preset_is_blur_and_jpeg_at_one_half():
    preset = AUGMENT_PRESETS["cnnspot"]
    assert (preset.p_blur, preset.blur_sigma_range, preset.blur_kernel_size) == (0.5, (0.0, 3.0), None)
    assert (preset.p_jpeg, preset.jpeg_quality_range) == (0.5, (30, 100))
    others = set(TrainingAugment.OPERATIONS) - {"blur", "jpeg"}
    assert all(getattr(preset, f"p_{operation}") == 0.0 for operation in others)


def test_cnnspot_preset_sometimes_degrades_and_sometimes_keeps_the_image():
    image = random_image(48, 48, seed=1)
    outcomes = [np.array_equal(np.asarray(AUGMENT_PRESETS["cnnspot"](image, seed)), np.asarray(image))
                for seed in range(16)]
    assert any(outcomes) and not all(outcomes)  # untouched with probability 0.25


def test_blur_kernel_reaches_four_sigma_and_sigma_zero_is_the_identity():
    step = np.zeros((41, 41, 3), dtype=np.uint8)
    step[:, 21:] = 255
    image = Image.fromarray(step)
    assert np.array_equal(np.asarray(gaussian_blur(image, 0.0)), step)

    def blurred(kernel_size):
        augment = TrainingAugment(p_blur=1.0, blur_sigma_range=(3.0, 3.0), blur_kernel_size=kernel_size)
        return np.asarray(augment(image, 0))[20, :, 0]

    # Five pixels before the step: reached by the 25-tap kernel of sigma 3 (12 = int(4 * 3 + 0.5) each way), not by 5.
    assert blurred(None)[16] > 0 and blurred(5)[16] == 0
