import json
import shutil

import pytest

from aigi.cli import main


def test_models_json_lists_bundled_checkpoints(capsys):
    assert main(["models", "--json"]) == 0
    checkpoints = json.loads(capsys.readouterr().out)
    assert isinstance(checkpoints, list)
    for checkpoint in checkpoints:
        assert set(checkpoint) == {"name", "family", "path", "size_bytes"}
    from aigi.registry import DEFAULT_DETECTOR

    assert DEFAULT_DETECTOR in [checkpoint["name"] for checkpoint in checkpoints]


def test_models_lists_families(capsys):
    assert main(["models"]) == 0
    assert "rescalecl" in capsys.readouterr().out


def test_detect_without_model_and_without_a_bundled_default_says_what_to_do(detection_folder, capsys, monkeypatch):
    import aigi.registry

    monkeypatch.setattr(aigi.registry, "DEFAULT_DETECTOR", None)
    assert main(["detect", str(detection_folder)]) == 2
    assert "--model" in capsys.readouterr().err


def test_detect_folder_with_bad_files_reports_each_file(tiny_detector_dir, bad_image_corpus, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for entry in bad_image_corpus.values():
        shutil.copy(entry.path, folder / entry.path.name)
    assert main(["detect", str(folder), "--model", str(tiny_detector_dir), "--json"]) == 0
    rows = {row["path"].split("/")[-1]: row for row in json.loads(capsys.readouterr().out)}
    assert len(rows) == len(bad_image_corpus)
    for entry in bad_image_corpus.values():
        row = rows[entry.path.name]
        if entry.expect == "ok":
            assert row["error"] is None and 0.0 <= row["score"] <= 1.0 and row["label"] in ("real", "fake")
        else:
            assert row["score"] is None and entry.reason in row["error"]


def test_detect_exit_code_when_every_file_fails(tiny_detector_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    assert main(["detect", str(broken), "--model", str(tiny_detector_dir), "--csv"]) == 1
    assert "empty" in capsys.readouterr().out


def test_detect_threshold_and_csv(tiny_detector_dir, detection_folder, capsys):
    assert main(["detect", str(detection_folder), "--model", str(tiny_detector_dir), "--csv", "--threshold", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,label,score,error" and len(lines) == 1 + 16
    assert all(",fake," in line for line in lines[1:])


@pytest.mark.parametrize("protocol", ["normalized", "raw"])
def test_evaluate_writes_metrics(tiny_detector_dir, detection_folder, tmp_path, protocol, capsys):
    output = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_detector_dir), "--data", str(detection_folder),
                 "--protocol", protocol, "--output", str(output)]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    keys = {"auroc", "ap", "acc", "real_acc", "fake_acc", "tpr_at_5fpr", "eer", "n"}
    assert keys <= set(metrics["pooled"]) and metrics["pooled"]["n"] == 16
    assert set(metrics["per_generator"]) == {"gen_a", "gen_b"}
    assert metrics["per_generator"]["gen_a"]["n"] == 8 + 4  # all reals + that generator's fakes
    for name in ("metrics.md", "roc.png", "score_histogram.png", "predictions.csv"):
        assert (output / name).stat().st_size > 0
    assert "pooled" in capsys.readouterr().out


def test_evaluate_unknown_protocol_lists_the_available_ones(detection_folder, tmp_path, capsys):
    assert main(["evaluate", "--model", "unused", "--data", str(detection_folder), "--output", str(tmp_path),
                 "--protocol", "normalized,jpeg_q10"]) == 2
    error = capsys.readouterr().err
    assert "jpeg_q10" in error and "robustness" in error and "noise_s5" in error


def test_samples_folder_is_shipped(capsys):
    from pathlib import Path

    assert main(["samples"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert sorted(path.parent.name for path in folder.glob("*/*.png")) == ["fake", "fake", "real", "real"]
    assert (folder / "LICENSES.md").is_file()


def test_evaluate_on_a_saved_hf_dataset(tiny_detector_dir, detection_folder, tmp_path):
    from aigi.data.build import build_detection_dataset

    saved = tmp_path / "saved"
    build_detection_dataset(detection_folder, saved, progress=False)
    folder_report, dataset_report = tmp_path / "from_folder", tmp_path / "from_dataset"
    for data, output in ((detection_folder, folder_report), (saved, dataset_report)):
        assert main(["evaluate", "--model", str(tiny_detector_dir), "--data", str(data), "--output", str(output)]) == 0
    from_folder = json.loads((folder_report / "metrics.json").read_text())
    from_dataset = json.loads((dataset_report / "metrics.json").read_text())
    assert from_dataset["pooled"]["n"] == 16
    assert from_dataset["pooled"]["auroc"] == pytest.approx(from_folder["pooled"]["auroc"])
    assert set(from_dataset["per_generator"]) == {"gen_a", "gen_b"}
