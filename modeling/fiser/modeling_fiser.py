"""FiSeR detector: a contrastively trained encoder (DINOv3 in the paper) and a head fitted on its frozen features.

The encoder is trained with FiSeR's hierarchical contrastive loss (coarse real/fake + fine generator identity;
training code in `aigi.train.fiser`). It has no classifier of its own: a head fitted on L2-normalised features (class
prototypes, a kNN feature bank, a logistic head or an RBF SVM for few-shot adaptation) makes it a detector. Every
head gives two logits [real, fake], so `softmax(logits)[:, 1]` is P(fake).
"""

import timm
import torch
from torch import nn
from transformers import DINOv3ViTModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_fiser import FiSeRConfig

KNN_BANK_CHUNK = 65536


def top_k_similarities(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int = KNN_BANK_CHUNK):
    """Largest `k` inner products of each query with the bank rows, bank read in chunks (memory O(q * (k + chunk))).

    Returns `(values, indices)`, each `[num_queries, min(k, len(bank))]`, sorted by decreasing similarity.
    """
    k = min(k, bank.shape[0])
    best_values = queries.new_full((queries.shape[0], 0), float("-inf"))
    best_indices = torch.empty((queries.shape[0], 0), dtype=torch.long, device=queries.device)
    for start in range(0, bank.shape[0], chunk_size):
        similarities = queries @ bank[start : start + chunk_size].T
        values, indices = similarities.topk(min(k, similarities.shape[1]), dim=1)
        merged_values = torch.cat([best_values, values], dim=1)
        merged_indices = torch.cat([best_indices, indices + start], dim=1)
        best_values, order = merged_values.topk(min(k, merged_values.shape[1]), dim=1)
        best_indices = merged_indices.gather(1, order)
    return best_values, best_indices


def highpass_residual(pixel_values: torch.Tensor) -> torch.Tensor:
    """The `"highpass"` input view: pixels minus their 3x3 box blur (reflect-padded), times 4."""
    padded = nn.functional.pad(pixel_values, (1, 1, 1, 1), mode="reflect")
    return 4.0 * (pixel_values - nn.functional.avg_pool2d(padded, 3, stride=1))


INPUT_VIEW_TRANSFORMS = {"image": lambda pixel_values: pixel_values, "highpass": highpass_residual}


def with_real_logit_zero(fake_logit: torch.Tensor) -> torch.Tensor:
    """Two logits [0, z] for a score z, so that softmax(...)[:, 1] = sigmoid(z)."""
    return torch.stack([torch.zeros_like(fake_logit), fake_logit], dim=-1)


