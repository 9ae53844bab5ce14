"""report: results.md, metrics.json and the plots of a run, written from a small hand-made metrics dict."""

from __future__ import annotations

import json
import math

import pytest

from textdistill.bench import all_cores
from textdistill.config import load_config
from textdistill.report import results_table, write_run_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("learning_curves", "accuracy_vs_latency", "accuracy_vs_size", "accuracy_vs_sparsity", "confusion_matrices")


def _bench_row(model: str, length: int, threads: int, **values) -> dict:
    return {"model": model, "length": length, "device": "cpu", "threads": threads, **values}


def _metrics(teacher_length: int, student_length: int) -> dict:
    """One teacher and one student ("bag") with a float ONNX export and a shipped int8 file."""
    bench = [
        _bench_row("teacher", teacher_length, 1, parameters=4_000_000, nonzero_parameters=4_000_000, bytes=16_000_000),
        _bench_row(
            "bag", student_length, 1, parameters=1234, nonzero_parameters=1200, bytes=5678, latency_ms_p50=0.25
        ),
        _bench_row("bag", student_length, all_cores(), throughput_per_s=4321.0),
    ]
    history = [{"epoch": 1, "val_loss": 0.6, "val_accuracy": 0.7}, {"epoch": 2, "val_loss": 0.5, "val_accuracy": 0.75}]
    student_test = {"accuracy": 0.8, "macro_f1": 0.79, "agreement": 0.85, "examples": 10}
    return {
        "teacher": {
            "test_metrics": {"accuracy": 0.9, "macro_f1": 0.89, "examples": 10, "confusion_matrix": [[5, 1], [0, 4]]},
            "log_history": [{"epoch": 1.0, "eval_loss": 0.4, "eval_accuracy": 0.85}, {"loss": 0.5}],
        },
        "students": [
            {
                "tag": "bag",
                "tokens": {"max_length": student_length},
                "test": student_test | {"confusion_matrix": [[4, 1], [1, 4]]},
                "training": {"history": history},
            }
        ],
        "best_student": "bag",
        "compress": {
            "sweep": [
                {"method": "L1 unstructured (global)", "sparsity": 0.5, "accuracy": 0.7},
                {"method": "structured (smaller dense model)", "sparsity": 0.5, "accuracy": 0.65},
            ],
            "students": {
                "bag": {
                    "scores": {
                        "float": student_test,
                        "onnx-int8": {"accuracy": 0.78, "macro_f1": 0.77, "agreement": 0.83, "examples": 10},
                    },
                    "onnx_parity": 1e-6,
                    "int8": "shipped (agreement 0.9900 >= 0.99)",
                }
            },
        },
        "bench": bench,
    }


@pytest.fixture
def report(tmp_path):
    config = load_config(None, [f"out_dir={tmp_path / 'run'}"])
    teacher_length, student_length = config.tokens.teacher_max_length, config.tokens.student_max_length
    metrics = _metrics(teacher_length, student_length)
    write_run_report(config, ["negative", "positive"], metrics)
    return tmp_path / "run", metrics, teacher_length, student_length


def test_results_md_has_a_row_per_model_and_the_sweep(report):
    out, _, teacher_length, student_length = report
    lines = (out / "results.md").read_text(encoding="utf-8").splitlines()
    expected = [
        f"| teacher ({teacher_length} tokens) | 0.9000 | 0.8900 | – | 4,000,000 | 4,000,000 | 16,000,000 | – | – |",
        f"| bag ({student_length} tokens) | 0.8000 | 0.7900 | 0.8500 | 1,234 | 1,200 | 5,678 | 0.25 | 4321 |",
        f"| bag onnx ({student_length} tokens) | 0.8000 | 0.7900 | 0.8500 | – | – | – | – | – |",
        f"| bag onnx int8 ({student_length} tokens) | 0.7800 | 0.7700 | 0.8300 | – | – | – | – | – |",
        "| L1 unstructured (global) | 50% | 0.7000 |",
        "| structured (smaller dense model) | 50% | 0.6500 |",
        "- best student by validation accuracy: bag",
        "- bag ONNX int8: shipped (agreement 0.9900 >= 0.99) (agreement with the float student on validation)",
    ]
    for line in expected:
        assert line in lines, line
    for name in PLOTS:
        assert f"![{name}]({name}.png)" in lines


