"""NPR detector: a truncated ResNet-50 on the neighbouring pixel relationships of the image.

Up-sampling layers of generators leave correlations between the pixels of each 2x2 block. NPR exposes them with the
residual `x - up2(down2(x))` (nearest interpolation both ways, i.e. each pixel minus the top-left pixel of its 2x2
block), scaled by 2/3, and classifies it with the stem and first two stages of a ResNet-50 (about 1.44 M parameters).

The reference code (chuangchuangtan/NPR-DeepfakeDetection) ends in one logit and a sigmoid; here the head gives two
logits [real, fake] and `softmax(logits)[:, 1]` is P(fake), the contract every aigi family shares.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_npr import NPRConfig


def neighboring_pixel_residual(pixel_values: torch.Tensor) -> torch.Tensor:
    """`x - up2(down2(x))` with nearest interpolation; an odd height or width first loses its last row or column."""
    height, width = pixel_values.shape[-2] // 2 * 2, pixel_values.shape[-1] // 2 * 2
    pixel_values = pixel_values[..., :height, :width]
    down = nn.functional.interpolate(pixel_values, size=(height // 2, width // 2), mode="nearest")
    return pixel_values - nn.functional.interpolate(down, size=(height, width), mode="nearest")


class NPRBottleneck(nn.Module):
    """torchvision's ResNet bottleneck (1x1, strided 3x3, 1x1 expanding 4x), with a projection shortcut if needed."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        shortcut = hidden if self.downsample is None else self.downsample(hidden)
        hidden = self.relu(self.bn1(self.conv1(hidden)))
        hidden = self.relu(self.bn2(self.conv2(hidden)))
        hidden = self.bn3(self.conv3(hidden))
        return self.relu(hidden + shortcut)


class NPRPreTrainedModel(PreTrainedModel):
    config: NPRConfig
    config_class = NPRConfig
    base_model_prefix = "npr"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # The reference (torchvision) ResNet initialisation; the head as in the other aigi families.
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_npr.NPRConfig",
                "AutoModel": "modeling_npr.NPRModel",
                "AutoModelForImageClassification": "modeling_npr.NPRForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class NPRModel(NPRPreTrainedModel):
    """The network on the residual: `pooler_output` is the pooled last stage, `last_hidden_state` its feature map."""

    def __init__(self, config: NPRConfig):
        super().__init__(config)
        width = config.width
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)  # the reference's 3x3 stride-2 stem
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_channels = [], width
        for index, num_blocks in enumerate(config.layers):
            channels, stride = width * 2**index, 1 if index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                blocks.append(NPRBottleneck(in_channels, channels, stride if block_index == 0 else 1))
                in_channels = channels * NPRBottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        hidden = self.conv1(neighboring_pixel_residual(pixel_values) * 2.0 / 3.0)
        hidden = self.maxpool(self.relu(self.bn1(hidden)))
        for stage in self.stages:
            hidden = stage(hidden)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=hidden.mean(dim=(2, 3)))


class NPRForImageClassification(NPRPreTrainedModel):
    """Two logits [real, fake] (a 2-way softmax instead of the paper's single sigmoid logit); `softmax(logits)[:, 1]`
    is P(fake)."""

    def __init__(self, config: NPRConfig):
        super().__init__(config)
        self.npr = NPRModel(config)
        self.classifier = nn.Linear(config.feature_dim, config.num_labels)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled last-stage features `[batch, feature_dim]` (input of the head)."""
        return self.npr(pixel_values).pooler_output

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        encoded = self.npr(pixel_values)
        logits = self.classifier(encoded.pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        hidden_states = (encoded.last_hidden_state,) if output_hidden_states else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


NPRConfig.register_for_auto_class()
NPRForImageClassification.register_for_auto_class("AutoModelForImageClassification")
NPRModel.register_for_auto_class("AutoModel")

__all__ = ["NPRPreTrainedModel", "NPRModel", "NPRForImageClassification", "neighboring_pixel_residual"]
