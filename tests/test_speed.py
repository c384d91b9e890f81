"""`aigi bench-speed` (schema only: never timing assertions) and the threaded preprocessing of the pipeline."""

import json

import pytest
from helpers import write_mixed_folder
from transformers import pipeline

from aigi.cli import main
from aigi.inference.batching import preprocess_in_threads


@pytest.fixture(scope="module")
def detector(tiny_detector_dir, single_torch_thread):
    return pipeline("ai-image-detection", model=str(tiny_detector_dir))


@pytest.fixture()
def mixed_folder(bad_image_corpus, detection_folder, tmp_path):
    return write_mixed_folder(tmp_path / "mixed", bad_image_corpus, detection_folder, good_count=10)


def test_bench_speed_writes_sane_json(tiny_detector_dir, tmp_path, single_torch_thread, capsys):
    output = tmp_path / "speed.json"
    assert main(["bench-speed", "--model", str(tiny_detector_dir), "--images", "12", "--batch-sizes", "1,4",
                 "--warmup", "1", "--num-workers", "2", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["settings"] == {"images": 12, "batch_sizes": [1, 4], "warmup_batches": 1, "num_workers": 2,
                                  "jpeg_quality": 90, "input_side": None}
    environment = report["environment"]
    assert environment["torch_threads"] >= 1 and environment["cpu_count"] >= 1 and environment["torch_version"]
    [result] = report["models"]
    assert result["image_size"] == result["input_side"] == 32 and result["model_type"] == "rescalecl"
    assert result["parameters"] > 0
    expected_batches = {"1": 11, "4": 2}  # 12 images, less the warm-up batch
    for measure in ("forward", "end_to_end"):
        assert set(result[measure]) == {"1", "4"}
        for batch_size, numbers in result[measure].items():
            assert numbers["timed_batches"] == expected_batches[batch_size]
            assert numbers["images_per_s"] > 0
            assert 0 < numbers["latency_ms_p50"] <= numbers["latency_ms_p95"]
    assert report["peak_rss_mib"] >= result["peak_rss_mib"] > 0
    assert "end_to_end" in capsys.readouterr().out


def test_bench_speed_on_larger_files_than_the_crop(tiny_detector_dir, tmp_path, single_torch_thread):
    output = tmp_path / "speed.json"
    assert main(["bench-speed", "--model", str(tiny_detector_dir), "--images", "6", "--batch-sizes", "1,2",
                 "--warmup", "1", "--input-side", "96", "--output", str(output)]) == 0
    [result] = json.loads(output.read_text())["models"]
    assert (result["image_size"], result["input_side"]) == (32, 96)
    assert result["end_to_end"]["2"]["timed_batches"] == 2


def test_bench_speed_refuses_too_few_images(tiny_detector_dir, tmp_path, capsys):
    assert main(["bench-speed", "--model", str(tiny_detector_dir), "--images", "8", "--output",
                 str(tmp_path / "speed.json")]) == 2
    assert "images" in capsys.readouterr().err


@pytest.mark.parametrize("batch_size", [1, 4])
def test_worker_threads_give_identical_outputs_in_order(detector, mixed_folder, batch_size):
    files = [str(path) for path in sorted(mixed_folder.iterdir())]
    serial = list(detector((file for file in files), batch_size=batch_size, num_workers=0))
    threaded = list(detector((file for file in files), batch_size=batch_size, num_workers=2))
    assert len(serial) == len(threaded) == len(files)
    assert threaded == serial  # same errors at the same places, bit-identical scores
    errors = [output for output in threaded if isinstance(output, dict)]
    assert errors and len(errors) < len(files)
    assert all(file.split("/")[-1] in output["error"] for file, output in zip(files, threaded)
               if isinstance(output, dict))


def test_worker_threads_raise_where_the_bad_input_is(detector, bad_image_corpus):
    from aigi.image_io import ImageLoadError

    files = [str(bad_image_corpus["normal_jpeg"].path), str(bad_image_corpus["truncated_jpeg"].path)]
    with pytest.raises(ImageLoadError, match="truncated"):
        list(detector((file for file in files), batch_size=1, num_workers=2, on_error="raise"))


def test_preprocess_in_threads_reads_only_a_bounded_lookahead():
    read = []

    def inputs():
        for index in range(100):
            read.append(index)
            yield index

    results = preprocess_in_threads(lambda item, scale: item * scale, inputs(), {"scale": 3}, num_workers=2,
                                    lookahead=5)
    assert [next(results) for _ in range(3)] == [0, 3, 6]
    assert len(read) <= 3 + 5
    assert list(results) == [3 * index for index in range(3, 100)]