def test_plots_are_non_empty_png_files(report):
    out = report[0]
    for name in PLOTS:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name


def test_metrics_json_holds_the_metrics(report):
    out, metrics = report[0], report[1]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics


def test_the_data_section_comes_from_data_json(tmp_path):
    config = load_config(None, [f"out_dir={tmp_path}"])
    data = {
        "splits": {"train": {"rows": 1200, "fingerprint": "abc123", "dropped_rows": 2}},
        "duplicates": {"within_split": {"train": 3}, "overlap": {}, "dropped": {}},
    }
    (tmp_path / "data.json").write_text(json.dumps(data), encoding="utf-8")
    metrics = _metrics(config.tokens.teacher_max_length, config.tokens.student_max_length)
    write_run_report(config, ["negative", "positive"], metrics)
    assert "| train | 1,200 | abc123 | 2 | 3 | – | – |" in (tmp_path / "results.md").read_text(encoding="utf-8")


def test_results_table_shows_missing_values_as_a_dash():
    table = results_table([{"model": "m", "accuracy": math.nan, "macro_f1": None, "parameters": 1000}])
    assert table.splitlines()[-1] == "| m | – | – | – | 1,000 | – | – | – | – |"


def _robustness() -> dict:
    def score(check, kind, accuracy, agreement=None, consistency=None):
        return {
            "check": check,
            "kind": kind,
            "examples": 10,
            "accuracy": accuracy,
            "accuracy_where_original_right": 0.5 if kind != "slice" else None,
            "consistency": consistency,
            "agreement_with_teacher": agreement,
        }

    checks = [
        {"name": "slice: sentiment sentences", "kind": "slice", "description": "sentences", "sample": []},
        {
            "name": "flip: antonym swap",
            "kind": "flip",
            "description": "antonyms",
            "sample": [{"text": "a bad film", "original": "a good film", "expected": 0}],
        },
        {"name": "invariance: names", "kind": "invariance", "description": "names", "sample": []},
    ]
    return {
        "key": "k",
        "positive_label": "positive",
        "checks": checks,
        "models": {
            "teacher": [
                score("slice", "slice", 0.9),
                score("flip", "flip", 0.8),
                score("inv", "invariance", 0.95, None, 0.99),
            ],
            "bag": [
                score("slice", "slice", 0.85, 0.9),
                score("flip", "flip", 0.61, 0.7),
                score("inv", "invariance", 0.93, 0.97, 0.98),
            ],
        },
        "notes": [],
    }


def test_robustness_section_and_plot_side_by_side(tmp_path):
    config = load_config(None, [f"out_dir={tmp_path / 'run'}"])
    metrics = _metrics(config.tokens.teacher_max_length, config.tokens.student_max_length)
    metrics["robustness"] = _robustness()
    write_run_report(config, ["negative", "positive"], metrics)
    results = (tmp_path / "run" / "results.md").read_text()
    section = results[results.index("## Robustness") :]
    assert "| check | rows | teacher | bag |" in section
    assert "| flip: antonym swap | 10 | 0.800 | 0.610 |" in section
    assert "| invariance: names | 10 | 0.990 | 0.980 |" in section  # unchanged predictions
    assert "| check | rows | bag |" in section and "| flip: antonym swap | 10 | 0.700 |" in section  # agreement
    assert "'a good film' → 'a bad film'" in section
    assert "![robustness](robustness.png)" in results
    assert (tmp_path / "run" / "robustness.png").read_bytes().startswith(PNG_SIGNATURE)


def test_skipped_robustness_is_a_note(tmp_path):
    config = load_config(None, [f"out_dir={tmp_path / 'run'}"])
    metrics = _metrics(config.tokens.teacher_max_length, config.tokens.student_max_length)
    metrics["robustness"] = {"skipped": "robustness checks skipped: they are for binary sentiment tasks"}
    write_run_report(config, ["a", "b", "c"], metrics)
    results = (tmp_path / "run" / "results.md").read_text()
    assert "- robustness checks skipped: they are for binary sentiment tasks" in results
    assert "## Robustness" not in results and not (tmp_path / "run" / "robustness.png").exists()