class FiSeRPrototypeHead(nn.Module):
    """Cosine similarity to the normalised class means (rows: real, fake), divided by the temperature."""

    def __init__(self, feature_dim: int, config: FiSeRConfig):
        super().__init__()
        self.temperature = config.prototype_temperature
        self.register_buffer("prototypes", torch.zeros(2, feature_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.prototypes.T / self.temperature


class FiSeRKNNHead(nn.Module):
    """FiSeR's kNN rule over a stored bank: `z = T * (sum of fake similarities - sum of real similarities)` over the
    `k` nearest bank entries (cosine similarity of normalised features)."""

    def __init__(self, feature_dim: int, config: FiSeRConfig):
        super().__init__()
        self.k, self.temperature = config.knn_k, config.knn_temperature
        self.register_buffer("bank", torch.zeros(config.head_size, feature_dim))
        self.register_buffer("bank_labels", torch.zeros(config.head_size, dtype=torch.long))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        similarities, indices = top_k_similarities(features, self.bank.to(features.dtype), self.k)
        signs = self.bank_labels[indices].to(features.dtype) * 2 - 1
        return with_real_logit_zero(self.temperature * (signs * similarities).sum(dim=1))


class FiSeRLogisticHead(nn.Module):
    """A linear logistic head: P(fake) = sigmoid(w . x + b)."""

    def __init__(self, feature_dim: int, config: FiSeRConfig):
        super().__init__()
        self.linear = nn.Linear(feature_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return with_real_logit_zero(self.linear(features).squeeze(-1))


class FiSeRSVMHead(nn.Module):
    """An RBF support vector machine: `f(x) = sum_i dual_coef_i * exp(-gamma |x - s_i|^2) + intercept`, f > 0 fake.

    P(fake) = sigmoid(f), so the 0.5 threshold is the SVM's own decision.
    """

    def __init__(self, feature_dim: int, config: FiSeRConfig):
        super().__init__()
        self.gamma = config.svm_gamma
        self.register_buffer("support_vectors", torch.zeros(config.head_size, feature_dim))
        self.register_buffer("dual_coef", torch.zeros(config.head_size))
        self.register_buffer("intercept", torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        support_vectors = self.support_vectors.to(features.dtype)
        squared_distances = torch.cdist(features, support_vectors).square()
        decision = torch.exp(-self.gamma * squared_distances) @ self.dual_coef.to(features.dtype) + self.intercept
        return with_real_logit_zero(decision)


HEAD_CLASSES = {
    "prototype": FiSeRPrototypeHead,
    "knn": FiSeRKNNHead,
    "logistic": FiSeRLogisticHead,
    "svm": FiSeRSVMHead,
}


class FiSeRPreTrainedModel(PreTrainedModel):
    config: FiSeRConfig
    config_class = FiSeRConfig
    base_model_prefix = "fiser"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # The backbones keep their own initialisation; only the logistic head is ours.
        if isinstance(module, FiSeRLogisticHead):
            nn.init.normal_(module.linear.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.linear.bias)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_fiser.FiSeRConfig",
                "AutoModel": "modeling_fiser.FiSeRModel",
                "AutoModelForImageClassification": "modeling_fiser.FiSeRForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class FiSeRModel(FiSeRPreTrainedModel):
    """The encoder. `pooler_output` is the feature the contrastive loss trains (DINOv3: final CLS after the
    LayerNorm; timm: the globally pooled features); `image_features` gives the head's normalised input."""

    def __init__(self, config: FiSeRConfig):
        super().__init__(config)
        if config.backbone == "dinov3":
            self.encoder = DINOv3ViTModel(config.dinov3_config)
        else:
            self.encoder = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        self.post_init()

    @property
    def feature_dim(self) -> int:
        if self.config.backbone == "dinov3":
            return self.config.dinov3_config.hidden_size
        if self.config.feature_pooling == "stages":
            return 2 * sum(info["num_chs"] for info in self.encoder.feature_info) * len(self.config.input_views)
        return self.encoder.num_features

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        if self.config.backbone == "dinov3":
            encoded = self.encoder(pixel_values=pixel_values, output_hidden_states=output_hidden_states)
            return BaseModelOutputWithPooling(
                last_hidden_state=encoded.last_hidden_state,
                pooler_output=encoded.last_hidden_state[:, 0],
                hidden_states=encoded.hidden_states,
            )
        if self.config.feature_pooling == "stages":
            # Every view goes through the encoder in one batch; `pooler_output` is [batch, views x stage statistics].
            views = torch.cat([INPUT_VIEW_TRANSFORMS[view](pixel_values) for view in self.config.input_views])
            stages = self.encoder.forward_intermediates(views, intermediates_only=True)
            pooled = torch.cat([statistic for stage in stages
                                for statistic in (stage.mean(dim=(2, 3)), stage.std(dim=(2, 3), correction=0))], dim=1)
            pooled = torch.cat(pooled.chunk(len(self.config.input_views)), dim=1)
            first_view = [stage[: len(pixel_values)] for stage in stages]  # the feature maps of the first view
            return BaseModelOutputWithPooling(
                last_hidden_state=first_view[-1], pooler_output=pooled,
                hidden_states=tuple(first_view) if output_hidden_states else None,
            )
        feature_map = self.encoder.forward_features(pixel_values)
        pooled = self.encoder.forward_head(feature_map, pre_logits=True)
        hidden_states = (feature_map,) if output_hidden_states else None
        return BaseModelOutputWithPooling(
            last_hidden_state=feature_map, pooler_output=pooled, hidden_states=hidden_states
        )

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of `config.feature_layer` (None: the trained final-layer feature)."""
        layer = self.config.feature_layer
        encoded = self(pixel_values, output_hidden_states=layer is not None)
        features = encoded.pooler_output if layer is None else encoded.hidden_states[layer][:, 0]
        # Each input view is normalised on its own, so that every view weighs the same before the head.
        views = features.float().chunk(len(self.config.input_views), dim=-1)
        return torch.cat([nn.functional.normalize(view, dim=-1) for view in views], dim=-1)


class FiSeRForImageClassification(FiSeRPreTrainedModel):
    """Two logits [real, fake] from the fitted head (`config.head`) on the encoder's normalised features."""

    def __init__(self, config: FiSeRConfig):
        super().__init__(config)
        self.fiser = FiSeRModel(config)
        self.head = HEAD_CLASSES[config.head](self.fiser.feature_dim, config)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The head's input: L2-normalised features `[batch, feature_dim]` (what few-shot heads are fitted on)."""
        return self.fiser.image_features(pixel_values)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        features = self.get_image_features(pixel_values)
        logits = self.head(features)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (features,) if output_hidden_states else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


FiSeRConfig.register_for_auto_class()
FiSeRForImageClassification.register_for_auto_class("AutoModelForImageClassification")
FiSeRModel.register_for_auto_class("AutoModel")

__all__ = [
    "FiSeRForImageClassification",
    "FiSeRModel",
    "FiSeRPreTrainedModel",
    "top_k_similarities",
]
