import pytest
import torch
from aigi.modeling.npr import (
    NPRConfig,
    NPRForImageClassification,
    NPRImageProcessor,
    NPRModel,
    neighboring_pixel_residual,
)
from detector_tester import DetectorModelTesterMixin

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny_npr_config(**overrides) -> NPRConfig:
    return NPRConfig(**{"layers": [1, 1], "width": 4, "image_size": 32, **overrides})


class TestNPR(DetectorModelTesterMixin):
    config_class = NPRConfig
    model_class = NPRForImageClassification
    base_model_class = NPRModel
    processor_class = NPRImageProcessor

    def tiny_config(self):
        return tiny_npr_config(image_size=self.image_size)


def test_paper_configuration_parameter_count():
    model = NPRForImageClassification(NPRConfig())
    assert model.config.feature_dim == 512
    # The reference network (stem, ResNet-50 layer1 and layer2, Linear(512, 1)) has 1,437,761; a second logit adds 513.
    assert sum(parameter.numel() for parameter in model.parameters()) == 1_438_274


def test_residual_is_zero_on_two_by_two_constant_blocks():
    blocks = torch.randn(2, 3, 8, 6)
    constant_blocks = blocks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.count_nonzero(neighboring_pixel_residual(constant_blocks)) == 0
    shifted = constant_blocks[..., 1:, 1:]  # blocks straddle the 2x2 grid now (odd sides are trimmed first)
    residual = neighboring_pixel_residual(shifted)
    assert residual.shape == (2, 3, 14, 10)
    assert torch.count_nonzero(residual) > 0


def test_residual_is_each_pixel_minus_its_blocks_top_left():
    pixels = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.tensor([[0.0, 1.0], [4.0, 5.0]]).repeat(2, 2).reshape(1, 1, 4, 4)
    torch.testing.assert_close(neighboring_pixel_residual(pixels), expected)


def test_odd_sized_input_is_trimmed_to_even():
    model = NPRForImageClassification(tiny_npr_config()).eval()
    pixel_values = torch.randn(1, 3, 33, 35)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values).logits, model(pixel_values[..., :32, :34]).logits)


def test_block_constant_images_get_the_same_score():
    # The network sees only the residual, which is zero for every image built of constant 2x2 blocks.
    model = NPRForImageClassification(tiny_npr_config()).eval()
    images = torch.randn(2, 3, 16, 16).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    with torch.no_grad():
        logits = model(images).logits
    torch.testing.assert_close(logits[0], logits[1])


def test_processor_defaults_are_imagenet_at_224():
    processor = NPRImageProcessor()
    assert processor.crop_size.height == 224 and processor.do_resize is False
    assert list(processor.image_mean) == [0.485, 0.456, 0.406] and list(processor.image_std) == [0.229, 0.224, 0.225]


@pytest.mark.parametrize("overrides", [{"layers": []}, {"layers": [3, 0]}, {"width": 0}, {"image_size": 8}])
def test_invalid_architectures_are_refused(overrides):
    with pytest.raises(Exception, match="layers|width|image_size"):
        NPRConfig(**overrides)
