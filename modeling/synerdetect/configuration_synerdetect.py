"""SynerDetect configuration ("Hierarchical Synergistic Learning for Generalizable AI-Generated Image Detection",
AAAI 2026). No reference code exists: every choice the paper leaves open is a field below, with the reason for its
default."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DETECTION_ID2LABEL = {0: "real", 1: "fake"}
PROMPT_CHOICES = ("label", "mean", "real", "fake")
UPSAMPLING_CHOICES = ("nearest", "bilinear")
# openai/clip-vit-large-patch14 (the OpenCLIP ViT-L-14 "openai" weights in transformers' layout).
CLIP_VIT_LARGE_PATCH14_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}
CLIP_VIT_LARGE_PATCH14_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "pad_token_id": 1,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
}
# stabilityai/stable-diffusion-2-1-base: unet/config.json and vae/config.json (model fields only).
SD21_BASE_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
    "dual_cross_attention": False,
    "only_cross_attention": False,
}
SD21_BASE_VAE = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "scaling_factor": 0.18215,
}
# The words "real" and "fake", each followed by ".", in CLIP's BPE vocabulary (open_clip's bpe_simple_vocab_16e6,
# the same ids as the tokenizer of openai/clip-vit-large-patch14).
CLIP_CLASS_TOKEN_IDS = [[1532, 269], [5777, 269]]


def diffusers_model_fields(config: dict) -> dict:
    """A diffusers `config.json` without its bookkeeping entries (`_class_name`, `_diffusers_version`, ...)."""
    return {key: value for key, value in dict(config).items() if not key.startswith("_")}


@strict
class SynerDetectConfig(PreTrainedConfig):
    r"""
    SynerDetect: a CLIP perceptual encoder E_v and a frozen Stable Diffusion model, combined at two levels.

    * Prompts: learnable context tokens, refined per image by the visual-aware tuner (multi-head attention of
      LN(context) over LN(z_v) and LN(CConv(x)) tokens, CConv a Bayar constrained convolution), are completed with the
      [Real] / [Fake] class tokens and encoded by the frozen CLIP text encoder into z_t (one prompt per class).
    * CMID: the frozen UNet predicts the noise of noised VAE latents conditioned on c = z_v + z_t (both L2-normalised,
      then a learned projection to `condition_num_tokens` tokens of the UNet's cross-attention width).
    * Conditional inversion: DDIM inversion of the VAE latents conditioned on (the projection of) z_t gives a latent
      noise map, which the noise encoder E_d (a second CLIP vision tower) embeds into z_n.
    * Inference: `s_c = cos(z_v, z_t^c) + cos(z_n, z_t^c)` for c in (real, fake); the logits are `s / temperature`.

    The OT-DCL training objective (GMM prototypes, Bures-Wasserstein cost, entropic OT, InfoNCE) is in
    `aigi.losses`; its hyper-parameters are stored here so that a checkpoint records how it was trained.

    Inputs are images normalised to [-1, 1] (the image processor's mean = std = 0.5): the VAE reads them directly,
    the CLIP tower re-normalises its centre crop to CLIP's statistics, the constrained convolution reads them as is.

    The defaults are the paper configuration: CLIP ViT-L/14 vision (E_v and E_d) and text towers, and the UNet + VAE
    of `stabilityai/stable-diffusion-2-1-base`. The paper says "Stable Diffusion v2.1"; its Eq. 2 regresses the added
    noise, which is what the 512-px `-base` model predicts (epsilon prediction). The 768-px
    `stabilityai/stable-diffusion-2-1` predicts v instead: its output is not the noise, and Eq. 2 and DDIM
    inversion written in epsilon form would be wrong with it. `aigi train --task synerdetect` refuses a v-prediction
    model. ViT-L/14 embeddings are 768-d and SD 2.x cross-attention expects 1024-d context, hence the projection.

    vision_config / noise_vision_config (`dict` or `CLIPVisionConfig`):
        E_v and E_d (separate towers with their own LoRA adapters, as the paper has two encoders).
    text_config (`dict` or `CLIPTextConfig`):
        The frozen CLIP text encoder. Its `projection_dim` must equal the vision towers' (the joint space).
    unet_config / vae_config (`dict`):
        diffusers `UNet2DConditionModel` / `AutoencoderKL` configurations (both frozen).
    pixel_space (`bool`, defaults to `False`):
        A pixel-space diffusion model (no VAE): the UNet reads and predicts the [-1, 1] image itself (3 channels),
        so CMID noises and inverts the pixels and `vae_config` is unused (stored as `None`). For diffusion models
        trained here at low resolution (`recipes/synerdetect_offline.sh`); SD 2.1 is a latent model (`False`).
    num_train_timesteps / beta_start / beta_end / beta_schedule:
        The noise schedule of the diffusion model (SD 2.1-base's: 1000, 0.00085, 0.012, "scaled_linear").
    image_size (`int`, defaults to 256):
        Side of the input crop (images are never resized). CLIP sees its centre `vision_config.image_size` crop, the
        VAE and the CConv the whole crop. 256 (not SD's 512) keeps 100 inversion steps affordable, and the latent side
        (32) divisible by the UNet's 8x downsampling.
    num_context_tokens (`int`, defaults to 16):
        Learnable context tokens p_c (CoOp's default length).
    class_token_ids (`list[list[int]]`, defaults to "real ." and "fake ."):
        Token ids of the [Real] and [Fake] class tokens (same length), looked up in the text encoder's own token
        embedding table (no tokenizer is needed at run time). A prompt is `[BOS] p_c class-tokens [EOS]`; the EOS
        token's output, projected, is z_t. For a text config other than CLIP's, pick ids of its vocabulary.
    prompt_start_token_id / prompt_end_token_id (`int`, defaults to 49406 / 49407):
        BOS and EOS of the prompts: CLIP BPE's `<start_of_text>` / `<end_of_text>`. Not the text config's
        `bos_token_id` / `eos_token_id`, which the openai CLIP configs on the Hub set to the legacy 0 and 2.
    tuner_num_heads (`int`, defaults to 8):
        Heads of the tuner's attention (query: LN(p_c); keys and values: LN(z_v) and the LN(CConv) tokens together,
        the reading of Eq. 1 under which a single z_v token does not make the attention weights trivial).
    constrained_conv_channels / constrained_conv_kernel_size (`int`, defaults to 3 / 5):
        Output filters and kernel size of the Bayar constrained convolution (Bayar & Stamm's and MVSS-Net's 3 x 5x5),
        applied to all three input channels.
    constrained_conv_patch_size (`int`, defaults to 32):
        The CConv residual map is cut into patches of this side, each embedded by a learned linear map into a token
        of the text width (8 x 8 = 64 local tokens for a 256 crop).
    condition_num_tokens (`int`, defaults to 4):
        Tokens of the UNet cross-attention context that the projection of c (and of z_t for the inversion) yields.
        One token would make cross-attention a constant per-image bias; a few let positions weight parts of c.
    reconstruction_prompt (`str`, defaults to `"label"`):
        Which class prompt z_t enters c in CMID: the ground-truth label's ("label"), the mean of both ("mean"),
        "real" or "fake".
    reconstruction_updates_prompt (`bool`, defaults to `False`):
        The paper: "training updates only the perceptual encoder" through L_CR, so z_t is detached in c (the
        projection of c is trained by L_CR too: it has no other signal). `True` lets L_CR reach the prompt learner.
    reconstruction_min_timestep / reconstruction_max_timestep (`int`, defaults to 0 / 1000):
        CMID timesteps are drawn uniformly from [min, max) (as Diffusion-TTA and the SD training objective).
    inversion_steps (`int`, defaults to 100):
        DDIM inversion steps (the paper's fixed 100-step schedule), `DDIMInverseScheduler` with SD's "leading"
        spacing and no guidance.
    inversion_prompt (`str`, defaults to `"mean"`):
        The class prompt that conditions the inversion, in training and at test time alike. The label is unknown at
        test time and a label-conditioned inversion would leak the label into z_n during training; "mean" (the
        average of the real and fake prompts of the image) needs no label. "real" / "fake" use one class's prompt.
    noise_map_upsampling (`str`, defaults to `"nearest"`):
        How the 4-channel latent noise map reaches the ViT: a learned 1x1 convolution to 3 channels, then this
        interpolation to `noise_vision_config.image_size` (32 -> 224 is an exact 7x replication with "nearest": each
        14-px patch sees 2 x 2 latent cells). This keeps E_d's pretrained patch and position embeddings usable.
    lora_rank / lora_alpha / lora_dropout / lora_target_modules:
        LoRA on both vision towers (rank 8, alpha 16 on q, k, v and out projections: AIDE's CLIP LoRA recipe; the
        paper gives none). Everything else in the towers stays frozen.
    train_vision_towers (`bool`, defaults to `False`):
        Also train every weight of E_v and E_d (besides their LoRA adapters) instead of keeping them frozen. The paper
        adapts a pretrained CLIP (`False`); a randomly initialised tower (the offline configuration) has no features
        to adapt and needs `True`.
    temperature (`float`, defaults to 0.07):
        tau of the InfoNCE loss and the inverse scale of the logits (CLIP's initial temperature).
    gmm_num_components (`int`, defaults to 4):
        K, the GMM prototypes per modality, fitted on each per-device batch (8 samples per component at the paper's
        batch of 64 on two GPUs).
    gmm_em_iterations (`int`, defaults to 10):
        Soft-EM iterations (unrolled, so gradients pass through the fit).
    gmm_variance_floor (`float`, defaults to 1e-4):
        Added to each diagonal variance so that a component with one sample, or identical samples, stays proper.
        Covariances are diagonal: a full 768 x 768 covariance from 32 samples is singular, and the gradient of its
        matrix square root (in the Bures term) is undefined at its repeated eigenvalues.
    ot_entropy (`float`, defaults to 0.1):
        eta of the entropic OT (Eq. 5), solved by log-domain Sinkhorn. Costs between unit-norm embeddings are at
        most about 4; 0.1 gives a plan close to the exact one that log-domain Sinkhorn still solves reliably.
    pot_weight / reconstruction_weight (`float`, defaults to 0.5 / 0.4):
        alpha and lambda of `lambda * L_CR + (1 - lambda) * (L_DCL + alpha * L_POT)` (the paper's values).
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "synerdetect"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=CLIPVisionConfig),
        "noise_vision_config": SubConfigSpec(config_class=CLIPVisionConfig),
        "text_config": SubConfigSpec(config_class=CLIPTextConfig),
    }

    vision_config: dict | CLIPVisionConfig | None = None
    noise_vision_config: dict | CLIPVisionConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    unet_config: dict | None = None
    vae_config: dict | None = None
    pixel_space: bool = False
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    image_size: int = 256
    num_context_tokens: int = 16
    class_token_ids: list[list[int]] = field(default_factory=lambda: [list(ids) for ids in CLIP_CLASS_TOKEN_IDS])
    prompt_start_token_id: int = 49406
    prompt_end_token_id: int = 49407
    tuner_num_heads: int = 8
    constrained_conv_channels: int = 3
    constrained_conv_kernel_size: int = 5
    constrained_conv_patch_size: int = 32
    condition_num_tokens: int = 4
    reconstruction_prompt: str = "label"
    reconstruction_updates_prompt: bool = False
    reconstruction_min_timestep: int = 0
    reconstruction_max_timestep: int = 1000
    inversion_steps: int = 100
    inversion_prompt: str = "mean"
    noise_map_upsampling: str = "nearest"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj"])
    train_vision_towers: bool = False
    temperature: float = 0.07
    gmm_num_components: int = 4
    gmm_em_iterations: int = 10
    gmm_variance_floor: float = 1e-4
    ot_entropy: float = 0.1
    pot_weight: float = 0.5
    reconstruction_weight: float = 0.4
    decision_threshold: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = dict(CLIP_VIT_LARGE_PATCH14_VISION)
        if self.noise_vision_config is None:
            self.noise_vision_config = dict(CLIP_VIT_LARGE_PATCH14_VISION)
        if self.text_config is None:
            self.text_config = dict(CLIP_VIT_LARGE_PATCH14_TEXT)
        self.unet_config = diffusers_model_fields(SD21_BASE_UNET if self.unet_config is None else self.unet_config)
        if self.pixel_space:
            self.vae_config = None
        else:
            self.vae_config = diffusers_model_fields(SD21_BASE_VAE if self.vae_config is None else self.vae_config)
        if self.id2label is None:
            self.id2label = dict(DETECTION_ID2LABEL)
        self.id2label = {int(index): name for index, name in self.id2label.items()}
        if self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        super().__post_init__(**kwargs)

    @property
    def latent_downsampling(self) -> int:
        """Image side / latent side of the VAE (1 in pixel space)."""
        if self.pixel_space:
            return 1
        return 2 ** (len(self.vae_config["block_out_channels"]) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels the UNet reads: the VAE's latent channels, or the image's 3 in pixel space."""
        if self.pixel_space:
            return 3
        return self.vae_config.get("latent_channels", 4)

    def validate_architecture(self):
        super().validate_architecture()
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"decision_threshold must be in [0, 1], got {self.decision_threshold}")
        for name, choices in (("reconstruction_prompt", PROMPT_CHOICES), ("inversion_prompt", PROMPT_CHOICES[1:]),
                              ("noise_map_upsampling", UPSAMPLING_CHOICES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        unet_downsampling = 2 ** (len(self.unet_config["down_block_types"]) - 1)
        if self.image_size % (self.latent_downsampling * unet_downsampling):
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of {self.latent_downsampling * unet_downsampling}: "
                f"the VAE downsamples {self.latent_downsampling}x and the UNet {unet_downsampling}x"
            )
        if self.vision_config.image_size > self.image_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be at least the CLIP input size "
                f"({self.vision_config.image_size}): the perceptual encoder sees a centre crop of the input"
            )
        if self.image_size % self.constrained_conv_patch_size:
            raise ValueError(f"image_size must be a multiple of constrained_conv_patch_size "
                             f"({self.constrained_conv_patch_size})")
        if self.unet_config.get("in_channels", 4) != self.latent_channels:
            raise ValueError("the UNet's in_channels must equal the VAE's latent_channels (3 in pixel space)")
        if "cross_attention_dim" not in self.unet_config:
            raise ValueError("unet_config needs cross_attention_dim (the width the condition is projected to)")
        joint_dims = {self.vision_config.projection_dim, self.noise_vision_config.projection_dim,
                      self.text_config.projection_dim}
        if len(joint_dims) != 1:
            raise ValueError(f"the vision and text towers must share one projection_dim, got {sorted(joint_dims)}")
        if len(self.class_token_ids) != 2 or len({len(ids) for ids in self.class_token_ids}) != 1:
            raise ValueError("class_token_ids needs two token-id lists ([Real], [Fake]) of the same length")
        class_tokens = [token for ids in self.class_token_ids for token in ids]
        prompt_tokens = [self.prompt_start_token_id, self.prompt_end_token_id, *class_tokens]
        if not all(0 <= token < self.text_config.vocab_size for token in prompt_tokens):
            raise ValueError(f"class_token_ids and the prompt start / end tokens must be ids of the text vocabulary "
                             f"(< {self.text_config.vocab_size})")
        prompt_length = self.num_context_tokens + len(self.class_token_ids[0]) + 2
        if prompt_length > self.text_config.max_position_embeddings:
            raise ValueError(f"a prompt of {prompt_length} tokens exceeds the text encoder's "
                             f"{self.text_config.max_position_embeddings} positions")
        if self.text_config.hidden_size % self.tuner_num_heads:
            raise ValueError("the text width must be a multiple of tuner_num_heads")
        if not 1 <= self.inversion_steps <= self.num_train_timesteps:
            raise ValueError(f"inversion_steps must be in [1, {self.num_train_timesteps}]")
        if not 0 <= self.reconstruction_min_timestep < self.reconstruction_max_timestep <= self.num_train_timesteps:
            raise ValueError("need 0 <= reconstruction_min_timestep < reconstruction_max_timestep <= "
                             "num_train_timesteps")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0.0 <= self.reconstruction_weight <= 1.0:
            raise ValueError(f"reconstruction_weight (lambda) must be in [0, 1], got {self.reconstruction_weight}")
        for name in ("temperature", "ot_entropy", "gmm_variance_floor"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("num_context_tokens", "constrained_conv_channels", "constrained_conv_patch_size",
                     "condition_num_tokens", "lora_rank", "gmm_num_components", "gmm_em_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.constrained_conv_kernel_size < 3 or self.constrained_conv_kernel_size % 2 == 0:
            raise ValueError("constrained_conv_kernel_size must be odd and >= 3 (the constraint needs a centre)")


__all__ = ["SynerDetectConfig"]
