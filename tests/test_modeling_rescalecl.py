import pytest
import torch
from huggingface_hub.errors import StrictDataclassError

from aigi.modeling.rescalecl import (
    RescaleCLConfig,
    RescaleCLForImageClassification,
    RescaleCLImageProcessor,
    RescaleCLModel,
)
from detector_tester import DetectorModelTesterMixin


class TestRescaleCL(DetectorModelTesterMixin):
    config_class = RescaleCLConfig
    model_class = RescaleCLForImageClassification
    base_model_class = RescaleCLModel
    processor_class = RescaleCLImageProcessor

    def tiny_config(self):
        return RescaleCLConfig(backbone="test_resnet", image_size=self.image_size)


def test_paper_configuration_builds_xception():
    model = RescaleCLForImageClassification(RescaleCLConfig()).eval()
    assert model.rescalecl.feature_dim == 2048
    parameters = sum(parameter.numel() for parameter in model.parameters())
    assert 20_000_000 < parameters < 21_500_000  # timm legacy_xception (20.81 M) + 2-way head
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 128, 128)).logits
    assert logits.shape == (1, 2)


def test_encoder_checkpoint_initialises_classifier(tmp_path):
    encoder = RescaleCLModel(RescaleCLConfig(backbone="test_resnet", image_size=32))
    encoder.save_pretrained(tmp_path)
    classifier = RescaleCLForImageClassification.from_pretrained(tmp_path)
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(classifier.rescalecl.state_dict()[name], value)


def test_default_processor_matches_paper_normalisation():
    processor = RescaleCLImageProcessor()
    assert processor.crop_size.height == 256 and processor.do_resize is False
    assert list(processor.image_mean) == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("threshold", [-0.1, 1.01])
def test_threshold_outside_unit_interval_is_refused(threshold):
    with pytest.raises(StrictDataclassError, match="decision_threshold"):
        RescaleCLConfig(decision_threshold=threshold)
