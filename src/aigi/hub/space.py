"""`aigi export-space`: a self-contained Hugging Face Space folder of the detector demo.

The folder holds `app.py` (`APP`: it launches `aigi.demo` on the detectors in `detectors/`), the Space card
`README.md`, a wheel of aigi built from this checkout in `wheels/` (aigi is on no package index), the chosen
detectors' folders in `detectors/`, and `requirements.txt`: the wheel by relative path, then the versions of the
checkout's `requirements.lock` for the packages in `PINNED`. `spaces/aigi-detector/` in the repository holds the
text files of the export of the default detector.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData
from packaging.utils import canonicalize_name

from ..registry import FAMILIES, resolve_model
from .cards import CARD_TEMPLATES_DIR

CHECKOUT_DIR = Path(__file__).resolve().parents[3]
"""The repository root when aigi runs from its checkout (an editable install)."""
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md", "src", "modeling")
"""What the wheel is built from: the packaging files, the readme they name, and the package sources."""
PINNED = ("gradio", "gradio_client", "huggingface_hub", "torch", "torchvision", "transformers")
"""Pinned to the versions of requirements.lock: the demo's UI and the packages that compute the scores."""

APP = '''"""Hugging Face Space of the aigi detector demo, written by `aigi export-space`; the app itself is `aigi.demo`,
installed from the wheel in wheels/ by requirements.txt.

Detectors: the model folders in detectors/ (the default one pre-selected), or, where that folder is missing (as in
the aigi repository's copy of this file), the checkpoints bundled with aigi; plus the bundled names or folders listed
in the AIGI_DEMO_MODELS variable.
"""

from pathlib import Path

from aigi.demo import LAUNCH_OPTIONS, build_demo, detector_choices

detectors = Path(__file__).parent / "detectors"
demo = build_demo(detector_choices(detectors_dir=detectors if detectors.is_dir() else None))

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
'''


def locked_versions(lock_file: Path) -> dict[str, str]:
    """Canonical name -> version of each `name==version` line."""
    versions = {}
    for line in lock_file.read_text().splitlines():
        name, pinned, version = line.split("#")[0].partition("==")
        if pinned:
            versions[canonicalize_name(name.strip())] = version.strip()
    return versions


def detector_folders(models: Sequence[str]) -> dict[str, Path]:
    """Folder name -> folder of each detector (bundled name or local folder; none: the default detector)."""
    folders: dict[str, Path] = {}
    for model in models or [None]:
        folder = Path(resolve_model(model))
        if not folder.is_dir():
            raise ValueError(
                f"{model}: neither a bundled detector nor a local folder. Download a Hub model first "
                f"(`hf download {model} --local-dir DIR`) and pass DIR."
            )
        family = json.loads((folder / "config.json").read_text()).get("model_type")
        if family not in FAMILIES:
            raise ValueError(f"{folder}: model_type {family!r} is not an aigi detector family ({', '.join(FAMILIES)})")
        if folder.name in folders and folders[folder.name] != folder:
            raise ValueError(
                f"two detectors are named {folder.name!r} ({folders[folder.name]} and {folder}): the Space shows "
                "each by its folder name, so copy one to a folder of another name"
            )
        folders[folder.name] = folder
    return folders


def build_wheel(checkout: Path, wheel_dir: Path) -> Path:
    """Build aigi's wheel from `checkout` into `wheel_dir`, offline (setuptools of this environment)."""
    with tempfile.TemporaryDirectory(prefix="aigi_wheel_") as scratch:
        # A copy, so that the build neither leaves build/ in the checkout nor packages stale files from an older
        # build/ there.
        tree = Path(scratch) / "aigi"
        tree.mkdir()
        skipped = shutil.ignore_patterns("__pycache__", "*.egg-info")
        for name in SOURCE_FILES:
            if (checkout / name).is_dir():
                shutil.copytree(checkout / name, tree / name, ignore=skipped)
            else:
                shutil.copy2(checkout / name, tree / name)
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
             "--wheel-dir", str(wheel_dir), str(tree)],
            capture_output=True, text=True,
        )
    if build.returncode != 0:
        raise RuntimeError(f"pip wheel failed to build aigi:\n{build.stdout}{build.stderr}")
    [wheel] = wheel_dir.glob("aigi-*.whl")
    return wheel


def export_space(output_dir: str | Path, models: Sequence[str] = ()) -> Path:
    """Write the Space folder of the demo on `models` (bundled names or local folders; none: the default detector)
    to the new or empty `output_dir`; returns it. Needs aigi's source checkout, which the wheel is built from."""
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"{output} is not empty: export into a new or empty folder")
    missing = [name for name in (*SOURCE_FILES, "requirements.lock") if not (CHECKOUT_DIR / name).exists()]
    if missing:
        raise ValueError(
            f"export-space builds aigi's wheel from its source checkout, but {CHECKOUT_DIR} lacks "
            f"{', '.join(missing)}: run it with aigi installed from a checkout (`pip install -e .`)"
        )
    locked = locked_versions(CHECKOUT_DIR / "requirements.lock")
    unlocked = [name for name in PINNED if canonicalize_name(name) not in locked]
    if unlocked:
        raise ValueError(f"requirements.lock pins no version of {', '.join(unlocked)}")
    folders = detector_folders(models)

    wheel = build_wheel(CHECKOUT_DIR, output / "wheels")
    detectors = []
    for name, folder in folders.items():
        shutil.copytree(folder, output / "detectors" / name)
        config = json.loads((folder / "config.json").read_text())
        detectors.append({"name": name, "family": config["model_type"], "threshold": config["decision_threshold"]})
    (output / "app.py").write_text(APP)
    pins = [f"{name}=={locked[canonicalize_name(name)]}" for name in PINNED]
    (output / "requirements.txt").write_text(
        "# Written by `aigi export-space`: aigi, with its demo extra, from the wheel in wheels/ (it is on no package\n"
        "# index), then the versions of aigi's requirements.lock for the demo and the detectors.\n"
        + "\n".join([f"./wheels/{wheel.name}[demo]", *pins]) + "\n"
    )
    card_data = SpaceCardData(
        title="aigi detector", emoji="🔍", colorFrom="gray", colorTo="blue", sdk="gradio",
        sdk_version=locked["gradio"], python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py", pinned=False, license="apache-2.0",
        short_description="Real photograph or AI-generated? P(fake) per detector.",
    )
    card = SpaceCard.from_template(
        card_data, template_path=str(CARD_TEMPLATES_DIR / "space.md"), detectors=detectors, wheel=wheel.name,
        version=wheel.name.split("-")[1], pinned=PINNED,
    )
    (output / "README.md").write_text(f"{card}\n")
    return output
