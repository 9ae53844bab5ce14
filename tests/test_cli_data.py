"""``textdistill data``: load, split, tokenise and embed a tiny local dataset, and print its statistics as JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from textdistill import embeddings, tokens
from textdistill.cli import main

# Word lists (every word is one token of the tiny tokenizer); lengths below count [CLS] and [SEP].
POS = "great wonderful excellent love".split()  # noqa: SIM905 (4 words: 6 tokens)
NEG = "the a film was boring dull awful terrible worst hate waste bad plot acting".split()  # noqa: SIM905 (16 tokens)
UNSUP = "story music ending scene and".split()  # noqa: SIM905 (5 words: 7 tokens)
TEST = "the movie is very good and fun with great music"  # 10 words: 12 tokens


def rotations(words: list[str], count: int) -> list[str]:
    return [" ".join(words[i % len(words) :] + words[: i % len(words)]) for i in range(count)]


def write_dataset(directory: Path) -> Path:
    directory.mkdir()
    train = pd.DataFrame({"text": rotations(POS, 12) + rotations(NEG, 12), "label": ["pos"] * 12 + ["neg"] * 12})
    train.to_csv(directory / "train.csv", index=False)
    test = pd.DataFrame({"text": [TEST] * 8, "label": ["pos", "neg"] * 4, "id": [f"t{i}" for i in range(8)]})
    test.to_parquet(directory / "test.parquet", index=False)
    pd.DataFrame({"text": rotations(UNSUP, 6)}).to_json(directory / "unsup.jsonl", orient="records", lines=True)
    return directory


@pytest.fixture
def run_config(tmp_path, tiny_tokenizer) -> tuple[str, list[str]]:
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_tokenizer.save_pretrained(str(tokenizer_dir))
    data_dir = write_dataset(tmp_path / "data")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"cache_dir: {tmp_path / 'cache'}\n"
        f"data:\n  path: {data_dir}\n"
        f"teacher:\n  model: {tokenizer_dir}\n"
        "embeddings:\n  vector_size: 8\n  window: 2\n  epochs: 1\n  workers: 1\n",
        encoding="utf-8",
    )
    overrides = [
        f"tokens.tokenizer={tokenizer_dir}",
        "tokens.teacher_max_length=8",
        "tokens.student_max_length=16",
        "embeddings.min_count=1",
    ]
    return str(config), [part for item in overrides for part in ("--set", item)]


def run_data(capsys, config: str, overrides: list[str]) -> dict:
    assert main(["data", config, *overrides]) == 0
    return json.loads(capsys.readouterr().out)


def test_data_command_reports_statistics(run_config, capsys, tiny_tokenizer):
    report = run_data(capsys, *run_config)
    splits = report["splits"]
    assert report["labels"] == ["neg", "pos"]
    assert {name: s["rows"] for name, s in splits.items()} == {
        "train": 20,
        "validation": 4,
        "test": 8,
        "unlabelled": 6,
    }
    assert splits["train"]["label_balance"] == {"neg": 10, "pos": 10}
    assert splits["validation"]["label_balance"] == {"neg": 2, "pos": 2}
    assert splits["test"]["label_balance"] == {"neg": 4, "pos": 4}
    assert splits["unlabelled"]["label_balance"] is None
    assert all(s["dropped_rows"] == 0 and len(s["fingerprint"]) == 16 for s in splits.values())
    # Train repeats each of the 4 POS rotations 3 times: both validation POS rows repeat a train text.
    # Test is one text 8 times; the unlabelled rotations of 5 words repeat once.
    duplicates = report["duplicates"]
    assert duplicates["within_split"]["test"] == 7 and duplicates["within_split"]["unlabelled"] == 1
    assert duplicates["overlap"] == {
        "validation": {"train": 2},
        "test": {"train": 0, "validation": 0},
        "unlabelled": {"validation": 0, "test": 0},
    }
    assert duplicates["dropped"] == {"validation": 0, "test": 0, "unlabelled": 0}

    # Lengths include [CLS] and [SEP]; train and validation are half 6-token and half 16-token texts.
    for name in ("train", "validation"):
        lengths = splits[name]["token_lengths"]
        assert (lengths["p50"], lengths["p90"], lengths["p99"], lengths["mean"]) == (11.0, 16.0, 16.0, 11.0)
        assert lengths["truncated_at_teacher_8"] == 0.5
        assert lengths["truncated_at_student_16"] == 0.0
    test = splits["test"]["token_lengths"]
    assert (test["p50"], test["p90"], test["p99"]) == (12.0, 12.0, 12.0)
    assert (test["truncated_at_teacher_8"], test["truncated_at_student_16"]) == (1.0, 0.0)
    unlabelled = splits["unlabelled"]["token_lengths"]
    assert (unlabelled["p50"], unlabelled["truncated_at_teacher_8"]) == (7.0, 0.0)

    vocab_size = len(tiny_tokenizer)
    seen = len(set(POS) | set(NEG) | set(UNSUP))  # train + unlabelled words, all kept with min_count=1
    assert report["word2vec"] == {
        "vocabulary_rows": vocab_size,
        "vector_size": 8,
        "vocabulary_coverage": pytest.approx(seen / vocab_size),
        "training_token_coverage": 1.0,
    }


def test_second_run_reuses_tokens_and_embeddings(run_config, capsys, monkeypatch):
    first = run_data(capsys, *run_config)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(tokens, "encode_texts", fail)
    monkeypatch.setattr(embeddings, "train_word2vec", fail)
    assert run_data(capsys, *run_config) == first


def test_data_command_without_unlabelled_or_embeddings(run_config, capsys):
    config, overrides = run_config
    report = run_data(
        capsys, config, [*overrides, "--set", "data.use_unlabelled=false", "--set", "embeddings.enabled=false"]
    )
    assert set(report["splits"]) == {"train", "validation", "test"}
    assert "word2vec" not in report


def test_data_command_warns_about_leaks_and_drops_them_on_request(run_config, capsys, caplog):
    config, overrides = run_config
    with caplog.at_level(logging.WARNING, logger="textdistill"):
        kept = run_data(capsys, config, overrides)
    assert any("'validation in train': 2" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    dropped = run_data(capsys, config, [*overrides, "--set", "data.drop_overlap=true"])
    assert dropped["duplicates"]["dropped"] == {"validation": 2, "test": 0, "unlabelled": 0}
    assert dropped["splits"]["validation"]["rows"] == kept["splits"]["validation"]["rows"] - 2
    assert dropped["splits"]["validation"]["label_balance"] == {"neg": 2, "pos": 0}


def test_data_section_of_the_run_report(run_config, capsys):
    from textdistill.report import data_section

    lines = data_section(run_data(capsys, *run_config))
    assert lines[0] == "## Data"
    validation = next(line for line in lines if line.startswith("| validation |"))
    assert "| 4 |" in validation and "| train: 2 |" in validation
    test = next(line for line in lines if line.startswith("| test |"))
    assert "| 7 | train: 0, validation: 0 | 0 |" in test
    assert any("**2 validation/test/unlabelled row(s) repeat a text of another split**" in line for line in lines)
    assert data_section({"splits": {"train": {"rows": 5, "fingerprint": "f", "dropped_rows": 0}}})[4] == (
        "| train | 5 | f | 0 | – | – | – |"  # a data.json without duplicate counts
    )


def test_data_command_exits_2_on_bad_data(run_config, capsys, caplog):
    config, overrides = run_config
    with caplog.at_level(logging.ERROR, logger="textdistill"):
        assert main(["data", config, *overrides, "--set", "data.text_column=review"]) == 2
    assert capsys.readouterr().out == ""
    assert any("review" in r.getMessage() and "columns that exist" in r.getMessage() for r in caplog.records)
