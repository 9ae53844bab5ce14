"""Built-in stand-ins: the toy dataset and tiny BERT are deterministic and appear in the cache whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from textdistill import builtin
from textdistill.config import DataConfig
from textdistill.data import load_dataset

SIZES = (40, 10, 10)


def toy_texts(directory: Path) -> list[str]:
    return pd.read_parquet(builtin.write_toy_dataset(directory, sizes=SIZES) / "train.parquet")["text"].tolist()


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def siblings(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.parent.iterdir() if path.name != directory.name)


# ---------------------------------------------------------------------------------------------------
# Determinism


def test_tiny_bert_is_byte_identical_when_built_twice(tmp_path):
    import torch

    texts = toy_texts(tmp_path / "toy")
    before = torch.random.get_rng_state()
    first = file_bytes(builtin.build_tiny_bert(tmp_path / "a", texts, vocab_size=120))
    second = file_bytes(builtin.build_tiny_bert(tmp_path / "b", texts, vocab_size=120))
    assert set(first) >= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert first == second  # tokenizers' WordPieceTrainer gave another vocabulary on (almost) every build
    assert torch.equal(torch.random.get_rng_state(), before)  # seeding the weights leaves the caller's RNG alone


def test_vocabulary_is_ranked_by_count_then_token_and_covers_every_character():
    texts = ["Bb bb aa, cc.", "aa bb dd"]
    vocab = builtin.wordpiece_vocabulary(texts, vocab_size=100)
    alphabet = [",", ".", "a", "b", "c", "d"]
    fixed = builtin.SPECIAL_TOKENS + alphabet + ["##" + char for char in alphabet]
    assert vocab[: len(fixed)] == fixed
    assert vocab[len(fixed) :] == ["bb", "aa", "cc", "dd"]  # bb: 3 (lowercased), aa: 2, then ties by token
    assert builtin.wordpiece_vocabulary(texts[::-1], vocab_size=100) == vocab  # text order does not matter
    assert builtin.wordpiece_vocabulary(texts, vocab_size=len(fixed) + 1) == [*fixed, "bb"]


def test_tiny_bert_encodes_its_training_texts_without_unknown_tokens(tmp_path):
    from transformers import AutoTokenizer

    texts = toy_texts(tmp_path / "toy")
    tokenizer = AutoTokenizer.from_pretrained(str(builtin.build_tiny_bert(tmp_path / "bert", texts, vocab_size=60)))
    for ids in tokenizer(texts[:10])["input_ids"]:
        assert tokenizer.unk_token_id not in ids and ids[0] == tokenizer.cls_token_id


# ---------------------------------------------------------------------------------------------------
# Atomic writes


def test_build_killed_half_way_leaves_nothing_and_the_next_build_succeeds(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "toy-reviews"
    written = []
    to_parquet = pd.DataFrame.to_parquet

    def dies_after_one_file(frame, path, *args, **kwargs):
        if written:
            raise KeyboardInterrupt("killed")
        written.append(path)
        return to_parquet(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", dies_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        builtin.write_toy_dataset(target, sizes=SIZES)
    assert not target.exists() and siblings(target) == []  # no half dataset, and the partial copy is removed
    monkeypatch.undo()
    dataset = load_dataset(DataConfig(path=str(builtin.write_toy_dataset(target, sizes=SIZES))))
    assert len(dataset.train) + len(dataset.validation) == SIZES[0] and len(dataset.test) == SIZES[1]


def test_half_written_dataset_is_rebuilt_and_partial_leftovers_ignored(tmp_path):
    target = tmp_path / "toy-reviews"
    target.mkdir()
    (target / "train.parquet").write_bytes(b"PAR1 truncated")  # what a kill left with the old, in-place writer
    leftover = tmp_path / ".toy-reviews.partial-dead"  # what a kill -9 leaves with the new writer
    leftover.mkdir()
    (leftover / "train.parquet").write_bytes(b"junk")
    builtin.write_toy_dataset(target, sizes=SIZES)
    assert sorted(p.name for p in target.iterdir()) == [
        builtin.MARKER,
        "test.parquet",
        "train.parquet",
        "unsup.parquet",
    ]
    assert len(pd.read_parquet(target / "unsup.parquet")) == SIZES[2]
    assert siblings(target) == [leftover.name]  # never read; another process may still be writing it


def test_dataset_of_another_recipe_is_rebuilt_and_a_finished_one_reused(tmp_path, monkeypatch):
    target = tmp_path / "toy-reviews"
    builtin.write_toy_dataset(target, sizes=(20, 10, 10))
    builtin.write_toy_dataset(target, sizes=SIZES)
    assert len(pd.read_parquet(target / "train.parquet")) == SIZES[0]
    assert json.loads((target / builtin.MARKER).read_text())["sizes"] == list(SIZES)

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although finished")

    monkeypatch.setattr(builtin, "build_atomically", fail)
    assert builtin.write_toy_dataset(target, sizes=SIZES) == target


def test_half_written_tiny_bert_is_rebuilt(tmp_path):
    from transformers import AutoModel

    texts = toy_texts(tmp_path / "toy")
    target = tmp_path / "tiny-bert"
    target.mkdir()
    (target / "config.json").write_text('{"model_type": "bert"}')  # killed before the weights were written
    builtin.build_tiny_bert(target, texts, vocab_size=60)
    assert (target / "model.safetensors").is_file() and (target / builtin.MARKER).is_file()
    assert AutoModel.from_pretrained(str(target)).config.hidden_size == 64
