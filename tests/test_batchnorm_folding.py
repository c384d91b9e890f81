"""Batch norms folded into convolutions for scoring: same function, original model untouched."""

import timm
import torch
from torch import nn
from transformers import pipeline

from aigi.inference.batchnorm_folding import fold_batchnorm
from aigi.inference.pipeline import fake_probabilities, fake_score
from aigi.modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRImageProcessor
from detector_tester import random_image
from helpers import with_random_statistics


def batch_norms(model: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def test_a_folded_efficientnet_computes_the_same_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = with_random_statistics(timm.create_model("efficientnet_lite0", pretrained=False, num_classes=5))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    folded = fold_batchnorm(model)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = model(pixels), folded(pixels)
    assert batch_norms(folded) == 0 and batch_norms(model) == batch_norms(timm.create_model("efficientnet_lite0"))
    assert (actual - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())
    # Layers with nothing to fold are shared, not copied; the activations of timm's BatchNormAct2d stay.
    assert folded.classifier is model.classifier
    assert isinstance(folded.bn1, nn.Sequential) and isinstance(folded.bn1[-1], nn.ReLU6)


def test_a_plain_conv_then_batch_norm_folds_into_a_biased_convolution():
    torch.manual_seed(0)
    model = with_random_statistics(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()), 1)
    folded = fold_batchnorm(model)
    assert isinstance(folded[0], nn.Conv2d) and folded[0].bias is not None and isinstance(folded[1], nn.Identity)
    pixels = torch.randn(3, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(folded(pixels), model(pixels), atol=1e-5)


class NormalisesItsInput(nn.Module):
    """Registers a convolution then a batch norm, but normalises the input before convolving it."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)

    def forward(self, pixels):
        return self.conv(self.norm(pixels))


def test_pairs_are_folded_only_where_registration_order_is_data_flow():
    torch.manual_seed(0)
    model = with_random_statistics(NormalisesItsInput(), seed=2)
    assert fold_batchnorm(model) is model
    wrapped = with_random_statistics(nn.Sequential(NormalisesItsInput(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)), 3)
    folded = fold_batchnorm(wrapped)
    assert folded[0] is wrapped[0] and isinstance(folded[2], nn.Identity)
    pixels = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(folded(pixels), wrapped(pixels), atol=1e-5)


def test_training_models_and_models_without_pairs_are_returned_as_they_are():
    training = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    assert fold_batchnorm(training) is training
    nothing = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    assert fold_batchnorm(nothing) is nothing


def test_the_pipeline_scores_with_the_folded_copy_and_keeps_its_model(tmp_path):
    import aigi  # noqa: F401  (registration)

    config = FiSeRConfig(backbone="efficientnet_lite0", feature_layer=None, feature_pooling="stages",
                         input_views=["image", "highpass"], image_size=64, head="logistic")
    torch.manual_seed(0)
    model = FiSeRForImageClassification(config)
    with_random_statistics(model.fiser.encoder, seed=3)
    nn.init.normal_(model.head.linear.weight, std=3.0)
    model.save_pretrained(tmp_path)
    FiSeRImageProcessor(crop_size={"height": 64, "width": 64}).save_pretrained(tmp_path)
    detector = pipeline("ai-image-detection", model=str(tmp_path))
    assert batch_norms(detector.scoring_model) == 0 and batch_norms(detector.model) > 0
    assert detector.scoring_model.config is detector.model.config
    image = random_image(80, 72, seed=4)
    pixel_values = FiSeRImageProcessor(crop_size={"height": 64, "width": 64})(images=image, return_tensors="pt")
    with torch.no_grad():
        expected = float(fake_probabilities(model.eval(), pixel_values["pixel_values"])[0])
    assert 0.01 < expected < 0.99
    assert abs(fake_score(detector(image)) - expected) < 1e-5
