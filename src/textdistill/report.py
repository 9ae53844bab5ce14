"""Run reports: results table (markdown), metrics.json and plots (PNG) in the run directory."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from textdistill.bench import all_cores
from textdistill.cache import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

logger = logging.getLogger(__name__)

COLUMNS = [
    ("model", "model", "{}"),
    ("accuracy", "test accuracy", "{:.4f}"),
    ("macro_f1", "test macro F1", "{:.4f}"),
    ("agreement", "agreement with teacher", "{:.4f}"),
    ("parameters", "parameters", "{:,}"),
    ("nonzero_parameters", "non-zero", "{:,}"),
    ("bytes", "bytes on disk", "{:,}"),
    ("latency_ms", "latency b=1, 1 thread (ms)", "{:.2f}"),
    ("throughput", "throughput b=32, all cores (reviews/s)", "{:.0f}"),
]


def _cell(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return pattern.format(value)


MULTI_LABEL_COLUMNS = [
    ("model", "model", "{}"),
    ("accuracy", "test subset accuracy", "{:.4f}"),
    ("micro_f1", "test micro F1", "{:.4f}"),
    *COLUMNS[2:3],
    ("agreement", "same label set as teacher", "{:.4f}"),
    *COLUMNS[4:],
]


def results_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the models of a run, one row each (missing values shown as –); multi-label rows (with
    ``micro_f1``) show subset accuracy, micro and macro F1 and label-set agreement."""
    columns = MULTI_LABEL_COLUMNS if any(row.get("micro_f1") is not None for row in rows) else COLUMNS
    header = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, dpi=120, format="png")
    plt.close(figure)
    atomic_write_bytes(path, image.getvalue())
    logger.info("wrote %s", path)
    return path


