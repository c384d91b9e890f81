"""The package's rooms: inference never reaches into evaluation or the CLI, and the old import paths of names that
moved to `aigi.inference` still work, with a DeprecationWarning, for one release."""

import ast
import importlib
from pathlib import Path

import pytest

import aigi

PACKAGE = Path(aigi.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the aigi modules that `path` imports (relative imports resolved)."""
    module = ".".join(("aigi", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            names.add(base)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("aigi")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "inference").glob("*.py")), ids=lambda path: path.name)
def test_inference_only_reads_the_layers_below_it(path):
    for name in imported_modules(path):
        assert not name.startswith(("aigi.evaluation", "aigi.cli", "aigi.train", "aigi.demo", "aigi.hub")), name


@pytest.mark.parametrize(("old_module", "name", "new_module", "new_name"), [
    ("aigi.pipeline", "fake_score", "aigi.inference.pipeline", "fake_score"),
    ("aigi.pipeline", "AIImageDetectionPipeline", "aigi.inference.pipeline", "AIImageDetectionPipeline"),
    ("aigi.distributed", "batch_shard", "aigi.inference.distributed", "batch_shard"),
    ("aigi.evaluation.streaming", "RowWriter", "aigi.inference.rows", "RowWriter"),
    ("aigi.evaluation.streaming", "file_entries", "aigi.inference.inputs", "file_entries"),
    ("aigi.evaluation.speed", "bench_speed", "aigi.inference.speed", "bench_speed"),
    ("aigi.evaluation.runner", "iter_scores", "aigi.inference.scoring", "score_stream"),
    ("aigi.evaluation.runner", "score_sources", "aigi.inference.scoring", "score_sources"),
])
def test_old_import_paths_warn_and_give_the_moved_object(old_module, name, new_module, new_name):
    with pytest.warns(DeprecationWarning, match=f"moved to {new_module}.{new_name}"):
        value = getattr(importlib.import_module(old_module), name)
    assert value is getattr(importlib.import_module(new_module), new_name)


def test_an_unknown_name_on_an_old_path_is_an_attribute_error():
    with pytest.raises(AttributeError):
        importlib.import_module("aigi.pipeline").no_such_name
