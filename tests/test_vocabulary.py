"""Vocabulary pruning: kept rows read exactly as before, dropped tokens read [UNK], and every path applies it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from textdistill import compress
from textdistill.students import PrunedEmbedding, build_student
from textdistill.students.hub import Student, predict_logits, save_student
from textdistill.tokens import TokenSettings

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "positive"]
VOCAB, PAD, UNK = 60, 0, 1
SPECIAL = (0, 1, 2, 3)  # pad, unk, cls, sep
ARCHS = {
    "rnn-attention": {"embedding_dim": 12, "hidden_size": 16, "attention_dim": 8, "bidirectional": True},
    "cnn": {"embedding_dim": 12, "num_filters": 8, "kernel_sizes": [2, 3]},
    "transformer": {"embedding_dim": 12, "d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 1},
    "ngram-bag": {"embedding_dim": 12, "bigram_buckets": 32},
    "pretrained-layers": {"embedding_dim": 12, "num_heads": 2, "intermediate_size": 24, "num_layers": 1},
}
KEPT = np.array([*SPECIAL, *range(5, 40, 2)])  # odd ids 5..39 kept; 4, the even ids and 40.. dropped


def make(name: str, vocab_size: int = VOCAB) -> nn.Module:
    torch.manual_seed(0)
    return build_student(name, ARCHS[name], vocab_size=vocab_size, num_labels=2, pad_id=PAD).eval()


def rows(ids: np.ndarray, count: int = 10, seed: int = 0) -> list[np.ndarray]:
    """``count`` [CLS] … [SEP] sequences of 1 to 12 tokens drawn from ``ids``."""
    rng = np.random.default_rng(seed)
    return [np.concatenate([[2], rng.choice(ids, 1 + i % 12), [3]]).astype(np.int64) for i in range(count)]


def kept_rows() -> list[np.ndarray]:
    return rows(KEPT[KEPT >= 5])


def with_dropped_tokens() -> list[np.ndarray]:
    return rows(np.arange(4, VOCAB), seed=1)


def as_unk(sequences: list[np.ndarray]) -> list[np.ndarray]:
    """The sequences with every dropped id replaced by [UNK]."""
    return [np.where(np.isin(s, KEPT), s, UNK) for s in sequences]


def test_token_counts_and_kept_ids():
    counts = compress.token_counts([np.array([2, 5, 5, 7, 3]), np.array([2, 7, 3])], 10)
    assert counts.tolist() == [0, 0, 2, 2, 0, 2, 0, 2, 0, 0]
    assert compress.kept_token_ids(counts, 2, [0, 1]).tolist() == [0, 1, 2, 3, 5, 7]
    assert compress.kept_token_ids(counts, 3, [0, 1]).tolist() == [0, 1]
    with pytest.raises(ValueError, match="min_count"):
        compress.kept_token_ids(counts, 0, [])


def test_id_map_sends_dropped_ids_to_the_unk_row():
    id_map = compress.id_map_for(np.array([0, 1, 4, 6]), 8, unk_id=1)
    assert id_map.dtype == torch.int32
    assert id_map.tolist() == [0, 1, 1, 1, 2, 1, 3, 1]
    with pytest.raises(ValueError, match="UNK"):
        compress.id_map_for(np.array([0, 4]), 8, unk_id=1)


@pytest.mark.parametrize("name", list(ARCHS))
def test_kept_texts_give_bit_equal_logits_and_dropped_tokens_read_unk(name):
    model = make(name)
    pruned = compress.prune_vocabulary(model, KEPT, UNK, min_count=2)
    assert isinstance(pruned.embedding, PrunedEmbedding) and pruned.embedding.weight.shape == (len(KEPT), 12)
    assert pruned.input_vocabulary() == (VOCAB, PAD)
    assert not isinstance(model.embedding, PrunedEmbedding)  # the input model is left alone
    for batch_size in (1, 4):
        kept = kept_rows()
        np.testing.assert_array_equal(
            predict_logits(pruned, kept, PAD, batch_size), predict_logits(model, kept, PAD, batch_size)
        )
    dropped = with_dropped_tokens()
    expected = predict_logits(model, as_unk(dropped), PAD, 4)
    if name == "ngram-bag":  # its hashed bigrams read the tokenizer's ids, which pruning leaves alone
        expected = predict_logits(_unk_unigrams(model), dropped, PAD, 4)
    np.testing.assert_array_equal(predict_logits(pruned, dropped, PAD, 4), expected)
    assert not np.array_equal(predict_logits(pruned, dropped, PAD, 4), predict_logits(model, dropped, PAD, 4))


def _unk_unigrams(model: nn.Module) -> nn.Module:
    """The unpruned ngram-bag with every dropped unigram row replaced by the [UNK] row."""
    copy = make("ngram-bag")
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        dropped = torch.from_numpy(np.setdiff1d(np.arange(VOCAB), KEPT))
        copy.embedding.weight[dropped] = copy.embedding.weight[UNK].clone()
    return copy


def test_pruning_by_counts_keeps_what_training_saw():
    model = make("cnn")
    training = kept_rows()
    pruned, record = compress.prune_vocabulary_by_counts(model, training, 1, SPECIAL, UNK)
    seen = np.unique(np.concatenate(training))
    assert record["kept_rows"] == len(np.union1d(seen, SPECIAL)) == pruned.embedding.num_embeddings
    assert record["vocab_size"] == VOCAB and record["embedding_parameters_after"] == record["kept_rows"] * 12
    np.testing.assert_array_equal(predict_logits(pruned, training, PAD), predict_logits(model, training, PAD))
    again, _ = compress.prune_vocabulary_by_counts(pruned, training, 1, SPECIAL, UNK)  # pruning twice
    np.testing.assert_array_equal(predict_logits(again, training, PAD), predict_logits(model, training, PAD))


def save(model: nn.Module, name: str, tokenizer, directory):
    return save_student(
        model,
        directory,
        name=name,
        arch=ARCHS[name],
        label_names=LABELS,
        tokenizer=tokenizer,
        tokens=TokenSettings(32, "head", 0.25),
    )


def _tokenizer_kept(tokenizer) -> np.ndarray:
    """Special ids and the ids of a few words of the tiny tokenizer's vocabulary."""
    ids = tokenizer(["a wonderful film", "boring"], add_special_tokens=False)["input_ids"]
    return np.unique([*tokenizer.all_special_ids, *[i for row in ids for i in row]])


