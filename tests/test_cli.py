"""CLI commands on tiny saved students: predict (arguments and stdin), clear errors, student plans."""

from __future__ import annotations

import io
import json

import pytest

from textdistill.cli import main
from textdistill.config import ConfigError, load_config
from textdistill.pipeline import student_plans
from textdistill.students import build_student
from textdistill.students.hub import save_student

LABELS = ["neg", "pos"]


@pytest.fixture
def saved_student(tiny_tokenizer, tmp_path):
    model = build_student("cnn", {"embedding_dim": 8, "num_filters": 4}, len(tiny_tokenizer), 2, pad_id=0)
    return save_student(
        model,
        tmp_path / "student",
        name="cnn",
        arch={"embedding_dim": 8, "num_filters": 4},
        vocab_size=len(tiny_tokenizer),
        num_labels=2,
        pad_id=0,
        label_names=LABELS,
        tokenizer=tiny_tokenizer,
        max_length=16,
        truncation="head",
        head_fraction=0.25,
    )


def test_predict_prints_label_and_probabilities_per_text(saved_student, capsys):
    assert main(["predict", str(saved_student), "a great movie", "an awful film"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["a great movie", "an awful film"]
    for line in lines:
        assert line["label"] in LABELS
        assert set(line["probabilities"]) == set(LABELS)
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_reads_stdin_when_no_text_is_given(saved_student, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("the best acting\n\nthe worst plot\n"))
    assert main(["predict", str(saved_student)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_predict_on_a_directory_that_is_not_a_student_fails_clearly(tmp_path, caplog):
    assert main(["predict", str(tmp_path), "text"]) == 2
    assert "not a saved textdistill student" in caplog.text


def test_student_plans_from_a_students_list():
    config = load_config("configs/imdb-cpu.yaml", ["data.path=x"])
    plans = student_plans(config)
    assert plans[0].tag == "rnn-attention" and plans[0].uses_teacher
    hard = next(p for p in plans if p.tag == "rnn-attention-hard-labels")
    assert not hard.uses_teacher and hard.student.arch == plans[0].student.arch  # inherits the main student
    bag = next(p for p in plans if p.tag == "ngram-bag")
    assert bag.student.name == "ngram-bag" and bag.distill.epochs == 10 and bag.distill.use_unlabelled


def test_student_plans_reject_bad_entries():
    with pytest.raises(ConfigError, match="keys must be tag, student, distill"):
        student_plans(load_config(None, ["students=[{tag: a, optimiser: sgd}]"]))
    with pytest.raises(ConfigError, match="valid keys here"):
        student_plans(load_config(None, ["students=[{tag: a, distill: {temprature: 2}}]"]))
    with pytest.raises(ConfigError, match="tags must be unique"):
        student_plans(load_config(None, ["students=[{tag: rnn-attention}]"]))
