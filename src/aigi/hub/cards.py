"""Model cards: one Jinja template per family (`card_templates/<family>.md`), YAML from `ModelCardData`, and
`model-index` results from an `aigi evaluate` metrics.json."""

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

CARD_TEMPLATES_DIR = Path(__file__).parent / "card_templates"
SHARED_SECTIONS = ("usage", "licence")
"""Sections every family's card has, rendered from `card_templates/_<name>.md` and passed to the family template."""
TASK_NAME = "AI-generated image detection"

# metrics.json key -> (model-index metric type, display name); "{threshold}" is filled in.
METRICS = {
    "auroc": ("roc_auc", "AUROC"),
    "ap": ("average_precision", "AP"),
    "acc": ("accuracy", "Acc@{threshold}"),
    "real_acc": ("real_accuracy", "real accuracy@{threshold}"),
    "fake_acc": ("fake_accuracy", "fake accuracy@{threshold}"),
    "tpr_at_5fpr": ("tpr_at_5fpr", "TPR@5%FPR"),
    "eer": ("eer", "EER"),
}
PER_GENERATOR_METRICS = ("auroc", "ap")
FAMILY_TAGS = {"gensign": ["clip"], "synerdetect": ["clip", "stable-diffusion"], "univfd": ["clip"]}


@dataclass(frozen=True)
class Evaluation:
    """An `aigi evaluate` report and what its metrics.json does not record: which data, split and protocol."""

    metrics_file: str | Path
    dataset_name: str
    dataset_id: str
    split: str = "test"
    protocol: str = "normalized"

    def metrics(self) -> dict:
        return json.loads(Path(self.metrics_file).read_text())


def eval_results(evaluation: Evaluation) -> list[EvalResult]:
    """Pooled metrics, then AUROC and AP per generator (as the dataset config: all reals + that generator's fakes)."""
    metrics = evaluation.metrics()
    threshold = metrics["threshold"]
    rows = [(None, metrics["pooled"], list(METRICS))]
    rows += [(generator, values, PER_GENERATOR_METRICS) for generator, values in metrics["per_generator"].items()]
    results = []
    for generator, values, keys in rows:
        for key in keys:
            metric_type, metric_name = METRICS[key]
            results.append(
                EvalResult(
                    task_type="image-classification",
                    task_name=TASK_NAME,
                    dataset_type=evaluation.dataset_id,
                    dataset_name=evaluation.dataset_name,
                    dataset_split=evaluation.split,
                    dataset_config=generator,
                    dataset_args={"protocol": evaluation.protocol, "n_real": values["n_real"],
                                  "n_fake": values["n_fake"]},
                    metric_type=metric_type,
                    metric_name=metric_name.format(threshold=f"{threshold:g}"),
                    metric_value=round(float(values[key]), 4),
                    metric_args={"threshold": threshold} if "{threshold}" in metric_name else None,
                )
            )
    return results


def evaluation_table(evaluation: Evaluation) -> str:
    """Markdown: the pooled row and one row per generator, every metric of metrics.json."""
    metrics = evaluation.metrics()
    keys = list(METRICS)
    names = [METRICS[key][1].format(threshold=f"{metrics['threshold']:g}") for key in keys]
    lines = [
        (
            f"On **{evaluation.dataset_name}** (`{evaluation.dataset_id}`, split `{evaluation.split}`, protocol "
            f"`{evaluation.protocol}`), measured with `aigi evaluate`. Per-generator rows use all real images plus "
            "that generator's fakes."
        ),
        "",
        "| | " + " | ".join(names) + " | real | fake |",
        "|---|" + "---:|" * (len(keys) + 2),
    ]
    rows = [("pooled", metrics["pooled"]), *metrics["per_generator"].items()]
    for label, values in rows:
        cells = [f"{values[key]:.3f}" for key in keys] + [str(values["n_real"]), str(values["n_fake"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_model_card(
    config,
    *,
    model_name: str,
    repo_id: str | None = None,
    evaluation: Evaluation | None = None,
    training_data: str = "Not recorded with this checkpoint.",
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
    data_license: str = "See the dataset card of the training data.",
) -> ModelCard:
    """The card of a detector with this `config`, from its family's template."""
    family = config.model_type
    template = CARD_TEMPLATES_DIR / f"{family}.md"
    if not template.is_file():
        raise ValueError(f"no model card template for family {family!r} in {CARD_TEMPLATES_DIR}")
    card_data = ModelCardData(
        model_name=model_name,
        license=license,
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["ai-image-detection", "aigi", family, *FAMILY_TAGS.get(family, []), "custom_code"],
        datasets=datasets,
        eval_results=eval_results(evaluation) if evaluation else None,
    )
    values = {
        "model_name": model_name,
        "model_id": repo_id or model_name,
        "decision_threshold": float(config.decision_threshold),
        "image_size": int(config.image_size),
        "backbone": getattr(config, "backbone", None),
        "feature_pooling": getattr(config, "feature_pooling", None),
        "input_views": list(getattr(config, "input_views", None) or ["image"]),
        "evaluation": evaluation_table(evaluation) if evaluation else None,
        "training_data": training_data,
        "license": license,
        "data_license": data_license,
    }
    for section in SHARED_SECTIONS:
        values[section] = jinja2.Template((CARD_TEMPLATES_DIR / f"_{section}.md").read_text()).render(**values)
    return ModelCard.from_template(card_data, template_path=str(template), **values)


def training_data_from_run(model_dir: str | Path) -> str | None:
    """What `training_args.json` (saved by `aigi train` in the run folder, the parent of `final/`) says was used."""
    for folder in (Path(model_dir), Path(model_dir).parent):
        arguments_file = folder / "training_args.json"
        if arguments_file.is_file():
            arguments = json.loads(arguments_file.read_text())
            described = ", ".join(
                f"`{key}`: `{arguments[key]}`" for key in ("task", "train_data", "max_steps", "samples_per_class")
                if arguments.get(key) is not None
            )
            return f"From the run's `training_args.json`: {described}."
    return None
