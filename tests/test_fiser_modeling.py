import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from huggingface_hub.errors import StrictDataclassError
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from aigi.modeling.fiser import (
    FiSeRConfig,
    FiSeRForImageClassification,
    FiSeRImageProcessor,
    FiSeRModel,
    top_k_similarities,
)
from aigi.modeling.fiser.modeling_fiser import HEAD_CLASSES
from aigi.inference.pipeline import fake_probabilities, fake_score
from aigi.train.heads import head_state
from detector_tester import DetectorModelTesterMixin, load_without_aigi, random_image

IMAGE_SIZE = 32
TINY_DINOV3 = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                   num_register_tokens=2, patch_size=8, image_size=IMAGE_SIZE)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny_dinov3_config(**overrides) -> FiSeRConfig:
    return FiSeRConfig(dinov3_config=dict(TINY_DINOV3), image_size=IMAGE_SIZE, **{"feature_layer": 2, **overrides})


def tiny_timm_config(**overrides) -> FiSeRConfig:
    return FiSeRConfig(backbone="test_resnet", feature_layer=None, image_size=IMAGE_SIZE,
                       image_mean=[0.5] * 3, image_std=[0.5] * 3, **overrides)


def with_fitted_head(model: FiSeRForImageClassification, seed: int = 0) -> FiSeRForImageClassification:
    """Random, non-zero head tensors, as after a fit."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.head.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            else:
                tensor.copy_(torch.randint(0, 2, tensor.shape, generator=generator))
    return model


class FiSeRTester(DetectorModelTesterMixin):
    """The shared checks on a fitted FiSeR detector; subclasses choose the encoder and the head."""

    config_class = FiSeRConfig
    model_class = FiSeRForImageClassification
    base_model_class = FiSeRModel
    processor_class = FiSeRImageProcessor
    image_size = IMAGE_SIZE

    def trained_model(self):
        return with_fitted_head(self.model_class(self.tiny_config())).eval()


class TestFiSeRDINOv3KNN(FiSeRTester):
    def tiny_config(self):
        return tiny_dinov3_config(feature_layer=2, head="knn", head_size=7)


class TestFiSeRTimmSVM(FiSeRTester):
    def tiny_config(self):
        return tiny_timm_config(head="svm", head_size=5)


def test_feature_layer_is_the_raw_cls_of_that_block_and_none_the_final_normed_cls():
    torch.manual_seed(0)
    model = FiSeRModel(tiny_dinov3_config(feature_layer=2)).eval()
    pixel_values = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        encoded = model.encoder(pixel_values=pixel_values, output_hidden_states=True)
        block_two = torch.nn.functional.normalize(encoded.hidden_states[2][:, 0], dim=-1)
        torch.testing.assert_close(model.image_features(pixel_values), block_two)
        model.config.feature_layer = None
        final = torch.nn.functional.normalize(model.encoder.norm(encoded.hidden_states[3])[:, 0], dim=-1)
        torch.testing.assert_close(model.image_features(pixel_values), final)
        torch.testing.assert_close(model(pixel_values).pooler_output, encoded.last_hidden_state[:, 0])


def test_paper_configuration_is_dinov3_vit_large_16_read_at_block_18():
    config = FiSeRConfig()
    assert config.backbone == "dinov3" and config.feature_layer == 18
    layout = config.dinov3_config
    assert (layout.hidden_size, layout.num_hidden_layers, layout.patch_size, layout.num_register_tokens) == (
        1024, 24, 16, 4)
    with init_empty_weights():
        model = FiSeRForImageClassification(config)
    assert sum(parameter.numel() for parameter in model.fiser.parameters()) == 303_129_600
    assert model.fiser.feature_dim == 1024 and model.head.prototypes.shape == (2, 1024)


def test_dinov3_weights_load_into_the_encoder(tmp_path):
    from aigi.train.fiser import encoder_from_checkpoint

    torch.manual_seed(1)
    dinov3 = DINOv3ViTModel(DINOv3ViTConfig(**TINY_DINOV3)).eval()
    dinov3.save_pretrained(tmp_path)
    encoder = encoder_from_checkpoint(str(tmp_path)).eval()
    pixel_values = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixel_values).last_hidden_state, dinov3(pixel_values).last_hidden_state)
    # 18 of ViT-L's 24 blocks is the reference; other depths are read at the same relative depth.
    assert encoder.config.dinov3_config.num_hidden_layers == 3 and encoder.config.feature_layer == 2


@pytest.mark.parametrize(("fields", "message"), [
    ({"backbone": "resnet18"}, "feature_layer=None"),
    ({"head": "knn"}, "head_size >= 1"),
    ({"head": "prototype", "head_size": 3}, "head_size must be 0"),
    ({"head": "mlp"}, "head must be one of"),
    ({"feature_layer": 25}, "feature_layer must be in"),
])
def test_configuration_rejects_inconsistent_fields(fields, message):
    with pytest.raises(StrictDataclassError, match=message):
        FiSeRConfig(**fields)


def test_chunked_top_k_equals_the_full_search():
    generator = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(5, 8, generator=generator), torch.randn(23, 8, generator=generator)
    values, indices = top_k_similarities(queries, bank, k=6, chunk_size=4)
    expected_values, expected_indices = (queries @ bank.T).topk(6, dim=1)
    torch.testing.assert_close(values, expected_values)
    assert torch.equal(indices, expected_indices)
    assert top_k_similarities(queries, bank[:3], k=6)[0].shape == (5, 3)


def fitted_head(head: str, features: np.ndarray, labels: np.ndarray, **overrides) -> torch.nn.Module:
    state, fields = head_state(head, features, labels)
    config = tiny_timm_config(head=head, **{**fields, **overrides})
    module = HEAD_CLASSES[head](features.shape[1], config).eval()
    module.load_state_dict(state)
    return module


def feature_sample(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.array([0] * 12 + [1] * 12)
    features = rng.normal(size=(24, 8)) + labels[:, None] * 0.8
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    queries = rng.normal(size=(9, 8))
    return features.astype(np.float32), labels, (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(
        np.float32)


def test_svm_head_reproduces_scikit_learn_decisions():
    from sklearn.svm import SVC

    features, labels, queries = feature_sample()
    state, fields = head_state("svm", features, labels)
    assert fields["svm_gamma"] == pytest.approx(1 / (8 * features.var()))
    model = fitted_head("svm", features, labels)
    reference = SVC(C=1.0, kernel="rbf", gamma="scale").fit(features, labels)
    fake_logit = model(torch.from_numpy(queries))[:, 1]
    np.testing.assert_allclose(fake_logit.detach().numpy(), reference.decision_function(queries), atol=1e-4)
    assert (fake_logit > 0).tolist() == (reference.predict(queries) == 1).tolist()


def test_logistic_head_reproduces_scikit_learn_probabilities():
    from sklearn.linear_model import LogisticRegression

    features, labels, queries = feature_sample(1)
    model = fitted_head("logistic", features, labels)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(features, labels)
    probabilities = model(torch.from_numpy(queries)).softmax(-1)[:, 1]
    np.testing.assert_allclose(probabilities.detach().numpy(), reference.predict_proba(queries)[:, 1], atol=1e-5)


def test_knn_head_is_the_similarity_mass_vote():
    features, labels, queries = feature_sample(2)
    model = fitted_head("knn", features, labels, knn_k=5, knn_temperature=0.05)
    logits = model(torch.from_numpy(queries))
    for query, fake_logit in zip(queries, logits[:, 1]):
        similarities = features @ query
        nearest = np.argsort(-similarities)[:5]
        mass = sum(similarities[j] * (1 if labels[j] == 1 else -1) for j in nearest)
        assert float(fake_logit) == pytest.approx(0.05 * mass, abs=1e-5)
    assert torch.equal(logits[:, 0], torch.zeros(len(queries)))


def test_prototype_head_prefers_the_nearer_class_mean():
    features, labels, queries = feature_sample(3)
    model = fitted_head("prototype", features, labels)
    prototypes = [features[labels == label].mean(0) for label in (0, 1)]
    prototypes = [prototype / np.linalg.norm(prototype) for prototype in prototypes]
    probabilities = model(torch.from_numpy(queries)).softmax(-1)[:, 1].detach().numpy()
    expected = 1 / (1 + np.exp(-(queries @ prototypes[1] - queries @ prototypes[0]) / 0.07))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_remote_code_loads_without_aigi(tmp_path):
    model = with_fitted_head(FiSeRForImageClassification(tiny_dinov3_config(head="svm", head_size=4)), seed=2).eval()
    model.save_pretrained(tmp_path)
    FiSeRImageProcessor(crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(tmp_path)
    for name in ("configuration_fiser.py", "modeling_fiser.py", "image_processing_fiser.py"):
        assert (tmp_path / name).is_file()
    image = random_image(IMAGE_SIZE, IMAGE_SIZE, seed=9)
    image_path = tmp_path / "image.png"
    image.save(image_path)
    pixel_values = FiSeRImageProcessor(crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})(
        images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = float(fake_probabilities(model, pixel_values)[0])
    result = load_without_aigi(tmp_path, image_path, tmp_path)
    assert result["model"] == "FiSeRForImageClassification" and result["base"] == "FiSeRModel"
    assert result["module"].startswith("transformers_modules.")
    assert fake_score(result["output"]) == pytest.approx(expected, abs=1e-5)
    assert expected != pytest.approx(0.5, abs=1e-3)  # the fitted head's tensors were saved and loaded
