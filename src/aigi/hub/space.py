"""`aigi export-space`: a self-contained Hugging Face Space folder of the detector demo.

The folder holds `app.py` (`APP`: it launches `aigi.demo` on the detectors in `detectors/`), the Space card
`README.md`, aigi's code in `aigi/` (the package of a wheel built from this checkout, unpacked: aigi is on no package
index), the chosen detectors' folders in `detectors/`, and `requirements.txt`: aigi's dependencies and its `demo` extra
plus `ALSO_PINNED`, each at the version of the checkout's `requirements.lock`. requirements.txt names published
packages only, nothing by path: a Gradio Space installs it before the rest of the folder is copied into the image, so
a wheel in the folder could not be installed from it. `python app.py` puts the app's folder first on sys.path, which
is how `import aigi` finds `aigi/`; no distribution metadata of aigi comes along (the .dist-info stays out), and
nothing in aigi asks for it: its version is `aigi.__version__`. `spaces/aigi-detector/` in the repository holds the
text files of the export of the default detector.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from email.parser import HeaderParser
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..registry import FAMILIES, resolve_model
from .cards import CARD_TEMPLATES_DIR

CHECKOUT_DIR = Path(__file__).resolve().parents[3]
"""The repository root when aigi runs from its checkout (an editable install)."""
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md", "src", "modeling")
"""What the wheel is built from: the packaging files, the readme they name, and the package sources."""
SPACE_EXTRA = "demo"
"""The extra of aigi whose requirements the Space installs besides aigi's own."""
ALSO_PINNED = ("gradio_client",)
"""Pinned too, though no requirement of aigi: the API of the demo that gradio_client calls."""

APP = '''"""Hugging Face Space of the aigi detector demo, written by `aigi export-space`; the app itself is `aigi.demo`.
`import aigi` finds aigi's code in aigi/ beside this file (`python app.py` puts this folder first on sys.path) or, for
the aigi repository's copy of this file, which lacks aigi/ and detectors/, the installed aigi; requirements.txt
installs the packages that aigi needs.

Detectors: the model folders in detectors/ (the default one pre-selected), or, where that folder is missing, the
checkpoints bundled with aigi; plus the bundled names or folders listed in the AIGI_DEMO_MODELS variable.
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


def unpack_packages(wheel: Path, output: Path) -> list[str]:
    """Unpack the packages of `wheel` (not its .dist-info) into `output`; returns their top-level names."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if not name.split("/")[0].endswith((".dist-info", ".data"))]
        archive.extractall(output, members)
    return sorted({name.split("/")[0] for name in members})


def wheel_requirements(wheel: Path, extra: str) -> list[Requirement]:
    """The Requires-Dist of `wheel` for an install with `extra`, in their order."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(archive.read(metadata).decode())
    requirements = [Requirement(line) for line in headers.get_all("Requires-Dist") or []]
    return [req for req in requirements if req.marker is None or req.marker.evaluate({"extra": extra})]


def pinned_requirements(requirements: Sequence[Requirement], locked: dict[str, str]) -> list[str]:
    """`name==version` of each requirement (then of `ALSO_PINNED`) at its version in `locked`, which must satisfy it."""
    pins, problems = {}, []
    for req in [*requirements, *map(Requirement, ALSO_PINNED)]:
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy {req}")
        pins.setdefault(canonicalize_name(req.name), f"{req.name}=={version}")
    if problems:
        raise ValueError(f"requirements.lock does not fit the Space's requirements: {'; '.join(problems)}")
    return list(pins.values())


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
    folders = detector_folders(models)

    with tempfile.TemporaryDirectory(prefix="aigi_space_wheel_") as wheel_dir:
        wheel = build_wheel(CHECKOUT_DIR, Path(wheel_dir))
        pins = pinned_requirements(wheel_requirements(wheel, SPACE_EXTRA), locked)
        output.mkdir(parents=True, exist_ok=True)
        packages = unpack_packages(wheel, output)
    detectors = []
    for name, folder in folders.items():
        shutil.copytree(folder, output / "detectors" / name)
        config = json.loads((folder / "config.json").read_text())
        detectors.append({"name": name, "family": config["model_type"], "threshold": config["decision_threshold"]})
    (output / "app.py").write_text(APP)
    (output / "requirements.txt").write_text(
        f"# Written by `aigi export-space`: the dependencies of aigi and of its {SPACE_EXTRA} extra, and "
        f"{', '.join(ALSO_PINNED)},\n"
        "# at the versions of aigi's requirements.lock. aigi itself is in aigi/ beside app.py (it is on no package\n"
        "# index), since a Space installs this file before the rest of the folder is copied in.\n"
        + "\n".join(pins) + "\n"
    )
    card_data = SpaceCardData(
        title="aigi detector", emoji="🔍", colorFrom="gray", colorTo="blue", sdk="gradio",
        sdk_version=locked["gradio"], python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py", pinned=False, license="apache-2.0",
        short_description="Real photograph or AI-generated? P(fake) per detector.",
    )
    card = SpaceCard.from_template(
        card_data, template_path=str(CARD_TEMPLATES_DIR / "space.md"), detectors=detectors,
        code_folders=", ".join(f"`{package}/`" for package in packages),
        version=wheel.name.split("-")[1], extra=SPACE_EXTRA, also_pinned=ALSO_PINNED,
    )
    (output / "README.md").write_text(f"{card}\n")
    return output
