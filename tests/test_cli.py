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
from textdistill.tokens import TokenSettings

LABELS = ["neg", "pos"]


@pytest.fixture
def saved_student(tiny_tokenizer, tmp_path):
    model = build_student("cnn", {"embedding_dim": 8, "num_filters": 4}, len(tiny_tokenizer), 2, pad_id=0)
    return save_student(
        model,
        tmp_path / "student",
        name="cnn",
        arch={"embedding_dim": 8, "num_filters": 4},
        label_names=LABELS,
        tokenizer=tiny_tokenizer,
        tokens=TokenSettings(16, "head", 0.25),
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
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 3  # one record per input line, the blank one included, so output stays aligned
    assert records[0]["label"] in LABELS and records[2]["label"] in LABELS
    assert records[1] == {"text": "", "error": "line 2 is empty or whitespace-only: there is nothing to classify"}


def _binary_stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


@pytest.mark.parametrize(
    "stdin",
    [
        lambda: _binary_stdin(b"good film\n\xff\xfe bad \x00\x9c\nthe worst\n"),
        lambda: io.StringIO("good film\n\udcff\udcfe bad \x00\udc9c\nthe worst\n"),  # surrogate-escaped text
    ],
    ids=["bytes", "surrogate-escapes"],
)
def test_predict_replaces_undecodable_bytes_per_line(saved_student, capsys, monkeypatch, caplog, stdin):
    monkeypatch.setattr("sys.stdin", stdin())
    assert main(["predict", str(saved_student)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["text"] for record in records] == ["good film", "\ufffd\ufffd bad \x00\ufffd", "the worst"]
    assert all(record["label"] in LABELS for record in records)
    assert "line(s) 2: not valid UTF-8; undecodable bytes replaced with U+FFFD" in caplog.text


def test_predict_writes_an_error_record_for_empty_texts(saved_student, capsys, caplog):
    assert main(["predict", str(saved_student), "a great movie", "", "   "]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["label"] in LABELS and "error" not in records[0]
    assert [record["error"] for record in records[1:]] == [
        "argument 2 is empty or whitespace-only: there is nothing to classify",
        "argument 3 is empty or whitespace-only: there is nothing to classify",
    ]
    assert "argument(s) 2, 3: not classified" in caplog.text


def test_predict_with_a_nan_model_fails_clearly(saved_student, capsys, caplog):
    import hashlib

    from safetensors.torch import load_file, save_file

    path, config_path = saved_student / "model.safetensors", saved_student / "config.json"
    weights = load_file(str(path))
    weights["classifier.bias"][0] = float("nan")
    save_file(weights, str(path))  # a NaN model with a matching checksum: saved broken, not damaged later
    config = json.loads(config_path.read_text()) | {"weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    config_path.write_text(json.dumps(config))
    assert main(["predict", str(saved_student), "a great movie"]) == 2
    assert capsys.readouterr().out == ""
    assert "model.safetensors holds NaN or inf values in 'classifier.bias'" in caplog.text


@pytest.fixture
def no_server(monkeypatch) -> list[dict]:
    """Replace ``uvicorn.run`` so that serve commands return at once; records its keyword arguments."""
    calls: list[dict] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    return calls


def test_serve_log_level_is_checked_by_argparse(saved_student, capsys, no_server):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(saved_student), "--log-level", "loud"])
    assert exit_info.value.code == 2 and not no_server
    assert "invalid choice: 'loud'" in capsys.readouterr().err
    assert main(["serve", str(saved_student), "--log-level", "WARNING"]) == 0
    assert no_server == [{"host": "127.0.0.1", "port": 8000, "log_level": "warning"}]


def test_serve_with_a_file_that_is_not_onnx_fails_clearly(saved_student, caplog, no_server):
    (saved_student / "notes.onnx").write_text("not a graph")
    assert main(["serve", str(saved_student), "--onnx-file", "notes.onnx"]) == 2
    assert "notes.onnx is not a loadable ONNX model" in caplog.text and not no_server


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
