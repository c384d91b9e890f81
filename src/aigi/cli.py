"""The `aigi` command: detect, evaluate, bench-speed, train, fit-head, fewshot, feature-map, models, demo, export,
export-space."""

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigi", description="Tell real photographs from AI-generated images.")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="Score image files and folders (recursive): P(fake) per image.")
    detect.add_argument("paths", nargs="*", help="Image files and/or folders.")
    detect.add_argument("--model", default=None, help="Bundled name, local directory or Hub id.")
    detect.add_argument("--threshold", type=float, default=None, help="Default: the model's calibrated threshold.")
    detect.add_argument("--batch-size", type=int, default=16)
    detect.add_argument("--num-workers", type=int, default=None,
                        help="Threads decoding images ahead of the model (default min(4, CPUs); 0: none).")
    detect.add_argument("--data", default=None,
                        help="Instead of paths: a labelled folder, manifest, saved dataset or Parquet shards, read "
                             "lazily (needs --output).")
    detect.add_argument("--split", default=None, help="Split of --data.")
    detect.add_argument("--output", default=None,
                        help="Stream the rows to this .csv or .jsonl file as they are scored (constant memory).")
    add_crop_arguments(detect)
    detect.add_argument("--heatmaps", metavar="DIR", default=None,
                        help="Also write one PNG per image to DIR: the P(fake) of each crop over the image (use with "
                             "--num-crops, e.g. 16; not with --output/--data).")
    output_format = detect.add_mutually_exclusive_group()
    output_format.add_argument("--json", action="store_true", help="Print a JSON list.")
    output_format.add_argument("--csv", action="store_true", help="Print CSV.")

    evaluate = commands.add_parser("evaluate", help="Metrics of a detector on a labelled folder or saved dataset.")
    evaluate.add_argument("--model", required=True, help="Bundled name, local directory or Hub id.")
    evaluate.add_argument("--data", required=True, help="real/ + fake/<generator>/ folder, manifest or saved dataset.")
    evaluate.add_argument(
        "--protocol", default="normalized",
        help="Evaluation protocol (default: normalized), a comma-separated list, or 'robustness' (normalized and "
             "every degradation of the robustness suite). Several protocols write one subfolder each, plus "
             "robustness.json, robustness.md and robustness.png.",
    )
    evaluate.add_argument("--output", required=True, help="Folder for metrics.json, metrics.md and plots.")
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--split", default=None, help="Split of a saved DatasetDict (default: test).")
    add_crop_arguments(evaluate)

    for name, help_text in (
        ("fit-head", "Fit a head (prototype, kNN bank, logistic, SVM) on a frozen FiSeR encoder: a new detector."),
        ("fewshot", "Few-shot adaptation: an RBF SVM (or logistic) head on k images per class of a new domain."),
    ):
        few_shot = name == "fewshot"
        head = commands.add_parser(name, help=help_text)
        head.add_argument("--model", required=True, help="FiSeR encoder or detector (a `--task fiser` run's final/).")
        head.add_argument("--data", required=True, help="Labelled folder, manifest or saved dataset.")
        head.add_argument("--output", required=True, help="Folder of the new detector checkpoint.")
        head.add_argument("--head", default="svm" if few_shot else "prototype",
                          help="svm (default) or logistic" if few_shot else "prototype (default), knn, logistic or svm")
        head.add_argument("--shots", type=int, default=10 if few_shot else None,
                          help=f"Images per class drawn from the data (default: {10 if few_shot else 'all'}).")
        head.add_argument("--fake-generators", default=None,
                          help="Comma-separated generators whose fakes are used (default: all); reals are always used.")
        head.add_argument("--split", default=None, help="Split of the data (e.g. train).")
        head.add_argument("--protocol", default="raw", help="Protocol applied before features (default raw).")
        head.add_argument("--knn-k", type=int, default=None, help="kNN head: neighbours (default 25).")
        head.add_argument("--logistic-c", type=float, default=1.0,
                          help="Logistic head: inverse L2 regularisation strength (default 1).")
        head.add_argument("--standardize", action="store_true",
                          help="Logistic head: fit on standardised features (the scaling is folded into the head).")
        head.add_argument("--balance-sources", action="store_true",
                          help="Logistic head: every source group of a class weighs the same in the fit (records' "
                               "source; see aigi.data.sources).")
        head.add_argument("--seed", type=int, default=0)
        head.add_argument("--batch-size", type=int, default=32)

    feature_map = commands.add_parser("feature-map", help="t-SNE picture of a detector's features, per generator.")
    feature_map.add_argument("--model", required=True, help="Bundled name, local directory or Hub id.")
    feature_map.add_argument("--data", required=True, help="Labelled folder, manifest or saved dataset.")
    feature_map.add_argument("--output", required=True, help="PNG file to write (plus a .json of the embedding).")
    feature_map.add_argument("--split", default=None)
    feature_map.add_argument("--protocol", default="normalized")
    feature_map.add_argument("--max-per-generator", type=int, default=200, help="Images per generator (and reals).")
    feature_map.add_argument("--seed", type=int, default=0)

    benchmark = commands.add_parser(
        "benchmark", help="Train or load each detector of a config (and its zero-fake variant), evaluate each on each "
                          "dataset and protocol: leaderboard.md, results.json and plots. Resumable.")
    benchmark.add_argument("--config", required=True, help="YAML or JSON (see aigi.evaluation.benchmark).")
    benchmark.add_argument("--only", default=None, help="Comma-separated detector names of the config to run.")

    bench_speed = commands.add_parser(
        "bench-speed", help="Images/s and latency p50/p95 of detectors on this machine: model alone and end to end.")
    bench_speed.add_argument("--model", action="append", required=True,
                             help="Bundled name or local directory; repeat for several.")
    bench_speed.add_argument("--images", type=int, default=256, help="Generated JPEG files per detector.")
    bench_speed.add_argument("--batch-sizes", default="1,32", help="Comma-separated (default 1,32).")
    bench_speed.add_argument("--warmup", type=int, default=2, help="Batches run before timing (default 2).")
    bench_speed.add_argument("--num-workers", type=int, default=None,
                             help="Preprocessing threads end to end (default min(4, CPUs); 0: none).")
    bench_speed.add_argument("--input-side", type=int, default=None,
                             help="Side of the generated JPEG files (default: each detector's crop size), e.g. 1024.")
    bench_speed.add_argument("--output", required=True, help="JSON file to write.")

    models = commands.add_parser("models", help="List detector families and bundled checkpoints.")
    models.add_argument("--json", action="store_true")

    commands.add_parser("samples", help="Print the folder of the bundled sample images.")

    demo = commands.add_parser("demo", help="Launch the Gradio demo on 127.0.0.1 (no share link, no analytics).")
    demo.add_argument("--model", action="append", default=[],
                      help="Detector to offer besides the bundled ones (name or directory); repeat for several.")
    demo.add_argument("--port", type=int, default=None, help="Default: the first free port from 7860.")

    export = commands.add_parser("export", help="Write a Hub-ready folder of a detector (loads without aigi).")
    export.add_argument("model", help="Bundled name, local directory or Hub id.")
    export.add_argument("output_dir", help="New or empty folder.")
    export.add_argument("--metrics", default=None, help="metrics.json of `aigi evaluate`: results for the card.")
    export.add_argument("--eval-dataset", default=None,
                        help="Name of the data --metrics was measured on (required with --metrics).")
    export.add_argument("--eval-dataset-id", default=None, help="Its Hub id or local name (default: --eval-dataset).")
    export.add_argument("--eval-split", default="test")
    export.add_argument("--eval-protocol", default="normalized", help="Its protocol (default normalized).")
    export.add_argument("--training-data", default=None,
                        help="Card text on the training data (default: from the run's training_args.json).")
    export.add_argument("--license", default="apache-2.0", help="Licence of the weights (default apache-2.0).")
    export.add_argument("--data-license", default="See the dataset card of the training data.",
                        help="Card text on the licences of the training and evaluation data.")
    export.add_argument("--push", metavar="REPO", default=None, help="Then upload the folder to this Hub model repo.")
    export.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the stored login).")
    export.add_argument("--private", action="store_true", help="Create the repo as private.")

    export_space = commands.add_parser(
        "export-space",
        help="Write a self-contained Hugging Face Space folder of the demo (app, aigi's code, detectors).")
    export_space.add_argument("output_dir", help="New or empty folder.")
    export_space.add_argument("--model", action="append", default=[],
                              help="Detector to ship (bundled name or local folder); repeat for several "
                                   "(default: the default detector).")
    commands.add_parser("train", help="Train a detector (same as `accelerate launch -m aigi.train`).", add_help=False)
    return parser


