"""`aigi export`: a Hub-ready folder that a Python without aigi loads and runs; `--push` up to the upload call."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from huggingface_hub import ModelCard

from aigi.cli import main
from aigi.inference.pipeline import fake_score
from helpers import write_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")

METRICS = {
    "pooled": {"auroc": 0.81, "ap": 0.71, "acc": 0.75, "real_acc": 0.78, "fake_acc": 0.69, "tpr_at_5fpr": 0.42,
               "eer": 0.3, "n": 149, "n_real": 104, "n_fake": 45},
    "per_generator": {"ldm": {"auroc": 0.7, "ap": 0.44, "acc": 0.77, "real_acc": 0.78, "fake_acc": 0.6,
                              "tpr_at_5fpr": 0.1, "eer": 0.32, "n": 132, "n_real": 104, "n_fake": 28}},
    "threshold": 0.5,
}


@pytest.fixture(scope="module")
def exported(tiny_detector_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    metrics_file = root / "metrics.json"
    metrics_file.write_text(json.dumps(METRICS))
    output = root / "tiny-detector"
    assert main(["export", str(tiny_detector_dir), str(output), "--metrics", str(metrics_file),
                 "--eval-dataset", "external test split", "--eval-dataset-id", "aigi/external"]) == 0
    return output


def test_export_writes_a_hub_folder_with_the_card(exported):
    assert sorted(path.name for path in exported.iterdir()) == [
        "README.md", "config.json", "configuration_rescalecl.py", "image_processing_rescalecl.py",
        "model.safetensors", "modeling_rescalecl.py", "preprocessor_config.json",
    ]
    assert json.loads((exported / "config.json").read_text())["auto_map"]["AutoModelForImageClassification"] == (
        "modeling_rescalecl.RescaleCLForImageClassification"
    )
    card = ModelCard.load(exported / "README.md")
    assert card.data.pipeline_tag == "image-classification" and card.data.model_name == "tiny-detector"
    pooled_auroc = [result for result in card.data.eval_results
                    if result.metric_type == "roc_auc" and result.dataset_config is None]
    assert [(result.metric_value, result.dataset_type) for result in pooled_auroc] == [(0.81, "aigi/external")]


def test_exported_folder_runs_without_aigi(exported, tiny_detector_dir, tmp_path):
    from transformers import pipeline

    image = write_image(tmp_path / "probe.png", seed=4, size=(40, 36))
    expected = fake_score(pipeline("ai-image-detection", model=str(tiny_detector_dir))(str(image)))
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["aigi"] = None  # this interpreter must not be able to import aigi
        from transformers import pipeline
        classifier = pipeline("image-classification", model={str(exported)!r}, trust_remote_code=True)
        print(json.dumps(classifier({str(image)!r})))
    """)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert fake_score(json.loads(completed.stdout.strip().splitlines()[-1])) == pytest.approx(expected, abs=1e-5)


def test_export_refuses_a_folder_with_files(tiny_detector_dir, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["export", str(tiny_detector_dir), str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["export", str(tiny_detector_dir), str(tmp_path / "new"), "--metrics", "metrics.json"]) == 2
    assert "--eval-dataset" in capsys.readouterr().err


def test_push_creates_the_repo_and_uploads_the_folder(tiny_detector_dir, tmp_path, monkeypatch, capsys):
    import aigi.hub.export

    calls = []

    class RecordingApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **options):
            calls.append(("create_repo", repo_id, options))

        def upload_folder(self, **options):
            calls.append(("upload_folder", options))
            folder = options["folder_path"]
            calls.append(("files", sorted(os.listdir(folder))))
            return type("CommitInfo", (), {"commit_url": f"https://hub.example/{options['repo_id']}/commit/1"})()

    monkeypatch.setattr(aigi.hub.export, "HfApi", RecordingApi)
    output = tmp_path / "out"
    assert main(["export", str(tiny_detector_dir), str(output), "--push", "someone/tiny", "--token", "hf_x",
                 "--private"]) == 0
    assert calls[0] == ("token", "hf_x")
    assert calls[1] == ("create_repo", "someone/tiny", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls[2][1]["repo_id"] == "someone/tiny" and calls[2][1]["folder_path"] == str(output)
    assert "model.safetensors" in calls[3][1] and "README.md" in calls[3][1]
    assert "https://hub.example/someone/tiny/commit/1" in capsys.readouterr().out
    card = ModelCard.load(output / "README.md")
    assert card.data.model_name == "tiny" and 'model="someone/tiny"' in card.text
