"""RescaleCL detector: a timm encoder (Xception in the paper) with a binary real/fake head.

The encoder is pre-trained with rescaling-contrastive learning on real photos only (training code lives in
`aigi.train`); the projection head used there is discarded and this classification head is fine-tuned.
"""

import timm
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_rescalecl import RescaleCLConfig


class RescaleCLPreTrainedModel(PreTrainedModel):
    config: RescaleCLConfig
    config_class = RescaleCLConfig
    base_model_prefix = "rescalecl"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # Convolutions and norms keep timm's own initialisation; only the linear heads are ours.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_rescalecl.RescaleCLConfig",
                "AutoModel": "modeling_rescalecl.RescaleCLModel",
                "AutoModelForImageClassification": "modeling_rescalecl.RescaleCLForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class RescaleCLModel(RescaleCLPreTrainedModel):
    """Encoder only: `pooler_output` is the globally pooled feature vector, `last_hidden_state` the feature map."""

    def __init__(self, config: RescaleCLConfig):
        super().__init__(config)
        self.encoder = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        self.post_init()

    @property
    def feature_dim(self) -> int:
        return self.encoder.num_features

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        if self.config.input_highpass:
            local_mean = nn.functional.avg_pool2d(pixel_values, 3, stride=1, padding=1, count_include_pad=False)
            pixel_values = pixel_values - local_mean
        feature_map = self.encoder.forward_features(pixel_values)
        pooled = self.encoder.forward_head(feature_map, pre_logits=True)
        return BaseModelOutputWithPooling(last_hidden_state=feature_map, pooler_output=pooled)


class RescaleCLForImageClassification(RescaleCLPreTrainedModel):
    """Two logits [real, fake]; `softmax(logits)[:, 1]` is P(fake)."""

    def __init__(self, config: RescaleCLConfig):
        super().__init__(config)
        self.rescalecl = RescaleCLModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.rescalecl.feature_dim, config.num_labels)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features `[batch, feature_dim]` (input of the head; used by few-shot heads)."""
        return self.rescalecl(pixel_values).pooler_output

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        encoded = self.rescalecl(pixel_values)
        logits = self.classifier(self.dropout(encoded.pooler_output))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (encoded.last_hidden_state,) if output_hidden_states else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


RescaleCLConfig.register_for_auto_class()
RescaleCLForImageClassification.register_for_auto_class("AutoModelForImageClassification")
RescaleCLModel.register_for_auto_class("AutoModel")

__all__ = ["RescaleCLPreTrainedModel", "RescaleCLModel", "RescaleCLForImageClassification"]
