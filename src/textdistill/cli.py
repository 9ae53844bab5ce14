"""The command-line layer: each command parses its arguments, calls one library function and reports."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from textdistill.config import ConfigError, dump_config, load_config

logger = logging.getLogger("textdistill")

UVICORN_LOG_LEVELS = ["debug", "info", "warning", "error"]


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config file (defaults when omitted)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set student.arch.hidden_size=256 (repeatable)",
    )


def _config(args: argparse.Namespace):
    """The loaded config, fully validated (student names and arch keys too) before any stage runs."""
    from textdistill.plans import validate_config

    config = load_config(args.config, args.overrides)
    validate_config(config)
    return config


def cmd_config_show(args: argparse.Namespace) -> None:
    sys.stdout.write(dump_config(_config(args)))


def cmd_config_reference(args: argparse.Namespace) -> None:
    from textdistill.config import reference_markdown

    sys.stdout.write(reference_markdown() + "\n")


def cmd_data(args: argparse.Namespace) -> None:
    from textdistill.pipeline import data_report, prepare_data

    config = _config(args)
    sys.stdout.write(json.dumps(data_report(config, prepare_data(config)), indent=2) + "\n")


def cmd_teacher(args: argparse.Namespace) -> None:
    from textdistill.pipeline import evaluate_teacher, logits_stage, prepare_data, teacher_stage

    config = _config(args)
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    summary = evaluate_teacher(prepared, model_dir, logits_stage(config, prepared, model_dir))
    if int(os.environ.get("RANK", "0")) > 0:  # the main process of a launch reports
        return
    sys.stdout.write(f"teacher: {model_dir}\n")
    for split in ("validation", "test"):
        metrics = summary[f"{split}_metrics"]
        sys.stdout.write(f"{split}: accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}\n")


def cmd_logits(args: argparse.Namespace) -> None:
    from textdistill.pipeline import (
        export_logits,
        logits_stage,
        prepare_data,
        teacher_representations_for,
        teacher_stage,
    )

    config = _config(args)
    prepared = prepare_data(config)
    model_dir = None if config.teacher.logits_dir else teacher_stage(config, prepared)
    logits = logits_stage(config, prepared, model_dir)
    teacher_representations_for(config, prepared, model_dir)  # made (or reused) now when a student uses them
    if args.export and model_dir is not None:
        from pathlib import Path

        export_logits(config, prepared, model_dir, logits, Path(args.export))
    if int(os.environ.get("RANK", "0")) > 0:  # the main process of a launch reports
        return
    for split, values in logits.items():
        sys.stdout.write(f"{split}: {values.shape[0]} rows\n")


def cmd_distill(args: argparse.Namespace) -> None:
    from textdistill.pipeline import distill

    for summary in distill(_config(args), only=args.only):
        test = summary["test"]
        sys.stdout.write(
            f"{summary['tag']}: test accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f}  "
            f"agreement {test.get('agreement', float('nan')):.4f}  params {summary['parameters']:,}  "
            f"-> {summary['model_dir']}\n"
        )


def cmd_run(args: argparse.Namespace) -> None:
    from textdistill.workflow import run

    config = _config(args)
    if args.out:
        config.out_dir = args.out
    metrics = run(config)
    if metrics is not None:  # None on the other processes of an accelerate launch
        sys.stdout.write(f"results: {config.out_dir}/results.md  (best student: {metrics['best_student']})\n")


def cmd_search(args: argparse.Namespace) -> None:
    from textdistill.search import search_stage

    config = _config(args)
    if args.out:
        config.out_dir = args.out
    for key in ("max_latency_ms", "max_mb", "trials"):
        if getattr(args, key) is not None:
            setattr(config.search, key, getattr(args, key))
    config.search.__post_init__()  # the command-line values are checked like the config's
    result = search_stage(config)
    chosen = result["chosen"]
    sys.stdout.write(
        f"chosen: trial {chosen['trial']} {chosen['candidate']} ({chosen['variant']}): validation accuracy "
        f"{chosen['validation_accuracy']:.4f}, test accuracy {chosen['test']['accuracy']:.4f}, "
        f"{chosen['latency_ms']:.3f} ms, {chosen['bytes'] / 1e6:.3f} MB -> {chosen['directory']}\n"
        f"pareto: {config.out_dir}/search/pareto.md\n"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from textdistill.bench import bench_directories
    from textdistill.config import BenchConfig
    from textdistill.data import DataConfig, load_dataset

    config = BenchConfig(runs=args.runs, batch_size=args.batch_size)
    data = load_dataset(DataConfig(path=args.data, use_unlabelled=False))
    result = bench_directories([Path(d) for d in args.model_dirs], config, data.test.texts[:256], args.lengths)
    if args.json:
        from textdistill.cache import atomic_write_json

        atomic_write_json(Path(args.json), result)
    sys.stdout.write(result["markdown"] + "\n")
    for name, table in result["profiles"].items():
        sys.stdout.write(f"\n### torch.profiler, {name}, one batch of {args.batch_size}\n{table}\n")


def cmd_serve(args: argparse.Namespace) -> None:
    from textdistill.serve import serve

    serve(
        args.model_dir,
        args.host,
        args.port,
        onnx_file=args.onnx_file,
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        num_threads=args.num_threads,
        log_level=args.log_level,
    )


def _as_bytes(text: str) -> bytes:
    """The bytes behind a str from argv or a text stream (undecodable bytes arrive as surrogate escapes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escape (e.g. \ud800): make it undecodable bytes too
        return text.encode("utf-8", "surrogatepass")


def _listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:20])) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _stdin_lines() -> list[bytes]:
    """stdin's lines as bytes without their line ends (every line, blank ones included, so output stays aligned)."""
    stream = getattr(sys.stdin, "buffer", None)
    lines = list(stream) if stream is not None else [_as_bytes(line) for line in sys.stdin]
    return [line.rstrip(b"\r\n") for line in lines]