@pytest.mark.parametrize("name", ["cnn", "rnn-attention", "pretrained-layers"])
def test_pruned_student_saves_loads_and_exports(name, tiny_tokenizer, tmp_path):
    vocab = len(tiny_tokenizer)
    model = make(name, vocab)
    keep = _tokenizer_kept(tiny_tokenizer)
    pruned = compress.prune_vocabulary(model, keep, tiny_tokenizer.unk_token_id, min_count=3)
    directory = save(pruned, name, tiny_tokenizer, tmp_path / "pruned")
    full = save(model, name, tiny_tokenizer, tmp_path / "full")
    loaded = Student.from_pretrained(directory)
    assert loaded.config["vocabulary"] == {
        "rows": len(keep),
        "pad_row": int(np.searchsorted(keep, PAD)),
        "min_count": 3,
    }
    assert loaded.config["vocab_size"] == vocab and "embedding rows kept" in (directory / "README.md").read_text()
    assert (directory / "model.safetensors").stat().st_size < (full / "model.safetensors").stat().st_size
    kept_texts, other = ["a wonderful film", "boring film"], ["the worst acting and a dull plot"]
    original = Student.from_pretrained(full)
    np.testing.assert_array_equal(loaded.predict_logits(kept_texts), original.predict_logits(kept_texts))
    np.testing.assert_array_equal(loaded.predict_logits(other), predict_logits(pruned, loaded.sequences(other), PAD))
    onnx_path = compress.export_onnx(loaded.model, directory / compress.ONNX_NAME, max_length=32)
    onnx_student = compress.load_onnx_student(directory)
    texts = kept_texts + other
    np.testing.assert_allclose(onnx_student.predict_logits(texts), loaded.predict_logits(texts), atol=1e-5)
    table = dict(compress.onnx_initializers(onnx_path))
    assert any(array.shape == (len(keep), 12) for array in table.values())  # the shrunk table is what ships
    assert not any(array.shape == (vocab, 12) for array in table.values())


def test_structured_pruning_of_a_pruned_student_keeps_its_vocabulary():
    pruned = compress.prune_vocabulary(make("cnn"), KEPT, UNK)
    smaller = compress.structured_prune(pruned, 0.0)
    assert isinstance(smaller.embedding, PrunedEmbedding) and smaller.input_vocabulary() == (VOCAB, PAD)
    dropped = with_dropped_tokens()
    np.testing.assert_array_equal(predict_logits(smaller, dropped, PAD), predict_logits(pruned, dropped, PAD))


