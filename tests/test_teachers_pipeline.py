"""``teachers:`` in a run: each teacher's logits, one target chosen on validation, the Teachers report, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import TINY_DATA

from textdistill import pipeline
from textdistill.config import ConfigError, load_config
from textdistill.report import run_teachers
from textdistill.teachers import ensemble
from textdistill.teachers.logits import read_logits_dir, write_logits_dir
from textdistill.teachers.ngram import NgramTeacher
from textdistill.workflow import run

TINY_RUN = TINY_DATA | {  # smaller than tests/test_pipeline.py's: one student, no ONNX export
    "embeddings.enabled": "false",
    "student.name": "ngram-bag",
    "student.arch": "{bigram_buckets: 64}",
    "distill.epochs": "1",
    "distill.batch_size": "16",
    "compress.sparsities": "[]",
    "compress.export_onnx": "false",
    "compress.quantize": "false",
    "bench.runs": "1",
    "bench.warmup": "0",
    "bench.batch_size": "4",
    "bench.threads": "[1]",
}
TWO_TEACHERS = "[{name: ngram, kind: ngram, c_grid: [1.0]}, {name: bert, kind: transformer}]"


def _config(root: Path, **changes: str):
    overrides = {**TINY_RUN, "out_dir": str(root / "run"), "cache_dir": str(root / "cache"), **changes}
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    config = _config(root, teachers=TWO_TEACHERS)
    return config, run(config)


def test_a_run_with_two_teachers_reports_them_and_trains_the_students(ensemble_run):
    config, metrics = ensemble_run
    saved = json.loads((Path(config.out_dir) / "metrics.json").read_text())
    teachers = saved["teachers"]
    assert [t["name"] for t in teachers["teachers"]] == ["ngram", "bert"]
    for split, rows in (("validation", 24), ("test", 60)):
        assert set(teachers[split]["models"]) == {"ngram", "bert", "ensemble"}
        assert {"accuracy", "macro_f1", "nll", "ece"} <= set(teachers[split]["models"]["ensemble"])
        assert teachers[split]["models"]["ensemble"]["examples"] == rows
        assert list(teachers[split]["agreement"]) == ["ngram vs bert", "ngram vs ensemble", "bert vs ensemble"]
    assert teachers["combiner"]["method"] in ("weights", "stacking")
    assert set(teachers["combiner"]["temperatures"]) == {"ngram", "bert"}
    targets = {t["name"]: t["train_targets"] for t in teachers["teachers"]}
    assert targets["ngram"].startswith("out-of-fold") and targets["bert"].startswith("in-sample")
    results = (Path(config.out_dir) / "results.md").read_text()
    assert "## Teachers" in results and "| ensemble |" in results and "out-of-fold (5 folds)" in results
    assert [s["tag"] for s in metrics["students"]] == ["ngram-bag"]
    assert (Path(metrics["students"][0]["model_dir"]) / "model.safetensors").is_file()
    assert metrics["teacher"]["test_metrics"]["examples"] == 60  # the transformer entry is the run's teacher


def test_the_students_distill_from_the_combined_target(ensemble_run):
    config, metrics = ensemble_run
    prepared = pipeline.prepare_data(config)
    _, target = pipeline.teacher_logits_for(config, prepared)
    assert set(target) == {"train", "validation", "test", "unlabelled"}
    assert target["test"].shape == (60, 2)
    ensemble_accuracy = metrics["teachers"]["test"]["models"]["ensemble"]["accuracy"]
    assert np.mean(target["test"].argmax(1) == prepared.dataset.test.labels) == pytest.approx(ensemble_accuracy)
    student = metrics["students"][0]["test"]
    key = pipeline._student_key(config, prepared, pipeline.student_plans(config)[0], target, None)
    assert metrics["students"][0]["key"] == key and "agreement" in student  # keyed by (and scored against) it


def test_ngram_training_targets_are_out_of_fold(ensemble_run):
    config, metrics = ensemble_run
    info = next(t for t in metrics["teachers"]["teachers"] if t["name"] == "ngram")["info"]
    prepared = pipeline.prepare_data(config)
    train = prepared.dataset.train
    cached = read_logits_dir(
        pipeline.ngram_teacher_dir(prepared, _entry(config, "ngram")) / "logits" / f"train-{train.fingerprint}",
        {"train": train.ids},
        2,
    )["train"]
    in_sample = NgramTeacher.load(info["model_dir"]).predict_logits(train.texts)
    assert cached.shape == in_sample.shape
    assert np.abs(cached - in_sample).max() > 1e-3  # the full model's own train logits are not the targets


def _entry(config, name: str):
    from textdistill.config import teacher_entries

    return next(e for e in teacher_entries(config.teachers) if e.name == name)


def test_a_second_run_does_no_teacher_work(ensemble_run, monkeypatch):
    config, _ = ensemble_run
    prepared = pipeline.prepare_data(config)
    first = pipeline.teacher_logits_for(config, prepared)[1]

    def forbidden(*args, **kwargs):
        raise AssertionError("teacher work on a cached run")

    monkeypatch.setattr(pipeline, "fine_tune", forbidden)
    monkeypatch.setattr(pipeline, "_compute_logits", forbidden)
    monkeypatch.setattr(pipeline, "_choose_target", forbidden)
    for method in ("fit", "out_of_fold_logits", "predict_logits", "load"):
        monkeypatch.setattr(NgramTeacher, method, forbidden)
    monkeypatch.setattr(ensemble, "choose_combiner", forbidden)
    again = pipeline.teacher_logits_for(config, prepared)[1]
    assert all(np.array_equal(first[split], again[split]) for split in first)


def test_a_logits_teacher_reads_a_written_directory(ensemble_run, tmp_path):
    config, _ = ensemble_run
    prepared = pipeline.prepare_data(config)
    split_ids = {name: split.ids for name, split in prepared.dataset.splits().items()}
    rng = np.random.default_rng(0)
    shipped = {}
    for name, split in prepared.dataset.splits().items():  # informative logits: the label plus noise
        signal = np.eye(2)[np.maximum(split.labels, 0)] * 2.0
        shipped[name] = (signal + rng.normal(0, 1.5, signal.shape)).astype(np.float32)
    write_logits_dir(tmp_path / "mine", shipped, split_ids)
    own = _config(tmp_path, teachers=f"[{{name: mine, kind: logits, path: {tmp_path / 'mine'}}}]")
    model_dir, target = pipeline.teacher_logits_for(own, prepared)
    assert model_dir is None
    report = json.loads((Path(own.out_dir) / "teachers.json").read_text())
    temperature = report["combiner"]["temperatures"]["mine"]
    assert report["combiner"]["method"] == "single" and report["teachers"][0]["train_targets"] == "as shipped"
    for name, values in shipped.items():  # one teacher: its logits divided by its validation temperature
        stored = values.astype(np.float16).astype(np.float32)
        np.testing.assert_allclose(target[name] * temperature, stored, rtol=1e-4, atol=1e-4)


def test_a_logits_teacher_missing_a_split_names_the_teacher(ensemble_run, tmp_path):
    config, _ = ensemble_run
    prepared = pipeline.prepare_data(config)
    ids = {"train": prepared.dataset.train.ids}
    write_logits_dir(tmp_path / "partial", {"train": np.zeros((len(ids["train"]), 2))}, ids)
    own = _config(tmp_path, teachers=f"[{{name: partial, kind: logits, path: {tmp_path / 'partial'}}}]")
    with pytest.raises(ValueError, match=r"teacher 'partial' \(kind logits\).*no logits for split 'validation'"):
        pipeline.teacher_logits_for(own, prepared)


@pytest.mark.parametrize(
    ("teachers", "message"),
    [
        ("[{name: a, kind: svm}]", r"teachers\[0\]\.kind: 'svm' is not a teacher kind; valid kinds: \('transformer'"),
        (
            "[{name: a, kind: ngram, mindf: 2}]",
            r"unknown key\(s\) \['mindf'\] for kind 'ngram'; valid keys: .*'min_df'",
        ),
        ("[{name: a, kind: transformer, model: x}]", r"unknown key\(s\) \['model'\] for kind 'transformer'"),
        ("[{name: a, kind: ngram}, {name: a, kind: transformer}]", r"names must be unique, got \['a', 'a'\]"),
        ("[{name: a, kind: transformer}, {name: b, kind: transformer}]", "at most one transformer"),
        ("[{name: a, kind: logits}]", r"teachers\[0\] \(a\)\.path: a logits directory is required"),
        ("[{name: ensemble, kind: ngram}]", "'ensemble' is reserved"),
        ("[{kind: ngram}]", r"teachers\[0\]\.name: a non-empty string is required"),
        ("[{name: a, kind: ngram, min_df: 0}]", r"teachers\[0\] \(a\).*min_df >= 1"),
    ],
)
def test_bad_teacher_entries_fail_at_load(tmp_path, teachers, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, teachers=teachers)


def test_the_report_ignores_a_teachers_file_of_other_entries(ensemble_run, tmp_path):
    config, _ = ensemble_run
    assert run_teachers(config) is not None
    other = _config(tmp_path, out_dir=config.out_dir, teachers="[{name: ngram, kind: ngram}]")
    assert run_teachers(other) is None  # a stale teachers.json from another teachers: list
    assert run_teachers(_config(tmp_path, out_dir=config.out_dir)) is None  # no teachers: the single teacher
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "teachers.json").write_text((Path(config.out_dir) / "teachers.json").read_text())
    data = json.loads((Path(config.out_dir) / "data.json").read_text())
    data["splits"]["test"]["fingerprint"] = "other-data"
    (copied / "data.json").write_text(json.dumps(data))
    assert run_teachers(_config(tmp_path, out_dir=str(copied), teachers=TWO_TEACHERS)) is None  # other data


def test_the_smoke_teachers_config_loads():
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "smoke-teachers.yaml")
    assert [(t["name"], t["kind"]) for t in config.teachers] == [("ngram", "ngram"), ("bert", "transformer")]
