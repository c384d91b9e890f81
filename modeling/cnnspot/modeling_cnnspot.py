"""CNNSpot detector: a timm encoder (ResNet-50 in the paper) with a linear real/fake head.

The reference code (PeterWang512/CNNDetection) ends in one logit and a sigmoid; here the head gives two logits
[real, fake] and `softmax(logits)[:, 1]` is P(fake), the contract every aigi family shares.
"""

import timm
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_cnnspot import CNNSpotConfig


class CNNSpotPreTrainedModel(PreTrainedModel):
    config: CNNSpotConfig
    config_class = CNNSpotConfig
    base_model_prefix = "cnnspot"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # Convolutions and norms keep timm's own initialisation; only the linear head is ours.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_cnnspot.CNNSpotConfig",
                "AutoModel": "modeling_cnnspot.CNNSpotModel",
                "AutoModelForImageClassification": "modeling_cnnspot.CNNSpotForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class CNNSpotModel(CNNSpotPreTrainedModel):
    """Encoder only: `pooler_output` is the globally pooled feature vector, `last_hidden_state` the feature map."""

    def __init__(self, config: CNNSpotConfig):
        super().__init__(config)
        self.encoder = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        self.post_init()

    @property
    def feature_dim(self) -> int:
        return self.encoder.num_features

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        feature_map = self.encoder.forward_features(pixel_values)
        pooled = self.encoder.forward_head(feature_map, pre_logits=True)
        return BaseModelOutputWithPooling(last_hidden_state=feature_map, pooler_output=pooled)


class CNNSpotForImageClassification(CNNSpotPreTrainedModel):
    """Two logits [real, fake] (a 2-way softmax instead of the paper's single sigmoid logit); `softmax(logits)[:, 1]`
    is P(fake)."""

    def __init__(self, config: CNNSpotConfig):
        super().__init__(config)
        self.cnnspot = CNNSpotModel(config)
        self.classifier = nn.Linear(self.cnnspot.feature_dim, config.num_labels)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features `[batch, feature_dim]` (input of the head)."""
        return self.cnnspot(pixel_values).pooler_output

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        encoded = self.cnnspot(pixel_values)
        logits = self.classifier(encoded.pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (encoded.last_hidden_state,) if output_hidden_states else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


CNNSpotConfig.register_for_auto_class()
CNNSpotForImageClassification.register_for_auto_class("AutoModelForImageClassification")
CNNSpotModel.register_for_auto_class("AutoModel")

__all__ = ["CNNSpotPreTrainedModel", "CNNSpotModel", "CNNSpotForImageClassification"]