def add_crop_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--num-crops", type=int, default=None,
                         help="Score up to this many native-resolution crops spread over each image (default: the "
                              "detector's preprocessor_config.json, usually 1: the centre crop).")
    command.add_argument("--crop-aggregation", choices=("mean", "max", "median"), default=None,
                         help="How the crops' logits make the image's (default: the detector's, usually mean).")


def run_detect(args) -> int:
    from .inference.detect import detect_files, detect_to_file
    from .inference.distributed import is_main_process
    from .inference.rows import print_rows

    options = {"batch_size": args.batch_size, "threshold": args.threshold, "num_workers": args.num_workers,
               "num_crops": args.num_crops, "crop_aggregation": args.crop_aggregation}
    try:
        if args.output or args.data:
            if args.heatmaps:
                raise ValueError("--heatmaps draws the maps of image paths, not of --output/--data streams")
            if not args.output:
                raise ValueError("--data needs --output FILE (.csv or .jsonl)")
            written, errors = detect_to_file(
                args.model, args.output, paths=args.paths, data=args.data, split=args.split, **options
            )
            print(f"{written} rows ({errors} unreadable) written to {args.output}")
            return 1 if written and errors == written else 0
        if not args.paths:
            raise ValueError("give image files or folders (or --data with --output)")
        rows = detect_files(args.model, args.paths, heatmaps=args.heatmaps, **options)
    except (ValueError, FileNotFoundError) as error:
        print(f"aigi detect: {error}", file=sys.stderr)
        return 2
    if is_main_process():
        print_rows(rows, "json" if args.json else "csv" if args.csv else "text")
        if args.heatmaps:
            print(f"heat maps written to {args.heatmaps}", file=sys.stderr)
    return 1 if rows and all(row["error"] for row in rows) else 0


