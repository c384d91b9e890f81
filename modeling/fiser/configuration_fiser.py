"""FiSeR configuration ("Fine-Grained Source Representations for Cross-Domain AI Image Detection")."""

from huggingface_hub.dataclasses import strict
from transformers import DINOv3ViTConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DETECTION_ID2LABEL = {0: "real", 1: "fake"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# facebook/dinov3-vitl16-pretrain-lvd1689m, the encoder FiSeR fine-tunes: 24 blocks, 1024-d, 4 register tokens.
DINOV3_VIT_LARGE_PATCH16 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 16,
    "num_register_tokens": 4,
    "image_size": 224,
    "layer_norm_eps": 1e-5,
    "rope_theta": 100.0,
    "query_bias": True,
    "key_bias": False,
    "value_bias": True,
    "use_gated_mlp": False,
}
HEADS = ("prototype", "knn", "logistic", "svm")
FEATURE_POOLINGS = ("final", "stages")
INPUT_VIEWS = ("image", "highpass")


@strict
class FiSeRConfig(PreTrainedConfig):
    r"""
    An encoder trained with FiSeR's hierarchical contrastive loss, plus a small head fitted on its frozen features
    that turns it into a real/fake classifier (two logits [real, fake]).

    The defaults are the paper's configuration: DINOv3 ViT-L/16, features the L2-normalised CLS token of block 18.
    A from-scratch configuration that trains on a CPU is e.g. `FiSeRConfig(backbone="resnet18", feature_layer=None,
    image_mean=[0.5] * 3, image_std=[0.5] * 3)`.

    backbone (`str`, defaults to `"dinov3"`):
        `"dinov3"`: a transformers `DINOv3ViTModel` built from `dinov3_config`. Any other value is a timm model
        name whose globally pooled features are used.
    dinov3_config (`dict` or `DINOv3ViTConfig`, *optional*):
        The DINOv3 encoder; defaults to facebook/dinov3-vitl16-pretrain-lvd1689m's layout. Must be unset for a timm
        backbone.
    feature_layer (`int`, *optional*, defaults to 18):
        DINOv3 only: the head reads the raw CLS token of this block (`hidden_states[feature_layer]`, before the
        final LayerNorm), as the reference evaluation does (block 18 by default). `None` reads the final-layer CLS
        after the LayerNorm, which is the feature the contrastive loss trains. Must be `None` for a timm backbone.
    feature_pooling (`str`, defaults to `"final"`):
        timm backbones only: `"final"` reads the globally pooled final features (the feature the contrastive loss
        trains); `"stages"` reads the spatial mean and standard deviation of every stage's feature map
        (`forward_intermediates`), low-level stages included, concatenated: a frozen-encoder probe that keeps the
        local statistics generation traces live in.
    input_views (`list[str]`, defaults to `["image"]`):
        timm stage pooling only: what the encoder sees, each view's L2-normalised features concatenated in this
        order. `"image"`: the normalised pixels; `"highpass"`: their residual after a 3x3 box blur (reflect-padded),
        times 4, which removes most of the image content and keeps the pixel-level traces. Each view costs one
        forward of the encoder.
    head (`str`, defaults to `"prototype"`):
        How normalised features become P(fake): `"prototype"` (cosine to the real and fake class means, over
        `prototype_temperature`), `"knn"` (FiSeR's similarity-mass vote of the `knn_k` nearest entries of a stored
        feature bank: `sigmoid(knn_temperature * (sum of fake similarities - sum of real similarities))`),
        `"logistic"` (a linear logistic head) or `"svm"` (an RBF support vector machine). Heads are fitted by
        `aigi fit-head` / `aigi fewshot`; a freshly built model holds zeros.
    head_size (`int`, defaults to 0):
        Rows stored by the head: the feature bank size for `"knn"`, the number of support vectors for `"svm"`;
        0 for the other heads.
    knn_k (`int`, defaults to 25) / knn_temperature (`float`, defaults to 0.05):
        The reference's inference defaults. The temperature multiplies the score: it changes the calibration of
        P(fake), never the ranking, and the 0.5 decision stays "more fake than real similarity mass".
    prototype_temperature (`float`, defaults to 0.07):
        Divides the cosine similarities to the two prototypes (the training temperature).
    svm_gamma (`float`, defaults to 1.0):
        RBF kernel width `exp(-gamma * |x - s|^2)`; written by the SVM fit (scikit-learn's `gamma="scale"`).
    image_mean / image_std (`list[float]`):
        Normalisation the backbone expects (ImageNet's for DINOv3); the image processor uses the same values.
    image_size (`int`, defaults to 224):
        Side of the centre crop seen at inference (images are never resized).
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "fiser"
    sub_configs_defaults = {"dinov3_config": SubConfigSpec(config_class=DINOv3ViTConfig, optional=True)}

    backbone: str = "dinov3"
    dinov3_config: dict | DINOv3ViTConfig | None = None
    feature_layer: int | None = 18
    feature_pooling: str = "final"
    input_views: list[str] | None = None
    head: str = "prototype"
    head_size: int = 0
    knn_k: int = 25
    knn_temperature: float = 0.05
    prototype_temperature: float = 0.07
    svm_gamma: float = 1.0
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    image_size: int = 224
    decision_threshold: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.backbone == "dinov3" and self.dinov3_config is None:
            self.dinov3_config = dict(DINOV3_VIT_LARGE_PATCH16)
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STD)
        if self.input_views is None:
            self.input_views = ["image"]
        if self.id2label is None:
            self.id2label = dict(DETECTION_ID2LABEL)
        self.id2label = {int(index): name for index, name in self.id2label.items()}
        if self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"decision_threshold must be in [0, 1], got {self.decision_threshold}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.head in ("knn", "svm") and self.head_size < 1:
            raise ValueError(f"head {self.head!r} needs head_size >= 1 (rows of its bank or support vectors)")
        if self.head not in ("knn", "svm") and self.head_size != 0:
            raise ValueError(f"head {self.head!r} stores no rows: head_size must be 0, got {self.head_size}")
        if self.backbone != "dinov3":
            if self.dinov3_config is not None:
                raise ValueError(f"dinov3_config is only used with backbone='dinov3', not {self.backbone!r}")
            if self.feature_layer is not None:
                raise ValueError("feature_layer selects a DINOv3 block; a timm backbone needs feature_layer=None")
        elif self.feature_pooling != "final":
            raise ValueError("feature_pooling 'stages' pools a timm backbone's stages; DINOv3 needs 'final'")
        if self.feature_pooling not in FEATURE_POOLINGS:
            raise ValueError(f"feature_pooling must be one of {FEATURE_POOLINGS}, got {self.feature_pooling!r}")
        if not self.input_views or any(view not in INPUT_VIEWS for view in self.input_views) or \
                len(set(self.input_views)) != len(self.input_views):
            raise ValueError(f"input_views must be distinct views of {INPUT_VIEWS}, got {self.input_views!r}")
        if self.input_views != ["image"] and self.feature_pooling != "stages":
            raise ValueError("input_views other than ['image'] need feature_pooling='stages'")
        if self.backbone == "dinov3" and self.feature_layer is not None and \
                not 0 <= self.feature_layer <= self.dinov3_config.num_hidden_layers:
            raise ValueError(
                f"feature_layer must be in [0, {self.dinov3_config.num_hidden_layers}], got {self.feature_layer}"
            )
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be >= 1, got {self.knn_k}")
        for name in ("knn_temperature", "prototype_temperature", "svm_gamma"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError("image_mean and image_std need one value per RGB channel")


__all__ = ["FiSeRConfig"]
