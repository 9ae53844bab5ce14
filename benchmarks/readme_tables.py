"""Print the README's results tables from the recorded JSON in benchmarks/results (no measuring here).

python benchmarks/readme_tables.py
"""

from __future__ import annotations

import json
from typing import Any

from _common import RESULTS


def _load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text())


def students_table(reference: dict[str, Any]) -> str:
    lines = [
        "| model | tokens read | distilled | parameters | test accuracy | test macro F1 | agreement with teacher | "
        "train wall time | train examples/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    teacher = reference["teacher"]
    if teacher:
        lines.append(
            f"| teacher: 6-layer BERT fine-tuned on {teacher['train_examples']:,} reviews | "
            f"{teacher['tokens']['max_length']} ({teacher['tokens']['truncation']}) | – | 22,713,602 | "
            f"{teacher['test']['accuracy']:.4f} | {teacher['test']['macro_f1']:.4f} | – | "
            f"{teacher['train_seconds'] / 60:.0f} min | {teacher['train_reviews_per_second']:.1f} |"
        )
    for s in reference["students"]:
        agreement = s["test_agreement_with_teacher"]
        lines.append(
            f"| {s['tag']} | {s['max_length']} | {'yes' if s['distilled'] else 'no (hard labels)'} | "
            f"{s['parameters']:,} | {s['test_accuracy']:.4f} | {s['test_macro_f1']:.4f} | "
            f"{'–' if agreement is None else f'{agreement:.4f}'} | {s['train_wall_seconds'] / 60:.1f} min | "
            f"{s['train_examples_per_second']:.0f} |"
        )
    linear = _load("linear_baseline.json")
    lines.append(
        f"| TF-IDF uni+bigram logistic regression (`benchmarks/linear_baseline.py`) | all | no | "
        f"{linear['features']:,} features | {linear['test_accuracy']:.4f} | {linear['test_macro_f1']:.4f} | "
        f"– | {linear['wall_seconds']:.0f} s | – |"
    )
    return "\n".join(lines)


def efficiency_table(reference: dict[str, Any]) -> str:
    rows = [r for r in reference["bench"] if r["device"] == "cpu"]
    lines = [
        "| model | threads | input tokens | parameters | bytes on disk | latency b=1 p50 (ms) | p90 (ms) | "
        "throughput b=32 (reviews/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['threads']} | {r['length']} | {r['parameters']:,} | {r['bytes']:,} | "
            f"{r['latency_ms_p50']:.2f} | {r['latency_ms_p90']:.2f} | {r['throughput_per_s']:.0f} |"
        )
    return "\n".join(lines)


def sweep_table(reference: dict[str, Any]) -> str:
    lines = ["| method | pruned | validation accuracy | parameters (non-zero) |", "| --- | --- | --- | --- |"]
    for r in reference["compress"]["sweep"]:
        params = r.get("parameters", {})
        lines.append(
            f"| {r['method']} | {100 * r['sparsity']:.0f}% | {r['accuracy']:.4f} | "
            f"{params.get('nonzero_parameters', params.get('nonzero', '–')):,} |"
        )
    return "\n".join(lines)


def main() -> None:
    reference = _load("imdb_cpu_reference.json")
    print("## Students\n\n" + students_table(reference))
    print("\n## Efficiency\n\n" + efficiency_table(reference))
    print("\n## Pruning sweep\n\n" + sweep_table(reference))


if __name__ == "__main__":
    main()