def run_evaluate(args) -> int:
    from .evaluation.report import format_markdown_table, format_robustness_table
    from .evaluation.runner import evaluate_detector, evaluate_robustness, parse_protocols
    from .inference.distributed import is_main_process

    try:
        protocols = parse_protocols(args.protocol)
    except ValueError as error:
        print(f"aigi evaluate: {error}", file=sys.stderr)
        return 2
    options = {"threshold": args.threshold, "batch_size": args.batch_size, "split": args.split,
               "num_crops": args.num_crops, "crop_aggregation": args.crop_aggregation}
    if len(protocols) == 1:
        result = evaluate_detector(args.model, args.data, args.output, protocol=protocols[0], **options)
        if not is_main_process():  # the main process of the launch reports
            return 0
        print(format_markdown_table(result))
        failures, failures_file = result["failures"], f"{args.output}/failures.json"
    else:
        robustness = evaluate_robustness(args.model, args.data, args.output, protocols=protocols, **options)
        if not is_main_process():
            return 0
        print(format_robustness_table(robustness["summary"]))
        # A file that cannot be read fails under every protocol.
        failures = robustness["results"][protocols[0]]["failures"]
        failures_file = f"{args.output}/{protocols[0]}/failures.json"
    if failures:
        print(f"{len(failures)} images could not be read: see {failures_file}")
    print(f"report written to {args.output}")
    return 0


def run_fit_head(args) -> int:
    from .train.heads import FEW_SHOT_HEADS, fit_head

    if args.command == "fewshot" and args.head not in FEW_SHOT_HEADS:
        print(f"aigi fewshot: --head must be one of {FEW_SHOT_HEADS}, got {args.head!r}", file=sys.stderr)
        return 2
    fake_generators = [name.strip() for name in args.fake_generators.split(",")] if args.fake_generators else None
    try:
        report = fit_head(
            args.model, args.data, args.output, head=args.head, split=args.split, shots=args.shots,
            fake_generators=fake_generators, protocol=args.protocol, seed=args.seed, batch_size=args.batch_size,
            knn_k=args.knn_k, logistic_c=args.logistic_c, standardize=args.standardize,
            balance_sources=args.balance_sources,
        )
    except ValueError as error:
        print(f"aigi {args.command}: {error}", file=sys.stderr)
        return 2
    print(f"{report.head} head fitted on {report.real_count} real + {report.fake_count} fake images "
          f"({len(report.failures)} unreadable); detector written to {args.output}")
    return 0


def run_feature_map(args) -> int:
    from .evaluation.features import write_feature_map

    count = write_feature_map(args.model, args.data, args.output, split=args.split, protocol=args.protocol,
                              max_per_generator=args.max_per_generator, seed=args.seed)
    print(f"feature map of {count} images written to {args.output}")
    return 0