def test_pruning_needs_the_padding_and_unk_ids():
    with pytest.raises(ValueError, match="padding"):
        compress.prune_vocabulary(make("cnn"), np.array([1, 5]), UNK)
    with pytest.raises(ValueError, match="UNK"):
        compress.prune_vocabulary(make("cnn"), np.array([0, 5]), UNK)


def test_deploy_prunes_the_vocabulary_and_reports_the_sizes(tiny_tokenizer, tmp_path):
    from textdistill import deploy
    from textdistill.config import load_config

    vocab = len(tiny_tokenizer)
    directory = save(make("cnn", vocab), "cnn", tiny_tokenizer, tmp_path / "model")
    training = Student.from_pretrained(directory).sequences(["a wonderful film", "boring", "a boring film"])
    validation = rows(np.unique(np.concatenate(training)), count=40)
    config = load_config(None, ["compress.vocabulary_min_count=1"])
    made = deploy.deployables(config, directory, validation, training, runs=3)
    record, deploy_dir = made["vocabulary"], tmp_path / deploy.DEPLOY_DIR_NAME
    assert made["directory"] == str(deploy_dir) and (deploy_dir / compress.ONNX_NAME).is_file()
    assert record["kept_rows"] == len(np.union1d(np.concatenate(training), tiny_tokenizer.all_special_ids))
    assert record["bytes_after"] < record["bytes_before"] == (directory / "model.safetensors").stat().st_size
    assert made["onnx_parity_max_abs_diff"] < compress.ONNX_PARITY_TOLERANCE
    assert not (directory / compress.ONNX_NAME).exists()  # the trained student's directory is left alone
    pruned = Student.from_pretrained(deploy_dir)
    np.testing.assert_array_equal(
        predict_logits(pruned.model, validation, PAD), predict_logits(made["models"]["float"], validation, PAD)
    )
    assert made["int8"]["shipped"] and made["int8"]["agreement"] >= 0.995
    measured = {row["name"]: row for row in made["int8"]["variants"]}
    assert "onnx int8 (static)" in measured  # calibrated on the training ids, measured like the dynamic files
    assert 0.0 <= measured["onnx int8 (static)"]["agreement"] <= 1.0
    weights = dict(compress.onnx_initializers(deploy_dir / compress.ONNX_INT8_NAME))
    assert any(a.dtype == np.int32 and a.shape == (vocab,) for a in weights.values())  # id_map is never quantized
    assert any(a.dtype.itemsize == 1 and a.shape == (record["kept_rows"], 12) for a in weights.values())  # 8 bits
    texts = ["a wonderful film", "the worst acting"]
    int8 = compress.load_onnx_student(deploy_dir, compress.ONNX_INT8_NAME)
    assert [p["label"] for p in int8.predict(texts)] == [p["label"] for p in pruned.predict(texts)]


def test_predict_serve_and_bench_read_a_pruned_directory(tiny_tokenizer, tmp_path, capsys):
    """The CLI's `predict`, `serve`'s predictors (PyTorch and ONNX) and `bench`'s entries all load the pruned
    student and answer as the pruned model does."""
    from textdistill.bench import BenchConfig, bench_models, entries_for_directory
    from textdistill.cli import main
    from textdistill.serve import load_predictor

    keep = _tokenizer_kept(tiny_tokenizer)
    pruned = compress.prune_vocabulary(make("cnn", len(tiny_tokenizer)), keep, tiny_tokenizer.unk_token_id)
    directory = save(pruned, "cnn", tiny_tokenizer, tmp_path / "pruned")
    compress.export_onnx(pruned, directory / compress.ONNX_NAME, max_length=32)
    texts = ["a wonderful film", "the worst acting and a dull plot"]
    expected = predict_logits(pruned, Student.from_pretrained(directory).sequences(texts), PAD)
    assert main(["predict", str(directory), *texts]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in printed] == [LABELS[i] for i in expected.argmax(-1)]
    for onnx_file in (None, compress.ONNX_NAME):
        served = load_predictor(directory, onnx_file).predict(texts)
        probabilities = torch.softmax(torch.from_numpy(expected), -1).numpy()
        for prediction, row in zip(served, probabilities, strict=True):
            assert prediction["probabilities"] == pytest.approx(dict(zip(LABELS, row.tolist(), strict=True)), abs=1e-5)
    entries, length, _ = entries_for_directory(directory)
    assert [e.name for e in entries] == ["cnn", "cnn onnx"] and length == 32
    config = BenchConfig(runs=2, warmup=1, batch_size=2, threads=[1])
    rows = bench_models(entries, config, [8], Student.from_pretrained(directory).sequences(texts), pad_id=PAD)
    assert all(row["latency_ms_p50"] > 0 for row in rows)
