"""FiSeR's stage pooling (a frozen-encoder probe of every stage's statistics) and the standardised logistic head."""

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from aigi.modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRModel
from aigi.modeling.fiser.modeling_fiser import highpass_residual
from aigi.train.heads import head_state


def stage_config(**overrides) -> FiSeRConfig:
    return FiSeRConfig(**{"backbone": "test_resnet", "feature_layer": None, "feature_pooling": "stages",
                          "image_size": 32, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, **overrides})


def test_stage_pooling_is_the_mean_and_std_of_every_stage():
    torch.manual_seed(0)
    model = FiSeRModel(stage_config()).eval()
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        stages = model.encoder.forward_intermediates(pixels, intermediates_only=True)
        pooled = model(pixels).pooler_output
    expected = torch.cat([torch.cat([stage.mean((2, 3)), stage.std((2, 3), correction=0)], 1) for stage in stages], 1)
    assert len(stages) >= 2 and pooled.shape == (3, model.feature_dim)
    assert torch.allclose(pooled, expected)
    features = model.image_features(pixels)
    assert torch.allclose(features.norm(dim=1), torch.ones(3))


def test_a_stage_pooled_detector_round_trips(tmp_path):
    detector = FiSeRForImageClassification(stage_config(head="logistic")).eval()
    detector.save_pretrained(tmp_path)
    loaded = FiSeRForImageClassification.from_pretrained(tmp_path).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(detector(pixels).logits, loaded(pixels).logits)
    assert loaded.config.feature_pooling == "stages"


def test_the_highpass_view_is_the_residual_of_a_reflect_padded_box_blur():
    pixels = torch.randn(2, 3, 8, 9)
    residual = highpass_residual(pixels)
    padded = np.pad(pixels.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    blurred = sum(padded[:, :, dy:dy + 8, dx:dx + 9] for dy in range(3) for dx in range(3)) / 9
    assert np.allclose(residual.numpy(), 4 * (pixels.numpy() - blurred), atol=1e-5)
    assert torch.allclose(highpass_residual(torch.full((1, 3, 8, 8), 0.7)), torch.zeros(1, 3, 8, 8), atol=1e-6)


def test_input_views_concatenate_each_views_normalised_features():
    torch.manual_seed(0)
    image_only = FiSeRModel(stage_config()).eval()
    both = FiSeRModel(stage_config(input_views=["image", "highpass"])).eval()
    both.load_state_dict(image_only.state_dict())
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        features = both.image_features(pixels)
        expected = torch.cat([image_only.image_features(pixels),
                              image_only.image_features(highpass_residual(pixels))], 1)
        encoded = both(pixels, output_hidden_states=True)
    assert both.feature_dim == 2 * image_only.feature_dim and features.shape == (3, both.feature_dim)
    assert torch.allclose(features, expected, atol=1e-5)
    assert encoded.last_hidden_state.shape[0] == 3 and all(stage.shape[0] == 3 for stage in encoded.hidden_states)
    detector = FiSeRForImageClassification(stage_config(input_views=["image", "highpass"], head="logistic"))
    assert detector.head.linear.weight.shape == (1, both.feature_dim)


@pytest.mark.parametrize("overrides", [{"input_views": []}, {"input_views": ["image", "image"]},
                                       {"input_views": ["laplace"]},
                                       {"input_views": ["image", "highpass"], "feature_pooling": "final"}])
def test_bad_input_views_are_refused(overrides):
    with pytest.raises(StrictDataclassError, match="input_views"):
        stage_config(**overrides)


@pytest.mark.parametrize("overrides", [{"feature_pooling": "max"}, {"backbone": "dinov3", "feature_layer": None}])
def test_bad_poolings_are_refused(overrides):
    with pytest.raises(StrictDataclassError, match="feature_pooling"):
        stage_config(**overrides)


def test_the_standardised_logistic_head_is_the_scaled_fit_folded_into_raw_weights():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 6)) * np.array([1e-3, 1.0, 10.0, 0.1, 5.0, 0.0])  # one constant column
    labels = (features[:, 1] + 0.01 * features[:, 2] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    state, fields = head_state("logistic", features, labels, logistic_c=0.1, standardize=True)
    assert fields == {"head_size": 0}
    folded = features @ state["linear.weight"].numpy()[0] + float(state["linear.bias"][0])
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(features), labels)
    assert np.allclose(folded, reference.decision_function(scaler.transform(features)), atol=1e-4)
    plain, _ = head_state("logistic", features, labels)
    assert not np.allclose(plain["linear.weight"].numpy(), state["linear.weight"].numpy())


def test_sample_weights_reach_the_logistic_fit_and_only_it():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(120, 4))
    labels = (features[:, 0] + rng.normal(scale=1.0, size=120) > 0).astype(int)
    weights = np.where(features[:, 1] > 0, 3.0, 0.5)
    state, _ = head_state("logistic", features, labels, logistic_c=0.5, sample_weight=weights)
    reference = LogisticRegression(C=0.5, max_iter=5000).fit(features, labels, sample_weight=weights)
    assert np.allclose(state["linear.weight"].numpy()[0], reference.coef_[0], atol=1e-4)
    unweighted, _ = head_state("logistic", features, labels, logistic_c=0.5)
    assert not np.allclose(unweighted["linear.weight"].numpy(), state["linear.weight"].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="logistic head"):
        head_state("prototype", features, labels, sample_weight=weights)
