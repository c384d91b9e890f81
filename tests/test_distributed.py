"""Sharding `aigi detect` / `aigi evaluate` over the processes of `accelerate launch`: the shard/merge logic, and two
CPU processes giving exactly the single-process output."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from transformers import pipeline

from aigi.cli import main
from aigi.inference.distributed import batch_shard, merge_shards, score_in_shards
from aigi.inference.scoring import score_sources


def batches_of(items: list, batch_size: int) -> list[list]:
    return [items[start:start + batch_size] for start in range(0, len(items), batch_size)]


def score_recording_batches(batch_size: int):
    """A stand-in for `score_sources`: each output is (input, the batch it was scored in)."""
    def score(sources: list) -> list:
        return [(source, tuple(batch)) for batch in batches_of(sources, batch_size) for source in batch]
    return score


def score_as_processes(score, sources: list, batch_size: int, num_processes: int) -> list:
    """What `score_in_shards` returns on every process of a launch, with the processes run one after another."""
    shard_outputs = [score(sources[batch_shard(len(sources), batch_size, index, num_processes)])
                     for index in range(num_processes)]
    return merge_shards(shard_outputs, len(sources))


@pytest.mark.parametrize(("count", "batch_size", "num_processes"), [
    (16, 2, 2),  # even
    (17, 2, 2),  # 9 batches, the last one short
    (17, 4, 3),  # 5 batches over 3 processes
    (5, 2, 8),   # more processes than batches
    (0, 4, 2),   # nothing to score
    (7, 16, 2),  # one short batch
])
def test_shards_are_whole_consecutive_batches_in_process_order(count, batch_size, num_processes):
    shards = [batch_shard(count, batch_size, index, num_processes) for index in range(num_processes)]
    positions = [position for shard in shards for position in range(count)[shard]]
    assert positions == list(range(count))
    batch_counts = [-(-len(range(count)[shard]) // batch_size) for shard in shards]
    assert max(batch_counts) - min(batch_counts) <= 1
    for shard in shards[:-1]:  # only the last process can end on the short batch
        assert len(range(count)[shard]) % batch_size == 0


@pytest.mark.parametrize(("count", "batch_size", "num_processes"), [(17, 2, 2), (17, 4, 3), (5, 2, 8), (9, 3, 1)])
def test_every_input_is_scored_in_its_single_process_batch_and_order(count, batch_size, num_processes):
    sources = [f"image_{index}" for index in range(count)]
    score = score_recording_batches(batch_size)
    assert score_as_processes(score, sources, batch_size, num_processes) == score(sources)


def test_merge_refuses_missing_outputs():
    with pytest.raises(RuntimeError, match="3 outputs for 4 inputs"):
        merge_shards([[1, 2], [3]], 4)


def test_batch_shard_validates_its_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        batch_shard(4, 0, 0, 1)
    with pytest.raises(ValueError, match="process_index"):
        batch_shard(4, 2, 2, 2)


def test_a_plain_process_scores_everything_itself():
    score = score_recording_batches(3)
    sources = list(range(7))
    assert score_in_shards(score, sources, batch_size=3) == score(sources)


@pytest.fixture
def folder_with_a_broken_file(detection_folder, tmp_path):
    """The detection folder plus a zero-byte PNG among the fakes: 17 files."""
    folder = shutil.copytree(detection_folder, tmp_path / "data")
    (folder / "fake" / "gen_a" / "broken.png").write_bytes(b"")
    return folder


def test_shards_of_the_pipeline_give_the_single_process_outputs_with_errors_in_place(
    tiny_detector_dir, folder_with_a_broken_file, single_torch_thread
):
    pipe = pipeline("ai-image-detection", model=str(tiny_detector_dir))
    sources = sorted(str(path) for path in folder_with_a_broken_file.rglob("*.*"))
    broken = sources.index(str(folder_with_a_broken_file / "fake" / "gen_a" / "broken.png"))

    def score(shard: list) -> list:
        return score_sources(pipe, shard, batch_size=2)

    single = score(sources)
    for num_processes in (2, 3):
        merged = score_as_processes(score, sources, 2, num_processes)
        assert merged == single  # exact float equality
        assert "error" in merged[broken]
        assert all(isinstance(output, list) for index, output in enumerate(merged) if index != broken)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_processes(*aigi_arguments: str) -> subprocess.CompletedProcess:
    """`accelerate launch` of `python -m aigi ...` in two CPU processes (gloo)."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "aigi", *aigi_arguments,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def test_detect_over_two_processes_prints_the_single_process_json(
    tiny_detector_dir, folder_with_a_broken_file, single_torch_thread, capsys
):
    arguments = ["detect", str(folder_with_a_broken_file), "--model", str(tiny_detector_dir), "--json",
                 "--batch-size", "2"]
    assert main(arguments) == 0
    single = json.loads(capsys.readouterr().out)
    launched = json.loads(launch_two_processes(*arguments).stdout)  # one JSON document: rank 1 printed nothing
    assert launched == single
    assert [row["path"] for row in launched] == sorted(row["path"] for row in launched)
    assert [row["path"].endswith("broken.png") for row in launched if row["error"]] == [True]


def test_evaluate_over_two_processes_writes_the_single_process_report(
    tiny_detector_dir, folder_with_a_broken_file, single_torch_thread, tmp_path, capsys
):
    def arguments(output: str) -> list[str]:
        return ["evaluate", "--model", str(tiny_detector_dir), "--data", str(folder_with_a_broken_file),
                "--output", output, "--batch-size", "2"]

    single_dir, launched_dir = tmp_path / "single", tmp_path / "launched"
    assert main(arguments(str(single_dir))) == 0
    single_stdout = capsys.readouterr().out
    launched = launch_two_processes(*arguments(str(launched_dir)))
    assert launched.stdout == single_stdout.replace(str(single_dir), str(launched_dir))
    assert sorted(path.name for path in launched_dir.iterdir()) == sorted(path.name for path in single_dir.iterdir())
    for name in ("metrics.json", "failures.json"):
        assert json.loads((launched_dir / name).read_text()) == json.loads((single_dir / name).read_text())
    assert (launched_dir / "predictions.csv").read_text() == (single_dir / "predictions.csv").read_text()
