"""Detector families known to aigi, their Auto-class registration, and model name resolution."""

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    PreTrainedConfig,
    PreTrainedModel,
)

from .modeling.cnnspot import CNNSpotConfig, CNNSpotForImageClassification, CNNSpotImageProcessor, CNNSpotModel
from .modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRImageProcessor, FiSeRModel
from .modeling.gensign import GenSignConfig, GenSignForImageClassification, GenSignImageProcessor, GenSignModel
from .modeling.npr import NPRConfig, NPRForImageClassification, NPRImageProcessor, NPRModel
from .modeling.rescalecl import (
    RescaleCLConfig,
    RescaleCLForImageClassification,
    RescaleCLImageProcessor,
    RescaleCLModel,
)
from .modeling.synerdetect import (
    SynerDetectConfig,
    SynerDetectForImageClassification,
    SynerDetectImageProcessor,
    SynerDetectModel,
)
from .modeling.univfd import UnivFDConfig, UnivFDForImageClassification, UnivFDImageProcessor, UnivFDModel

BUNDLED_CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
SAMPLES_DIR = Path(__file__).parent / "samples"
DEFAULT_DETECTOR_FILE = BUNDLED_CHECKPOINTS_DIR / "default.json"  # written by recipes/ship_default_detector.py


def _bundled_default() -> str | None:
    if not DEFAULT_DETECTOR_FILE.is_file():
        return None
    return json.loads(DEFAULT_DETECTOR_FILE.read_text())["name"]


DEFAULT_DETECTOR: str | None = _bundled_default()


@dataclass(frozen=True)
class DetectorFamily:
    name: str
    paper: str
    config_class: type[PreTrainedConfig]
    base_model_class: type[PreTrainedModel]
    classification_class: type[PreTrainedModel]
    image_processor_class: type


FAMILIES: dict[str, DetectorFamily] = {
    family.name: family
    for family in [
        DetectorFamily(
            name="rescalecl",
            paper="Generalization through discrepancy (rescaling-contrastive pre-training)",
            config_class=RescaleCLConfig,
            base_model_class=RescaleCLModel,
            classification_class=RescaleCLForImageClassification,
            image_processor_class=RescaleCLImageProcessor,
        ),
        DetectorFamily(
            name="gensign",
            paper="Enabling Supervised Learning of Generative Signatures (GenSign, CVPR 2026)",
            config_class=GenSignConfig,
            base_model_class=GenSignModel,
            classification_class=GenSignForImageClassification,
            image_processor_class=GenSignImageProcessor,
        ),
        DetectorFamily(
            name="fiser",
            paper="FiSeR: Fine-Grained Source Representations for Cross-Domain AI Image Detection",
            config_class=FiSeRConfig,
            base_model_class=FiSeRModel,
            classification_class=FiSeRForImageClassification,
            image_processor_class=FiSeRImageProcessor,
        ),
        DetectorFamily(
            name="synerdetect",
            paper="SynerDetect: Hierarchical Synergistic Learning for Generalizable AI-Generated Image Detection "
            "(AAAI 2026; our reconstruction, no reference code)",
            config_class=SynerDetectConfig,
            base_model_class=SynerDetectModel,
            classification_class=SynerDetectForImageClassification,
            image_processor_class=SynerDetectImageProcessor,
        ),
        DetectorFamily(
            name="cnnspot",
            paper="CNN-generated images are surprisingly easy to spot... for now (Wang et al., CVPR 2020; baseline)",
            config_class=CNNSpotConfig,
            base_model_class=CNNSpotModel,
            classification_class=CNNSpotForImageClassification,
            image_processor_class=CNNSpotImageProcessor,
        ),
        DetectorFamily(
            name="univfd",
            paper="Towards Universal Fake Image Detectors that Generalize Across Generative Models "
            "(UnivFD, Ojha et al., CVPR 2023; baseline)",
            config_class=UnivFDConfig,
            base_model_class=UnivFDModel,
            classification_class=UnivFDForImageClassification,
            image_processor_class=UnivFDImageProcessor,
        ),
        DetectorFamily(
            name="npr",
            paper="Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake "
            "Detection (NPR, Tan et al., CVPR 2024; baseline)",
            config_class=NPRConfig,
            base_model_class=NPRModel,
            classification_class=NPRForImageClassification,
            image_processor_class=NPRImageProcessor,
        ),
    ]
}


def register_families() -> None:
    """Register every family with the transformers Auto classes (idempotent)."""
    for family in FAMILIES.values():
        model_type = family.config_class.model_type
        AutoConfig.register(model_type, family.config_class, exist_ok=True)
        AutoModel.register(family.config_class, family.base_model_class, exist_ok=True)
        AutoModelForImageClassification.register(family.config_class, family.classification_class, exist_ok=True)
        AutoImageProcessor.register(
            family.config_class,
            # One NumPy implementation serves both backends (it never resamples, so there is nothing to accelerate).
            image_processor_classes={"pil": family.image_processor_class, "torchvision": family.image_processor_class},
            exist_ok=True,
        )


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def bundled_checkpoints() -> list[dict]:
    """Checkpoints shipped inside the package: `{"name", "family", "path", "size_bytes"}` each."""
    if not BUNDLED_CHECKPOINTS_DIR.is_dir():
        return []
    checkpoints = []
    for config_file in sorted(BUNDLED_CHECKPOINTS_DIR.glob("*/config.json")):
        checkpoint_dir = config_file.parent
        checkpoints.append(
            {
                "name": checkpoint_dir.name,
                "family": json.loads(config_file.read_text())["model_type"],
                "path": str(checkpoint_dir),
                "size_bytes": directory_size(checkpoint_dir),
            }
        )
    return checkpoints


def default_detector_path() -> str | None:
    """Folder of the bundled default detector (None if this install ships none)."""
    if DEFAULT_DETECTOR is None:
        return None
    return str(BUNDLED_CHECKPOINTS_DIR / DEFAULT_DETECTOR)


def resolve_model(name_or_path: str | None) -> str:
    """A bundled checkpoint name, a local directory, or a Hub id (returned as given); None means the default."""
    if name_or_path is None:
        if DEFAULT_DETECTOR is None:
            raise ValueError(
                "No default detector ships with this version of aigi yet: pass --model with a bundled name "
                "(see `aigi models`), a local checkpoint directory (e.g. one written by `aigi train`) or a Hub id."
            )
        name_or_path = DEFAULT_DETECTOR
    bundled = {checkpoint["name"]: checkpoint["path"] for checkpoint in bundled_checkpoints()}
    if name_or_path in bundled:
        return bundled[name_or_path]
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"{local} is not a model directory: it has no config.json")
        return str(local)
    return name_or_path