def plot_learning_curves(curves: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Validation accuracy and loss by epoch for each model (teacher and students)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = plt.cm.tab20(np.linspace(0, 1, 20))
    for index, (name, history) in enumerate(curves.items()):
        epochs = [h["epoch"] for h in history]
        color = colors[(2 * index) % 20 + (2 * index) // 20]
        left.plot(epochs, [h.get("val_accuracy", np.nan) for h in history], marker="o", color=color, label=name)
        right.plot(epochs, [h.get("val_loss", np.nan) for h in history], marker="o", color=color, label=name)
    left.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    right.set(xlabel="epoch", ylabel="validation loss (each model's own objective)", title="Validation loss")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(figure, path)


def plot_tradeoff(rows: list[dict[str, Any]], x_key: str, x_label: str, path: Path) -> Path:
    """Test accuracy against a cost (latency or bytes, log scale) for every model that has both."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figure, axis = plt.subplots(figsize=(9, 4.5))
    markers = "osD^vP*Xh<>"
    for index, row in enumerate(r for r in rows if r.get(x_key) and r.get("accuracy") is not None):
        axis.scatter(row[x_key], row["accuracy"], s=50, marker=markers[index % len(markers)], label=row["model"])
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set(xlabel=x_label, ylabel="test accuracy", title=f"Accuracy vs {x_label.split(' (')[0]}")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(figure, path)


def _sweep_score(row: dict[str, Any]) -> float:
    """A pruning-sweep row's accuracy, or (multi-label) macro F1."""
    return row["accuracy"] if "accuracy" in row else row["macro_f1"]


def plot_sparsity(sweep: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy against sparsity / amount pruned, one line per pruning method."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method in sorted({row["method"] for row in sweep}):
        points = sorted((r["sparsity"], _sweep_score(r)) for r in sweep if r["method"] == method)
        axis.plot([100 * p[0] for p in points], [p[1] for p in points], marker="o", label=method)
    axis.set(
        xlabel="pruned (%): weights for L1, hidden units / filters for structured",
        ylabel="validation accuracy" if "accuracy" in sweep[0] else "validation macro F1",
        title="Accuracy vs pruning",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def plot_confusions(matrices: dict[str, list[list[int]]], label_names: list[str], path: Path) -> Path:
    """Confusion matrices (rows: true label, columns: predicted), counts annotated."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 3.8), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], matrices.items(), strict=True):
        values = np.asarray(matrix)
        axis.imshow(values, cmap="Blues")
        for (i, j), count in np.ndenumerate(values):
            color = "white" if count > values.max() / 2 else "black"
            axis.text(j, i, f"{count:,}", ha="center", va="center", color=color)
        axis.set(
            xticks=range(len(label_names)),
            yticks=range(len(label_names)),
            xticklabels=label_names,
            yticklabels=label_names,
            xlabel="predicted",
            ylabel="true",
            title=name,
        )
    return _save(figure, path)


def write_report(
    out_dir: Path,
    rows: list[dict[str, Any]],
    curves: dict[str, list[dict[str, float]]],
    sweep: list[dict[str, Any]],
    confusions: dict[str, list[list[int]]],
    label_names: list[str],
    metrics: dict[str, Any],
    notes: list[str] | None = None,
    sections: list[str] | None = None,
    plots: dict[str, Path] | None = None,
) -> dict[str, Path]:
    """Write results.md, metrics.json and the PNG plots into ``out_dir``; returns the written paths.

    ``sections``: extra markdown lines (e.g. ``data_section``) placed after the tables, before the notes.
    ``plots``: PNG files already written into ``out_dir`` (e.g. ``plot_robustness``), linked after the others.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "learning_curves": plot_learning_curves(curves, out_dir / "learning_curves.png"),
        "accuracy_vs_latency": plot_tradeoff(
            rows, "latency_ms", "latency at batch 1, 1 thread (ms)", out_dir / "accuracy_vs_latency.png"
        ),
        "accuracy_vs_size": plot_tradeoff(rows, "bytes", "bytes on disk", out_dir / "accuracy_vs_size.png"),
    }
    if confusions:  # none for multi-label runs: per-label scores stand in for them
        paths["confusion_matrices"] = plot_confusions(confusions, label_names, out_dir / "confusion_matrices.png")
    if sweep:
        paths["accuracy_vs_sparsity"] = plot_sparsity(sweep, out_dir / "accuracy_vs_sparsity.png")
    paths |= plots or {}
    lines = ["# textdistill run results", "", results_table(rows), ""]
    if sweep:
        metric = "accuracy" if "accuracy" in sweep[0] else "macro F1"
        lines += ["## Pruning sweep (validation split)", "", f"| method | pruned | {metric} |", "| --- | --- | --- |"]
        lines += [f"| {r['method']} | {100 * r['sparsity']:.0f}% | {_sweep_score(r):.4f} |" for r in sweep]
        lines.append("")
    lines += sections or []
    lines += [f"- {note}" for note in notes or []]
    lines += ["", *[f"![{name}]({path.name})" for name, path in paths.items()], ""]
    atomic_write_text(out_dir / "results.md", "\n".join(lines))
    atomic_write_json(out_dir / "metrics.json", metrics)
    paths["results"] = out_dir / "results.md"
    return paths


def data_section(data: dict[str, Any]) -> list[str]:
    """Markdown lines for results.md from a data report (``data.json``): rows, fingerprints, bad rows,
    repeated texts within each split and texts shared with other splits (leaks), with any rows dropped."""
    duplicates = data.get("duplicates") or {}
    within, overlap, dropped = (duplicates.get(key, {}) for key in ("within_split", "overlap", "dropped"))
    lines = [
        "## Data",
        "",
        "| split | rows | fingerprint | bad rows dropped | repeats within split | also in (rows) | dropped as leaks |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, split in data.get("splits", {}).items():
        shared = ", ".join(f"{other}: {count:,}" for other, count in overlap.get(name, {}).items())
        cells = [name, f"{split['rows']:,}", split["fingerprint"], f"{split.get('dropped_rows', 0):,}"]
        cells += [_cell(within.get(name), "{:,}"), shared or "–", _cell(dropped.get(name), "{:,}")]
        lines.append("| " + " | ".join(cells) + " |")
    leaked = sum(sum(others.values()) for name, others in overlap.items() if not dropped.get(name))  # still there
    if duplicates:
        lines += ["", f"Texts compared after normalisation ({duplicates.get('normalisation', 'exact')})."]
    if leaked:
        lines.append(
            f"**{leaked:,} validation/test/unlabelled row(s) repeat a text of another split** (seen in training or "
            "in the transfer set): validation and test scores may be optimistic; `data.drop_overlap: true` drops them "
            "(`data.drop_unlabelled_overlap: true` the transfer set's only)."
        )
    return [*lines, ""]


def per_label_section(models: dict[str, dict[str, Any]], label_names: list[str]) -> list[str]:
    """Markdown lines: per label (one-vs-rest) test precision, recall, F1 and support of each model that has them
    (``models``: {model name: its test scores with ``per_label``})."""
    lines: list[str] = []
    for name, scores in models.items():
        per_label = scores.get("per_label")
        if not per_label:
            continue
        lines += [f"## Per label on test: {name}", "", "| label | precision | recall | F1 | support |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for index, label in enumerate(label_names):
            cells = [f"{per_label[key][index]:.4f}" for key in ("precision", "recall", "f1")]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {per_label['support'][index]:,} |")
        lines.append("")
    return lines


TEACHER_COLUMNS = [("accuracy", "{:.4f}"), ("macro_f1", "{:.4f}"), ("nll", "{:.4f}"), ("ece", "{:.4f}")]


def teachers_section(teachers: dict[str, Any]) -> list[str]:
    """Markdown lines for results.md from a teachers report (``teachers.json``, written by the pipeline when
    ``teachers:`` is set): per teacher and the ensemble, validation and test accuracy, macro F1, NLL and ECE; the
    chosen combiner; pairwise agreement; and whether each teacher's training-row targets are in-sample."""
    titles = [f"{split} {name}" for split in ("validation", "test") for name in ("accuracy", "macro F1", "NLL", "ECE")]
    lines = ["## Teachers", "", "Each teacher after its temperature calibration on validation.", ""]
    lines += ["| model | " + " | ".join(titles) + " |", "| --- " * (len(titles) + 1) + "|"]
    for model in [t["name"] for t in teachers["teachers"]] + ["ensemble"]:
        cells = [
            _cell(teachers[split]["models"][model].get(key), fmt)
            for split in ("validation", "test")
            for key, fmt in TEACHER_COLUMNS
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    combiner = teachers["combiner"]
    lines += ["", f"Combiner (chosen on validation only): **{combiner['method']}**; " + _combiner_text(combiner)]
    for split in ("validation", "test"):
        pairs = ", ".join(f"{pair} {value:.4f}" for pair, value in teachers[split]["agreement"].items())
        lines.append(f"Agreement on {split}: {pairs}.")
    lines += ["", "Training-row targets (what the students distill from on train):"]
    for teacher in teachers["teachers"]:
        accuracy = _cell(teacher.get("train_accuracy"), "{:.4f}")
        lines.append(f"- {teacher['name']} ({teacher['kind']}): {teacher['train_targets']}, train accuracy {accuracy}")
    return [*lines, ""]


def _combiner_text(combiner: dict[str, Any]) -> str:
    temperatures = ", ".join(f"{name} {t:.3f}" for name, t in combiner["temperatures"].items())
    text = f"temperatures {temperatures}"
    if combiner.get("weights"):
        text += "; weights " + ", ".join(f"{name} {w:.2f}" for name, w in combiner["weights"].items())
    held_out = combiner.get("held_out_validation_nll")
    if held_out:
        text += f"; held-out validation NLL weights {held_out['weights']:.4f} vs stacking {held_out['stacking']:.4f}"
    return text + "."


def run_teachers(config: Any) -> dict[str, Any] | None:
    """The run's teachers report (``teachers.json`` in the run directory), or None: none written, or written for
    other ``teachers:`` entries or other data than the run's ``data.json`` (a stale file of an earlier run)."""
    path, data_path = Path(config.out_dir) / "teachers.json", Path(config.out_dir) / "data.json"
    if not config.teachers or not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    if data_path.is_file():
        splits = json.loads(data_path.read_text(encoding="utf-8")).get("splits", {})
        if report.get("data") != {name: split.get("fingerprint") for name, split in splits.items()}:
            return None
    return report if report.get("entries") == config.teachers else None


# ---------------------------------------------------------------------------------------------------
# Robustness checks (robustness.json, written by pipeline.robustness_stage)


def _robustness_table(robustness: dict[str, Any], key: str, models: list[str], kinds: tuple[str, ...]) -> list[str]:
    """One row per check of ``kinds``, one column per model of ``models``: the score ``key`` (– where absent)."""
    lines = ["| check | rows | " + " | ".join(models) + " |", "| --- " * (len(models) + 2) + "|"]
    for index, check in enumerate(robustness["checks"]):
        if check["kind"] not in kinds:
            continue
        size = robustness["models"][models[0]][index]["examples"]
        cells = [_cell(robustness["models"][m][index].get(key), "{:.3f}") for m in models]
        lines.append(f"| {check['name']} | {size:,} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def robustness_section(robustness: dict[str, Any]) -> list[str]:
    """Markdown lines for results.md: per check, each model's accuracy against the expected label (teacher and
    students side by side), the unchanged-prediction share on the invariance checks and agreement with the
    teacher; then what each check is, with an example."""
    models = list(robustness["models"])
    students = [m for m in models if m != "teacher"]
    kinds = ("slice", "flip", "invariance", "domain")
    lines = [
        "## Robustness",
        "",
        "Behavioural checks built from the validation split only (never test), and domain checks from other "
        "datasets (`report.domain_checks`), the same rows for every model; positive label: "
        f"`{robustness['positive_label']}`. Accuracy against the label each text should get:",
        "",
        *_robustness_table(robustness, "accuracy", models, kinds),
        "Flip checks, accuracy on the rows whose unedited sentence the model got right:",
        "",
        *_robustness_table(robustness, "accuracy_where_original_right", models, ("flip",)),
        "Invariance checks, share of predictions unchanged by the neutral edit:",
        "",
        *_robustness_table(robustness, "consistency", models, ("invariance",)),
    ]
    if "teacher" in models and students:
        lines += ["Agreement with the teacher on the edited texts:", ""]
        lines += _robustness_table(robustness, "agreement_with_teacher", students, kinds)
    lines += ["Checks:", ""]
    for check in robustness["checks"]:
        example = check["sample"][0] if check["sample"] else {}
        shown = f" e.g. {example.get('original', '')!r} → {example['text']!r}" if "original" in example else ""
        lines.append(f"- **{check['name']}** ({check['kind']}): {check['description']}.{shown}"[:600])
    lines += [f"- {note}" for note in robustness.get("notes", [])]
    return [*lines, ""]


def plot_robustness(robustness: dict[str, Any], path: Path) -> Path:
    """Grouped bars: accuracy on each check (x) for each model (teacher first), on the validation-built checks."""
    models, checks = list(robustness["models"]), [c["name"] for c in robustness["checks"]]
    figure, axis = plt.subplots(figsize=(max(8.0, 1.3 * len(checks)), 4.8))
    width = 0.8 / max(1, len(models))
    positions = np.arange(len(checks))
    for index, model in enumerate(models):
        values = [score["accuracy"] for score in robustness["models"][model]]
        axis.bar(positions + (index - (len(models) - 1) / 2) * width, values, width, label=model)
    axis.set_xticks(positions)
    sizes = [score["examples"] for score in robustness["models"][models[0]]]
    ticks = [name.replace(": ", ":\n") + f"\n({size:,})" for name, size in zip(checks, sizes, strict=True)]
    axis.set_xticklabels(ticks, fontsize=8)
    axis.set(ylim=(0, 1), ylabel="accuracy (expected label)", title="Robustness checks (built from validation)")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------------
# A whole run's report


def _bench_pick(bench: list[dict[str, Any]], model: str, length: int, single_thread: bool) -> dict[str, Any]:

    threads = 1 if single_thread else all_cores()
    for row in bench:
        if row["model"] == model and row["length"] == length and row["device"] == "cpu" and row["threads"] == threads:
            return row
    return {}


_DEPLOY_VARIANTS = (("vocabulary-pruned", "vocabulary-pruned"), ("onnx", "onnx"), ("onnx-int8", "onnx int8"))


def _report_rows(config: Any, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One results-table row per model: test quality and efficiency at the model's own input length."""
    rows = []
    teacher = metrics["teacher"]
    if teacher:
        rows.append(
            _row(
                metrics["bench"],
                "teacher",
                config.tokens.teacher_max_length,
                _accuracy(teacher["test_metrics"]),
                teacher["test_metrics"]["macro_f1"],
                None,
                teacher["test_metrics"].get("micro_f1"),
            )
        )
    for summary in metrics["students"]:
        length = summary["tokens"]["max_length"]
        test = summary["test"]
        rows.append(
            _row(
                metrics["bench"],
                summary["tag"],
                length,
                _accuracy(test),
                test["macro_f1"],
                test.get("agreement"),
                test.get("micro_f1"),
            )
        )
        compressed = metrics["compress"]["students"].get(summary["tag"], {})
        scores = dict(compressed.get("scores", {}))
        if compressed.get("onnx_parity") is not None:  # float ONNX = the exported student within the parity bound
            scores["onnx"] = scores.get("vocabulary-pruned", scores.get("float"))
        for variant, name in _DEPLOY_VARIANTS:
            if variant in scores:
                s = scores[variant]
                rows.append(
                    _row(
                        metrics["bench"],
                        f"{summary['tag']} {name}",
                        length,
                        _accuracy(s),
                        s["macro_f1"],
                        s.get("agreement"),
                        s.get("micro_f1"),
                    )
                )
    return rows


def _accuracy(scores: dict[str, Any]) -> float | None:
    """Accuracy, or for multi-label scores the subset accuracy (every label of the set right)."""
    return scores.get("accuracy", scores.get("subset_accuracy"))


def _row(bench, model: str, length: int, accuracy, macro_f1, agreement_value, micro_f1=None) -> dict[str, Any]:
    single, multi = _bench_pick(bench, model, length, True), _bench_pick(bench, model, length, False)
    return {
        "model": f"{model} ({length} tokens)",
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "micro_f1": micro_f1,
        "agreement": agreement_value,
        "parameters": single.get("parameters"),
        "nonzero_parameters": single.get("nonzero_parameters"),
        "bytes": single.get("bytes"),
        "latency_ms": single.get("latency_ms_p50"),
        "throughput": multi.get("throughput_per_s"),
    }


def _learning_curves(metrics: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    curves = {}
    teacher = metrics["teacher"] or {}
    evals = [h for h in teacher.get("log_history", []) if "eval_loss" in h]
    if evals:
        curves["teacher"] = [
            {"epoch": h["epoch"], "val_loss": h["eval_loss"], "val_accuracy": h.get("eval_accuracy")} for h in evals
        ]
    for summary in metrics["students"]:
        curves[summary["tag"]] = summary["training"]["history"]
    return curves


def _threshold_notes(metrics: dict[str, Any]) -> list[str]:
    """Multi-label runs: which decision thresholds each model uses (global vs per label, chosen on validation)."""
    chosen = {"teacher": (metrics["teacher"] or {}).get("thresholds")}
    chosen |= {s["tag"]: s.get("thresholds") for s in metrics["students"]}
    notes = []
    for name, thresholds in chosen.items():
        if thresholds:
            held_out = ", ".join(f"{k} {v:.4f}" for k, v in (thresholds.get("held_out_macro_f1") or {}).items())
            notes.append(
                f"{name} thresholds: {thresholds['method']} wins (held-out validation macro F1: {held_out}; "
                f"best global threshold {thresholds['global_threshold']:.2f})"
            )
    return notes


def _int8_notes(compressed: dict[str, Any]) -> list[str]:
    """Whether each student's ONNX int8 file shipped (it must agree with the float student on validation), which
    variant the measurement chose, and the vocabulary pruning's sizes."""
    notes = []
    for tag, entry in compressed["students"].items():
        if "int8" in entry:
            notes.append(f"{tag} ONNX int8: {entry['int8']} (agreement with the float student on validation)")
        check = entry.get("int8_check") or {}
        if check.get("chosen"):
            notes.append(
                f"{tag} deployable: {check['chosen']} (fastest at batch 1 on one thread here among the variants that "
                f"agree with the float student on validation; int8 file: {check['scope']} ops quantized)"
            )
        vocabulary = entry.get("vocabulary")
        if vocabulary:
            notes.append(
                f"{tag} vocabulary pruning (tokens seen >= {vocabulary['min_count']} times): "
                f"{vocabulary['kept_rows']:,} of {vocabulary['vocab_size']:,} embedding rows kept; weights "
                f"{vocabulary['bytes_before'] / 1e6:.2f} MB -> {vocabulary['bytes_after'] / 1e6:.2f} MB"
            )
    return notes


def write_run_report(config: Any, label_names: list[str], metrics: dict[str, Any]) -> None:
    """results.md, metrics.json and the plots of a whole run (``config``: its Config), from its metrics alone.

    With ``teachers:`` set, the run's ``teachers.json`` is added to ``metrics`` (key ``teachers``) and reported.
    """
    teachers = run_teachers(config)
    if teachers is not None:
        metrics["teachers"] = teachers
    best = next(s for s in metrics["students"] if s["tag"] == metrics["best_student"])
    confusions = {}
    if metrics["teacher"] and "confusion_matrix" in metrics["teacher"]["test_metrics"]:
        confusions["teacher"] = metrics["teacher"]["test_metrics"]["confusion_matrix"]
    if "confusion_matrix" in best["test"]:
        confusions[f"student: {best['tag']}"] = best["test"]["confusion_matrix"]
    rows = _report_rows(config, metrics)
    notes = [
        f"best student by validation {'macro F1' if 'micro_f1' in best['test'] else 'accuracy'}: {best['tag']}",
        *_threshold_notes(metrics),
        "latency: batch 1, 1 thread, median of the configured runs; throughput: batch "
        f"{config.bench.batch_size}, all cores; each model at its own input length",
        "onnx rows carry the float student's test scores: the export's parity check bounds the logit difference "
        "(max |Δlogit| in metrics.json, compress.students.*.onnx_parity)",
        "unstructured pruning leaves dense kernels as slow as before (see bench.json); speed comes from "
        "smaller dense models, int8 kernels and ONNX Runtime",
        *_int8_notes(metrics["compress"]),
    ]
    data_json = Path(config.out_dir) / "data.json"  # written by the run's data stage
    sections = data_section(json.loads(data_json.read_text(encoding="utf-8"))) if data_json.is_file() else []
    sections += teachers_section(teachers) if teachers is not None else []
    per_label = {"teacher": metrics["teacher"]["test_metrics"]} if metrics["teacher"] else {}
    sections += per_label_section(per_label | {f"student {best['tag']}": best["test"]}, label_names)
    robustness, plots = metrics.get("robustness") or {}, {}
    if robustness.get("models"):
        sections += robustness_section(robustness)
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        plots["robustness"] = plot_robustness(robustness, Path(config.out_dir) / "robustness.png")
    elif robustness.get("skipped"):
        notes.append(robustness["skipped"])
    write_report(
        Path(config.out_dir),
        rows,
        _learning_curves(metrics),
        metrics["compress"]["sweep"],
        confusions,
        label_names,
        metrics,
        notes,
        sections,
        plots,
    )