def _decoded(raw: list[bytes], source: str) -> list[str]:
    """UTF-8 texts; undecodable bytes become U+FFFD, with one warning naming the affected lines (1-based)."""
    texts, replaced = [], []
    for number, line in enumerate(raw, start=1):
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(line.decode("utf-8", "replace"))
            replaced.append(number)
    if replaced:
        logger.warning("%s(s) %s: not valid UTF-8; undecodable bytes replaced with U+FFFD", source, _listed(replaced))
    return texts


def _prediction_records(student, texts: list[str], source: str) -> list[dict]:
    """One JSON record per text, in order: a prediction, or ``{"text", "error"}`` for a text that cannot be
    classified (empty, whitespace-only), with a warning naming those lines."""
    from textdistill.students.hub import text_problem

    problems = [text_problem(text) for text in texts]
    valid = [text for text, problem in zip(texts, problems, strict=True) if problem is None]
    predictions = iter(student.predict(valid) if valid else [])
    refused = [number for number, problem in enumerate(problems, start=1) if problem]
    if refused:
        logger.warning("%s(s) %s: not classified; an error record is printed for each", source, _listed(refused))
    return [
        {"text": text[:80], "error": f"{source} {number} {problem}"}
        if problem
        else {"text": text[:80], **next(predictions)}
        for number, (text, problem) in enumerate(zip(texts, problems, strict=True), start=1)
    ]


def cmd_predict(args: argparse.Namespace) -> None:
    from textdistill.students.hub import Student

    student = Student.from_pretrained(args.model_dir)
    raw, source = ([_as_bytes(text) for text in args.texts], "argument") if args.texts else (_stdin_lines(), "line")
    if not raw:
        raise ValueError("no text given: pass texts as arguments or one per line on stdin")
    for record in _prediction_records(student, _decoded(raw, source), source):
        sys.stdout.write(json.dumps(record) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textdistill", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="inspect configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="print the resolved config")
    _add_config_arguments(show)
    show.set_defaults(func=cmd_config_show)
    reference = config_commands.add_parser("reference", help="every config key, its default and meaning (markdown)")
    reference.set_defaults(func=cmd_config_reference)

    for name, func, help_text in [
        ("data", cmd_data, "load, split, tokenise and embed; print data statistics"),
        ("teacher", cmd_teacher, "fine-tune and evaluate the teacher, and compute its logits"),
        ("logits", cmd_logits, "compute (or reuse) the teacher's logits for every split"),
        ("distill", cmd_distill, "train the configured student(s) from the teacher's logits"),
        ("run", cmd_run, "the whole pipeline: data, teacher, logits, students, compression, benchmark, report"),
    ]:
        sub = commands.add_parser(name, help=help_text)
        _add_config_arguments(sub)
        sub.set_defaults(func=func)
        if name == "distill":
            sub.add_argument("--only", action="append", metavar="TAG", help="train only this student tag (repeatable)")
        if name == "run":
            sub.add_argument("--out", help="run directory (overrides out_dir)")
        if name == "logits":
            sub.add_argument("--export", help="also write float16 logits and a manifest to this directory")
    search = commands.add_parser(
        "search", help="sweep students under a latency and size budget (Optuna multi-objective); Pareto front"
    )
    _add_config_arguments(search)
    search.add_argument(
        "--max-latency-ms", type=float, help="budget: batch-1 ms on one thread (search.max_latency_ms)"
    )
    search.add_argument("--max-mb", type=float, help="budget: megabytes of the model file (search.max_mb)")
    search.add_argument("--trials", type=int, help="candidates screened (search.trials)")
    search.add_argument("--out", help="run directory (overrides out_dir); the search writes to OUT/search")
    search.set_defaults(func=cmd_search)

    predict = commands.add_parser("predict", help="classify texts with a saved student")
    predict.add_argument("model_dir", help="a student directory saved by textdistill")
    predict.add_argument("texts", nargs="*", help="texts to classify (one per line on stdin when omitted)")
    predict.set_defaults(func=cmd_predict)

    bench = commands.add_parser("bench", help="measure saved models side by side (params, bytes, latency, throughput)")
    bench.add_argument("model_dirs", nargs="+", help="student and/or teacher directories")
    bench.add_argument("--data", required=True, help="dataset whose test texts are the benchmark inputs")
    bench.add_argument("--lengths", type=int, nargs="*", help="input lengths (default: each model's own)")
    bench.add_argument("--runs", type=int, default=100, help="timed batch-1 runs per measurement")
    bench.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput measurement")
    bench.add_argument("--json", help="also write the results as JSON here")
    bench.set_defaults(func=cmd_bench)

    serve = commands.add_parser("serve", help="serve a student over HTTP (JSON API: /health, /predict)")
    serve.add_argument("model_dir")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--onnx-file", help="serve this ONNX file of the student directory (e.g. model.int8.onnx)")
    serve.add_argument("--max-texts", type=int, default=64, help="texts per request")
    serve.add_argument("--max-chars", type=int, default=20000, help="characters per text")
    serve.add_argument("--num-threads", type=int, help="torch threads (default: torch's)")
    serve.add_argument(
        "--log-level", default="info", type=str.lower, choices=UVICORN_LOG_LEVELS, help="uvicorn log level"
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) > 0:  # the other processes of a launch: warnings only, one log per launch
        level = logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
