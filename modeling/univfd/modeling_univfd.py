"""UnivFD detector: a linear probe on the image embedding of a frozen CLIP vision tower.

The paper's point is that a feature space not trained for real/fake classification generalises to unseen generators:
only `nn.Linear(projection_dim, 2)` is trained, the CLIP tower (ViT-L/14 in the paper) stays frozen and in eval mode.
The reference code (WisconsinAIVision/UniversalFakeDetect) ends in one logit and a sigmoid; here the probe gives two
logits [real, fake] and `softmax(logits)[:, 1]` is P(fake), the contract every aigi family shares.
"""

import torch
from torch import nn
from transformers import AutoConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_univfd import UnivFDConfig, clip_vision_config


class UnivFDPreTrainedModel(PreTrainedModel):
    config: UnivFDConfig
    config_class = UnivFDConfig
    base_model_prefix = "univfd"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=self.config.initializer_range)  # the reference probe's N(0, 0.02)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loading replaces every parameter with a trainable one: freeze the CLIP tower again.
        getattr(model, model.base_model_prefix, model).freeze_clip()
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_univfd.UnivFDConfig",
                "AutoModel": "modeling_univfd.UnivFDModel",
                "AutoModelForImageClassification": "modeling_univfd.UnivFDForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class UnivFDModel(UnivFDPreTrainedModel):
    """The frozen CLIP tower: `pooler_output` is the projected image embedding, `last_hidden_state` the tokens."""

    def __init__(self, config: UnivFDConfig):
        super().__init__(config)
        self.clip = CLIPVisionModelWithProjection(config.vision_config)
        self.post_init()
        self.freeze_clip()

    def freeze_clip(self) -> None:
        self.clip.requires_grad_(False)
        self.clip.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()  # frozen features: no dropout, whatever the caller's mode
        return self

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        output = self.clip(pixel_values=pixel_values)
        return BaseModelOutputWithPooling(last_hidden_state=output.last_hidden_state, pooler_output=output.image_embeds)


class UnivFDForImageClassification(UnivFDPreTrainedModel):
    """Two logits [real, fake] from the linear probe (a 2-way softmax instead of the paper's single sigmoid logit);
    `softmax(logits)[:, 1]` is P(fake)."""

    def __init__(self, config: UnivFDConfig):
        super().__init__(config)
        self.univfd = UnivFDModel(config)
        self.classifier = nn.Linear(config.vision_config.projection_dim, config.num_labels)
        self.post_init()

    @classmethod
    def from_clip(cls, clip_path_or_id: str, **config_kwargs) -> "UnivFDForImageClassification":
        """A new detector (probe freshly initialised) on the vision tower and visual projection of a transformers
        `CLIPModel` or `CLIPVisionModelWithProjection` checkpoint (e.g. openai/clip-vit-large-patch14, the paper's)."""
        clip_config = AutoConfig.from_pretrained(clip_path_or_id)
        vision_config = clip_vision_config(clip_config)
        model = cls(UnivFDConfig(vision_config=vision_config, image_size=vision_config["image_size"], **config_kwargs))
        source_class = CLIPVisionModelWithProjection if isinstance(clip_config, CLIPVisionConfig) else CLIPModel
        source = source_class.from_pretrained(clip_path_or_id, config=clip_config)
        model.univfd.clip.vision_model.load_state_dict(source.vision_model.state_dict())
        model.univfd.clip.visual_projection.load_state_dict(source.visual_projection.state_dict())
        return model

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The projected CLIP image embedding `[batch, projection_dim]` (input of the probe)."""
        return self.univfd(pixel_values).pooler_output

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        encoded = self.univfd(pixel_values)
        logits = self.classifier(encoded.pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (encoded.last_hidden_state,) if output_hidden_states else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


UnivFDConfig.register_for_auto_class()
UnivFDForImageClassification.register_for_auto_class("AutoModelForImageClassification")
UnivFDModel.register_for_auto_class("AutoModel")

__all__ = ["UnivFDPreTrainedModel", "UnivFDModel", "UnivFDForImageClassification"]
