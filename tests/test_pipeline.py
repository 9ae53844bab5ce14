"""`textdistill run` end to end on the built-in toy data: every artifact, and a second run that does no work."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from textdistill import pipeline, workflow
from textdistill.config import ConfigError, load_config
from textdistill.pipeline import distill
from textdistill.workflow import run

TINY_DATA = {  # the toy data, the tiny teacher and short inputs: shared by the end-to-end tests
    "data.path": "builtin:toy-reviews",
    "data.max_train": "120",
    "data.max_test": "60",
    "data.max_unlabelled": "40",
    "teacher.model": "builtin:tiny-bert",
    "teacher.epochs": "1",
    "teacher.batch_size": "16",
    "tokens.teacher_max_length": "32",
    "tokens.student_max_length": "48",
}

TINY_RUN = TINY_DATA | {
    "embeddings.vector_size": "16",
    "embeddings.epochs": "1",
    "embeddings.workers": "1",
    "student.arch": "{hidden_size: 8, num_layers: 1, attention_dim: 8}",
    "students": "[{tag: bag, student: {name: ngram-bag, arch: {bigram_buckets: 64}}}]",
    "distill.epochs": "1",
    "distill.batch_size": "16",
    "compress.sparsities": "[0.5]",
    "compress.vocabulary_min_count": "1",
    "bench.runs": "2",
    "bench.warmup": "1",
    "bench.batch_size": "4",
    "bench.threads": "[1]",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    tweets = root / "tweets.jsonl"  # a domain check: another dataset's labels mapped to positive and negative
    rows = [{"text": "what a happy day", "label": "joy"}, {"text": "i feel so sad", "label": "sadness"}]
    tweets.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    domain = f"[{{path: {tweets}, name: tweets, positive: [joy], negative: [sadness]}}]"
    overrides = {**TINY_RUN, "out_dir": str(root / "run"), "cache_dir": str(root / "cache")}
    overrides["report.domain_checks"] = domain
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    return config, run(config)


def test_run_writes_every_artifact(finished_run):
    config, metrics = finished_run
    out = config.out_dir
    for name in (
        "config.yaml",
        "data.json",
        "metrics.json",
        "results.md",
        "bench.json",
        "learning_curves.png",
        "accuracy_vs_latency.png",
        "accuracy_vs_size.png",
        "accuracy_vs_sparsity.png",
        "confusion_matrices.png",
        "robustness.json",
        "robustness.png",
    ):
        assert Path(out, name).is_file(), name
    assert [s["tag"] for s in metrics["students"]] == ["rnn-attention", "bag"]
    for summary in metrics["students"]:
        assert (Path(summary["model_dir"]) / "README.md").is_file()  # model card
    results = (Path(out) / "results.md").read_text()
    assert "teacher (32 tokens)" in results and "rnn-attention onnx int8" in results
    scored = {"accuracy", "macro_f1", "examples"}  # one name per metric in every stage's JSON
    assert scored | {"confusion_matrix"} <= set(metrics["teacher"]["test_metrics"])
    assert scored | {"agreement", "confusion_matrix"} <= set(metrics["students"][0]["test"])
    assert scored | {"agreement"} <= set(metrics["compress"]["students"]["rnn-attention"]["scores"]["float"])
    assert "| test macro F1 |" in results
    checked = metrics["robustness"]  # toy reviews: 0/1 labels, so the checks run (auto), teacher and students
    assert list(checked["models"]) == ["teacher", "rnn-attention", "bag"] and checked["checks"]
    assert "## Robustness" in results and "| check | rows | teacher | rnn-attention | bag |" in results
    domain = [row for row in checked["models"]["bag"] if row["check"] == "domain: tweets"]
    assert domain and domain[0]["examples"] == 2 and domain[0]["agreement_with_teacher"] is not None
    assert "| domain: tweets | 2 |" in results
    assert {row["method"] for row in metrics["compress"]["sweep"]} == {
        "L1 unstructured (global)",
        "structured (smaller dense model)",
    }
    deployed = metrics["compress"]["students"]["rnn-attention"]  # vocabulary-pruned deployable, int8 by measurement
    assert deployed["vocabulary"]["bytes_after"] < deployed["vocabulary"]["bytes_before"]
    assert (Path(deployed["deploy_dir"]) / "model.onnx").is_file() and deployed["int8_check"]["chosen"]
    assert "rnn-attention vocabulary pruning" in results and "rnn-attention vocabulary-pruned" in results


def test_second_run_does_no_work(finished_run, monkeypatch):
    config, first = finished_run

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished run must not train, predict with the teacher or benchmark again")

    for target in (  # the names the stages call (imported at module top, so patched where they are used)
        "textdistill.pipeline.fine_tune",
        "textdistill.pipeline.load_teacher",
        "textdistill.pipeline.fit_student",
        "textdistill.api.train_student",
        "textdistill.deploy.pruning_sweep",
        "textdistill.deploy.bench_models",
        "textdistill.embeddings.train_word2vec",
    ):
        monkeypatch.setattr(target, forbidden)
    second = run(config)
    assert json.dumps(second["students"], sort_keys=True) == json.dumps(first["students"], sort_keys=True)
    assert second["bench"] == first["bench"]


@pytest.mark.parametrize("stage", [run, distill])
def test_a_bad_student_fails_before_any_stage(tmp_path, monkeypatch, stage):
    def no_stage(*args, **kwargs):
        raise AssertionError("a stage ran before the config was validated")

    monkeypatch.setattr(pipeline, "prepare_data", no_stage)
    monkeypatch.setattr(workflow, "prepare_data", no_stage)
    overrides = {**TINY_RUN, "out_dir": str(tmp_path / "run"), "student.name": "lstm"}
    with pytest.raises(ConfigError, match="unknown student 'lstm'"):
        stage(load_config(None, [f"{k}={v}" for k, v in overrides.items()]))
    assert not (tmp_path / "run").exists()


def _copied_run(config, tmp_path, **changes: str):
    """A copy of ``config``'s finished run (same cache) with some TINY_RUN settings changed."""
    shutil.copytree(config.out_dir, tmp_path / "run")
    overrides = {**TINY_RUN, "out_dir": str(tmp_path / "run"), "cache_dir": config.cache_dir, **changes}
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


