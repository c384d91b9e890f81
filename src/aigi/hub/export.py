"""`aigi export`: a Hub-ready folder (weights, config with auto_map, image processor, remote code, model card) and
its upload with `huggingface_hub`."""

from pathlib import Path

from huggingface_hub import HfApi

from .cards import Evaluation, render_model_card, training_data_from_run


def export_model(
    model: str,
    output_dir: str | Path,
    *,
    evaluation: Evaluation | None = None,
    repo_id: str | None = None,
    training_data: str | None = None,
    license: str = "apache-2.0",
    data_license: str = "See the dataset card of the training data.",
) -> Path:
    """Write `model` (bundled name, directory or Hub id) to the empty or new `output_dir`, loadable without aigi.

    The folder holds `config.json` (with `auto_map`), `model.safetensors`, `preprocessor_config.json`, the family's
    `configuration_*.py`, `modeling_*.py` and `image_processing_*.py`, and `README.md`: the model card, with the
    measured results of `evaluation` when given.
    """
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from ..registry import resolve_model

    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"{output} is not empty: export into a new or empty folder")
    source = resolve_model(model)
    detector = AutoModelForImageClassification.from_pretrained(source)
    processor = AutoImageProcessor.from_pretrained(source)
    detector.save_pretrained(output)
    processor.save_pretrained(output)
    card = render_model_card(
        detector.config,
        model_name=repo_id.split("/")[-1] if repo_id else output.resolve().name,
        repo_id=repo_id,
        evaluation=evaluation,
        training_data=training_data or training_data_from_run(source) or "Not recorded with this checkpoint.",
        license=license,
        data_license=data_license,
    )
    card.save(output / "README.md")
    return output


def push_folder(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = False) -> str:
    """Create the model repo if needed and upload `folder` in one commit; returns the commit URL.

    The token is `token`, else the `HF_TOKEN` environment variable or the login of `hf auth login`.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, repo_type="model", folder_path=str(folder), commit_message="Upload detector exported by aigi",
    )
    return commit.commit_url