def run_benchmark(args) -> int:
    from .evaluation.benchmark import run_benchmark as benchmark

    only = [name.strip() for name in args.only.split(",")] if args.only else None
    try:
        results = benchmark(args.config, only=only)
    except (ValueError, FileNotFoundError) as error:
        print(f"aigi benchmark: {error}", file=sys.stderr)
        return 2
    failed = [row["name"] for row in results["detectors"] if row["status"] != "ok"]
    print(f"{len(results['detectors']) - len(failed)} detectors evaluated; failed: {', '.join(failed) or 'none'}")
    return 0


def run_bench_speed(args) -> int:
    from .inference.speed import bench_speed, format_speed_table

    try:
        batch_sizes = tuple(int(size) for size in args.batch_sizes.split(","))
        report = bench_speed(args.model, images=args.images, batch_sizes=batch_sizes, warmup=args.warmup,
                             num_workers=args.num_workers, input_side=args.input_side)
    except (ValueError, FileNotFoundError) as error:
        print(f"aigi bench-speed: {error}", file=sys.stderr)
        return 2
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(format_speed_table(report))
    print(f"written to {args.output}")
    return 0


def run_models(args) -> int:
    from .registry import FAMILIES, bundled_checkpoints

    checkpoints = bundled_checkpoints()
    if args.json:
        print(json.dumps(checkpoints, indent=2))
        return 0
    print("Families:")
    for family in FAMILIES.values():
        print(f"  {family.name:12s} {family.paper}")
    print("Bundled checkpoints:")
    for checkpoint in checkpoints:
        size_mb = checkpoint["size_bytes"] / 1e6
        print(f"  {checkpoint['name']:24s} {checkpoint['family']:12s} {size_mb:8.1f} MB  {checkpoint['path']}")
    if not checkpoints:
        print("  (none yet: train one with `aigi train`, then pass its folder as --model)")
    return 0


def run_samples(args) -> int:
    from .registry import SAMPLES_DIR

    print(SAMPLES_DIR)
    return 0


def run_demo(args) -> int:
    from .demo import launch_demo

    try:
        launch_demo(args.model, port=args.port)
    except ValueError as error:
        print(f"aigi demo: {error}", file=sys.stderr)
        return 2
    return 0


def run_export(args) -> int:
    from .hub.cards import Evaluation
    from .hub.export import export_model, push_folder

    evaluation = None
    if args.metrics:
        if not args.eval_dataset:
            print("aigi export: --metrics needs --eval-dataset (the data it was measured on)", file=sys.stderr)
            return 2
        evaluation = Evaluation(
            metrics_file=args.metrics, dataset_name=args.eval_dataset,
            dataset_id=args.eval_dataset_id or args.eval_dataset, split=args.eval_split, protocol=args.eval_protocol,
        )
    try:
        folder = export_model(
            args.model, args.output_dir, evaluation=evaluation, repo_id=args.push, training_data=args.training_data,
            license=args.license, data_license=args.data_license,
        )
    except ValueError as error:
        print(f"aigi export: {error}", file=sys.stderr)
        return 2
    print(f"exported to {folder}: " + ", ".join(sorted(path.name for path in folder.iterdir())))
    if args.push:
        print(f"uploaded: {push_folder(folder, args.push, token=args.token, private=args.private)}")
    return 0


def run_export_space(args) -> int:
    from .hub.space import export_space

    try:
        folder = export_space(args.output_dir, args.model)
    except ValueError as error:
        print(f"aigi export-space: {error}", file=sys.stderr)
        return 2
    shipped = sorted(f"{path.relative_to(folder).as_posix()}{'/' if path.is_dir() else ''}"
                     for path in [*folder.iterdir(), *folder.glob("detectors/*")] if path.name != "detectors")
    print(f"Space folder written to {folder}: {', '.join(shipped)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":
        from .train import main as train_main

        train_main(argv[1:])
        return 0
    from .inference.distributed import end_launched_process

    args = build_parser().parse_args(argv)
    commands = {
        "detect": run_detect, "evaluate": run_evaluate, "fit-head": run_fit_head, "fewshot": run_fit_head,
        "feature-map": run_feature_map, "benchmark": run_benchmark, "models": run_models, "samples": run_samples, "demo": run_demo,
        "export": run_export, "export-space": run_export_space, "bench-speed": run_bench_speed,
    }
    exit_status = commands[args.command](args)
    end_launched_process(exit_status)
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