@pytest.mark.parametrize(
    ("setting", "value", "retrains"), [("distill.num_threads", "1", False), ("distill.lr", "0.004", True)]
)
def test_a_training_setting_retrains_a_student_but_the_thread_count_does_not(
    finished_run, tmp_path, monkeypatch, setting, value, retrains
):
    config, first = finished_run
    trained = []
    fit_student = pipeline.fit_student

    def counting_fit(student, distill_config, *args, **kwargs):
        trained.append(distill_config)
        return fit_student(student, distill_config, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit_student", counting_fit)
    before = next(s for s in first["students"] if s["tag"] == "bag")
    (after,) = distill(_copied_run(config, tmp_path, **{setting: value}), only=["bag"])
    assert len(trained) == int(retrains)
    assert (after["key"] != before["key"]) == retrains
    if retrains:  # the earlier run's checkpoint and done.json made way for the new settings
        assert after["distill_config"]["lr"] == pytest.approx(0.004) != before["distill_config"]["lr"]


def test_student_key_hashes_the_teacher_logits_and_embeddings(finished_run):
    """Different arrays with the same absolute sum (the former key) must give different students."""
    config, _ = finished_run
    prepared = pipeline.prepare_data(config)
    logits = pipeline.teacher_logits_for(config, prepared)[1]
    embedding = pipeline.embeddings_for(config, prepared)
    plan = pipeline.student_plans(config)[0]
    assert plan.uses_teacher

    def key(logits, embedding) -> str:
        return pipeline._student_key(config, prepared, plan, logits, embedding)

    flipped = {split: -values for split, values in logits.items()}  # every teacher prediction reversed
    shuffled = copy.copy(embedding)
    shuffled.matrix = embedding.matrix[::-1].copy()  # rows moved between tokens
    assert key(logits, embedding) == key({s: v.copy() for s, v in logits.items()}, copy.copy(embedding))
    assert key(flipped, embedding) != key(logits, embedding)
    assert key(logits, shuffled) != key(logits, embedding)


@pytest.mark.parametrize("inference", ["truncate", "chunks"])
def test_the_robustness_teacher_reads_texts_as_the_logit_pass(finished_run, inference):
    import dataclasses

    import numpy as np

    config, _ = finished_run
    teacher = dataclasses.replace(config.teacher, inference=inference, chunk_stride=16)  # windows of 30 ids
    config = dataclasses.replace(config, teacher=teacher)
    prepared = pipeline.prepare_data(config)
    model_dir = pipeline.teacher_dir(config, prepared) / "model"
    logits = pipeline.logits_stage(config, prepared, model_dir)["validation"]
    predict = pipeline._teacher_predictor(config, prepared, model_dir)
    texts = prepared.dataset.validation.texts
    assert np.array_equal(predict(texts), logits.argmax(-1))


def test_a_student_matching_the_teachers_representations(finished_run, tmp_path, monkeypatch):
    import numpy as np

    config, first = finished_run
    representing = _copied_run(config, tmp_path, **{"distill.representation_weight": "1.0"})
    prepared = pipeline.prepare_data(representing)
    model_dir = pipeline.teacher_dir(representing, prepared) / "model"
    plans = pipeline.student_plans(representing)
    assert [plan.uses_representations for plan in plans] == [True, True]
    representations = pipeline.teacher_representations_for(representing, prepared, model_dir, plans)
    assert representations is not None and set(representations) == {"train", "unlabelled"}
    hidden = json.loads((model_dir / "config.json").read_text())["hidden_size"]
    assert representations["train"].shape == (len(prepared.dataset.train.texts), hidden)
    assert np.isfinite(representations["unlabelled"]).all()

    def no_teacher(*args, **kwargs):
        raise AssertionError("the cached representations must be reused")

    monkeypatch.setattr(pipeline, "load_teacher", no_teacher)
    (after,) = distill(representing, only=["bag"])
    before = next(s for s in first["students"] if s["tag"] == "bag")
    assert after["key"] != before["key"] and after["distill_config"]["representation_weight"] == 1.0
    with pytest.raises(ConfigError, match="needs the transformer teacher's model"):
        pipeline.teacher_representations_for(representing, prepared, None, plans)


def test_textdistill_run_hands_the_representations_to_its_students(finished_run, tmp_path, monkeypatch):
    config, _ = finished_run
    representing = _copied_run(config, tmp_path, **{"distill.representation_weight": "0.5"})
    handed = []

    class Stop(Exception):
        pass

    def first_student(config, prepared, plan, logits, embedding, representations=None):
        handed.append(representations)
        raise Stop

    monkeypatch.setattr(workflow, "student_stage", first_student)
    with pytest.raises(Stop):
        run(representing)
    assert handed[0] is not None and set(handed[0]) == {"train", "unlabelled"}


def test_a_wrong_domain_check_fails_before_any_training(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a run whose domain check cannot be read must fail before fine-tuning the teacher")

    monkeypatch.setattr("textdistill.pipeline.fine_tune", forbidden)
    overrides = {**TINY_RUN, "out_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    overrides["report.domain_checks"] = f"[{{path: {tmp_path / 'missing.jsonl'}, positive: [joy], negative: [anger]}}]"
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    with pytest.raises(ValueError, match=r"report.domain_checks\[0\] .*missing.jsonl' does not exist"):
        run(config)
