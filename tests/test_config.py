"""Typed config: YAML loading, dotted overrides, validation messages, env expansion, ``config show``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import yaml

from textdistill.cli import main
from textdistill.config import (
    Config,
    ConfigError,
    DistillConfig,
    apply_override,
    distill_identity,
    dump_config,
    from_dict,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    assert load_config() == Config()


def test_yaml_load(tmp_path):
    path = write_yaml(
        tmp_path / "run.yaml",
        """
out_dir: runs/x
data:
  path: /data/imdb
  max_train: 100
teacher:
  body_lr: 5.0e-5
  epochs: 3          # int where a float is expected
distill:
  lr: 1e-3           # YAML 1.1 reads this as a string
student:
  name: cnn
  arch: {hidden_size: 64, kernel_sizes: [3, 4]}
compress:
  sparsities: [0, 5e-1]
""",
    )
    config = load_config(path)
    assert config.out_dir == "runs/x"
    assert config.data.path == "/data/imdb" and config.data.max_train == 100
    assert config.teacher.body_lr == pytest.approx(5e-5)
    assert config.teacher.epochs == 3.0 and isinstance(config.teacher.epochs, float)
    assert config.distill.lr == pytest.approx(1e-3) and isinstance(config.distill.lr, float)
    assert config.student.arch == {"hidden_size": 64, "kernel_sizes": [3, 4]}
    assert config.compress.sparsities == [0.0, 0.5]
    assert config.tokens == Config().tokens  # untouched sections keep their defaults


def test_empty_file_and_empty_section_give_defaults(tmp_path):
    assert load_config(write_yaml(tmp_path / "empty.yaml", "")) == Config()
    assert load_config(write_yaml(tmp_path / "section.yaml", "data:\n")).data == Config().data


def test_dotted_overrides(tmp_path):
    path = write_yaml(tmp_path / "run.yaml", "distill:\n  lr: 0.5\ndata:\n  max_train: 10\n")
    config = load_config(
        path,
        [
            "distill.lr=1e-3",
            "teacher.head_lr=2.5E-4",
            "compress.sparsities=[0.1, 0.5]",
            "data.max_train=null",
            "tokens.tokenizer=~",
            "distill.use_unlabelled=false",
            "student.arch.hidden_size=256",
            "data.path=../shared/data/imdb",
            "bench.threads=[1, 2, 0]",
        ],
    )
    assert config.distill.lr == pytest.approx(1e-3)  # the override wins over the file
    assert config.teacher.head_lr == pytest.approx(2.5e-4)
    assert config.compress.sparsities == [0.1, 0.5]
    assert config.data.max_train is None
    assert config.tokens.tokenizer is None
    assert config.distill.use_unlabelled is False
    assert config.student.arch == {"hidden_size": 256}
    assert config.data.path == "../shared/data/imdb"
    assert config.bench.threads == [1, 2, 0]


def test_override_into_an_empty_yaml_section(tmp_path):
    path = write_yaml(tmp_path / "run.yaml", "data:\nteacher:\n  epochs: 1\n")
    assert load_config(path, ["data.path=/x"]).data.path == "/x"


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(None, ["distill.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_override({"out_dir": "runs"}, "out_dir.x=1")


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.pth=/x"])
    message = str(info.value)
    assert "data.pth" in message
    for valid in ("path", "text_column", "validation_fraction", "bad_rows"):
        assert valid in message


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(tmp_path / "run.yaml", "outdir: runs/x\n"))
    assert "outdir" in str(info.value) and "out_dir" in str(info.value) and "teacher" in str(info.value)


def test_nested_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.split.*valid keys"):
        load_config(write_yaml(tmp_path / "run.yaml", "data:\n  split:\n    fraction: 0.1\n"))
    with pytest.raises(ConfigError, match=r"teacher\.optimizer"):
        load_config(None, ["teacher.optimizer.lr=0.1"])
    with pytest.raises(ConfigError, match=r"unknown config key.*\['model'\]"):
        load_config(None, ["model.hidden=3"])


@pytest.mark.parametrize(
    ("override", "pieces"),
    [
        ("teacher.batch_size=big", ["teacher.batch_size", "expected int", "'big'"]),
        ("teacher.batch_size=true", ["teacher.batch_size", "expected int", "True"]),
        ("teacher.batch_size=1.5", ["teacher.batch_size", "expected int", "1.5"]),
        ("data.validation_fraction=abc", ["data.validation_fraction", "expected float", "'abc'"]),
        ("data.path=[1, 2]", ["data.path", "expected str"]),
        ("compress.sparsities=0.5", ["compress.sparsities", "expected list"]),
        ("compress.sparsities=[0.1, x]", ["compress.sparsities[1]", "expected float", "'x'"]),
        ("data.max_train=lots", ["data.max_train", "expected int", "'lots'"]),
        ("data=5", ["data", "expected a mapping"]),
    ],
)
def test_wrong_type_names_key_and_reason(override, pieces):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    for piece in pieces:
        assert piece in str(info.value)


@pytest.mark.parametrize(
    ("override", "pieces"),
    [
        ("data.validation_fraction=1.5", ["data.validation_fraction", "(0, 1)"]),
        ("data.validation_fraction=0", ["data.validation_fraction", "(0, 1)"]),
        ("data.bad_rows=skip", ["data.bad_rows", "'drop'"]),
        ("data.max_train=0", ["data.max_train", "positive"]),
        ("tokens.truncation=middle", ["tokens.truncation", "head+tail"]),
        ("tokens.teacher_max_length=4", ["tokens.teacher_max_length", "at least 8"]),
        ("tokens.head_fraction=1.5", ["tokens.head_fraction", "[0, 1]"]),
        ("embeddings.min_count=0", ["embeddings.min_count", "at least 1"]),
        ("teacher.batch_size=0", ["teacher.batch_size", "at least 1"]),
        ("teacher.gradient_accumulation=0", ["teacher.gradient_accumulation", "at least 1"]),
        ("teacher.head_lr=-1e-3", ["teacher.head_lr", "positive"]),
        ("teacher.mixed_precision=fp8", ["teacher.mixed_precision", "bf16"]),
        ("distill.patience=0", ["distill.patience", "at least 1"]),
        ("distill.temperature=0", ["distill.temperature", "positive"]),
        ("distill.hard_weight=-1", ["distill.", "hard", ">= 0"]),
        ("compress.sparsities=[0.5, 1.0]", ["compress.sparsities", "[0, 1)"]),
        ("bench.warmup=-1", ["bench.warmup", "at least 0"]),
    ],
)
def test_out_of_range_names_key_and_reason(override, pieces):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    for piece in pieces:
        assert piece in str(info.value)


def test_all_loss_weights_zero_is_an_error():
    zero = [f"distill.{name}_weight=0" for name in ("soft", "hard", "sequence", "mse")]
    with pytest.raises(ConfigError, match=r"distill\..*at least one must be positive"):
        load_config(None, zero)


def test_env_expansion(tmp_path, monkeypatch):
    path = write_yaml(
        tmp_path / "run.yaml",
        "data:\n  path: ${TD_TEST_DATA:-stanfordnlp/imdb}\nout_dir: runs/${TD_TEST_RUN}/x\n"
        "teacher:\n  model: ${TD_TEST_TEACHER}\n",
    )
    monkeypatch.delenv("TD_TEST_DATA", raising=False)
    monkeypatch.delenv("TD_TEST_TEACHER", raising=False)
    monkeypatch.setenv("TD_TEST_RUN", "r1")
    config = load_config(path)
    assert config.data.path == "stanfordnlp/imdb"  # the default after :-
    assert config.out_dir == "runs/r1/x"  # expanded inside a longer string
    assert config.teacher.model == ""  # unset and no default
    monkeypatch.setenv("TD_TEST_DATA", "/data/imdb")
    assert load_config(path).data.path == "/data/imdb"
    assert load_config(path, ["data.path=${TD_TEST_RUN:-no}"]).data.path == "r1"  # overrides expand too


def test_shipped_config_loads(monkeypatch):
    monkeypatch.delenv("TEXTDISTILL_DATA", raising=False)
    config = load_config(REPO / "configs" / "imdb-cpu.yaml", ["data.path=../shared/data/imdb"])
    assert config.data.path == "../shared/data/imdb"
    assert config.teacher.body_lr == pytest.approx(5e-5)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_and_its_students_validate(path, monkeypatch):
    from textdistill.pipeline import student_plans

    monkeypatch.delenv("TEXTDISTILL_DATA", raising=False)
    config = load_config(path, ["data.path=../shared/data/imdb"])
    plans = student_plans(config)  # every student's name, arch and distill keys, checked before any data is read
    assert plans and len({plan.tag for plan in plans}) == len(plans)


def test_round_trip_through_dict_and_yaml():
    config = load_config(None, ["student.arch.hidden_size=32", "students=[{name: cnn}]", "data.max_test=7"])
    assert from_dict(Config, config.to_dict()) == config
    assert from_dict(Config, yaml.safe_load(dump_config(config))) == config


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write_yaml(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_cli_config_show_prints_yaml(tmp_path, capsys):
    path = write_yaml(tmp_path / "run.yaml", "data:\n  path: /data/imdb\n")
    assert main(["config", "show", str(path), "--set", "distill.lr=1e-3", "--set", "tokens.truncation=head"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["data"]["path"] == "/data/imdb"
    assert shown["distill"]["lr"] == pytest.approx(1e-3)
    assert shown["tokens"]["truncation"] == "head"
    assert from_dict(Config, shown) == load_config(path, ["distill.lr=1e-3", "tokens.truncation=head"])


def test_cli_config_show_defaults(capsys):
    assert main(["config", "show"]) == 0
    assert from_dict(Config, yaml.safe_load(capsys.readouterr().out)) == Config()


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("data:\n\tpath: x\n", ["bad.yaml", "line 2, column 1", "'\\t'"]),
        ("data:\n  path: [x\nstudent: {}\n", ["bad.yaml", "line 3", "flow sequence"]),
        ("out_dir: 'unclosed\n", ["bad.yaml", "invalid YAML", "line"]),
    ],
)
def test_malformed_yaml_names_file_line_and_column(tmp_path, text, pieces):
    with pytest.raises(ConfigError) as caught:
        load_config(write_yaml(tmp_path / "bad.yaml", text))
    for piece in pieces:
        assert piece in str(caught.value)


def test_malformed_override_names_the_override():
    with pytest.raises(ConfigError, match=r"--set distill\.lr=\[1: invalid YAML at line 1, column 3"):
        load_config(None, ["distill.lr=[1"])


def test_binary_config_file_is_named(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="model.bin: not UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "pieces"),
    [
        ("data.pth=/x", ["data.pth", "valid keys", "path"]),
        ("teacher.batch_size=0", ["teacher.batch_size"]),
        # checked against the student registry before any stage, so `config show` catches them too
        ("student.name=lstm", ["unknown student 'lstm'", "rnn-attention", "cnn"]),
        ("student.arch.hiden_size=3", ["student.arch.hiden_size", "valid keys", "hidden_size"]),
        ("students=[{tag: b, student: {name: cnn, arch: {filters: 3}}}]", ["student 'b'", "arch.filters"]),
        ("students=[{tag: b, student: cnn}]", ["students[0].student", "mapping"]),
        ("students=[{tag: b, distill: {lr: 0}}]", ["students[0].distill", "lr"]),
        ("student.arch.embedding_dim=64", ["embedding_dim=64", "embeddings.vector_size"]),
    ],
)
def test_cli_config_show_bad_key_exits_2(capsys, caplog, override, pieces):
    with caplog.at_level(logging.ERROR, logger="textdistill"):
        assert main(["config", "show", "--set", override]) == 2
    assert capsys.readouterr().out == ""
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    for piece in pieces:
        assert piece in errors[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["teacher.inference=windows"], "teacher.inference must be one of"),
        (["teacher.chunk_aggregate=max"], "teacher.chunk_aggregate must be one of"),
        (["teacher.inference=chunks", "tokens.teacher_max_length=64", "teacher.chunk_stride=63"], "skip tokens"),
    ],
)
def test_chunked_inference_settings_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
    assert load_config(None, ["teacher.inference=chunks", "teacher.chunk_stride=62", "tokens.teacher_max_length=64"])


def test_runs_keyed_before_representation_weight_keep_their_identity_while_it_is_off():
    """Run keys, checkpoint signatures and search studies hash ``distill_identity``: the option is absent at 0."""
    before = {k: v for k, v in dataclasses.asdict(DistillConfig()).items() if k != "representation_weight"}
    assert distill_identity(DistillConfig()) == before
    assert distill_identity(DistillConfig(representation_weight=0.3))["representation_weight"] == 0.3
    with pytest.raises(ConfigError, match="representation_weight must be >= 0"):
        DistillConfig(representation_weight=-1.0)
