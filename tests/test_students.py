"""One contract over every registered student, plus the registry's and the saved format's errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students import build_student, count_parameters, init_embeddings, register, student_names
from textdistill.students.hub import Student, load_weights, save_student, save_weights
from textdistill.tokens import SpecialIds, TokenSettings, pad_batch, window_starts

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "neutral", "positive"]
TINY_ARCH = {
    "ngram-bag": {"embedding_dim": 16, "bigram_buckets": 97},
    "rnn-attention": {"embedding_dim": 16, "hidden_size": 16, "attention_dim": 8, "dropout": 0.1},
    "cnn": {"embedding_dim": 16, "num_filters": 8, "kernel_sizes": [2, 3, 5], "dropout": 0.1},
    "transformer": {"embedding_dim": 12, "d_model": 16, "num_heads": 2, "ff_dim": 32, "max_positions": 64},
    "pretrained-layers": {
        "embedding_dim": 16,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 32,
        "max_positions": 64,
        "dropout": 0.1,
    },
}
CASES = [pytest.param(name, TINY_ARCH.get(name, {}), id=name) for name in student_names()] + [
    pytest.param(
        "rnn-attention", TINY_ARCH["rnn-attention"] | {"cell": "gru", "bidirectional": False}, id="rnn-gru-uni"
    ),
    pytest.param("rnn-attention", TINY_ARCH["rnn-attention"] | {"num_layers": 1}, id="rnn-1-layer"),
    pytest.param("cnn", TINY_ARCH["cnn"] | {"pooling": "max-mean"}, id="cnn-max-mean"),
    pytest.param("cnn", TINY_ARCH["cnn"] | {"chunk": 4, "chunk_stride": 3}, id="cnn-chunked"),
]
TEXTS = [
    "a really wonderful movie with great acting",
    "bad",
    "the plot was boring and the ending was the worst i love to hate",
    "it is not a film",
    "fun",
    "quite dull, but the music was excellent and moving",
    "terrible waste",
    "we love this story",
]


def make_student(name: str, arch: dict, tokenizer, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_student(name, arch, vocab_size=len(tokenizer), num_labels=len(LABELS), pad_id=tokenizer.pad_token_id)


def encode(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    special = SpecialIds.of(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return pad_batch([np.array([special.cls, *row, special.sep]) for row in ids], special.pad)


def save(model: nn.Module, name: str, arch: dict, tokenizer, directory: Path) -> Path:
    return save_student(
        model,
        directory,
        name=name,
        arch=arch,
        label_names=LABELS,
        tokenizer=tokenizer,
        tokens=TokenSettings(12, "head+tail", 0.25),
        metrics={"accuracy": 0.5, "examples": 8},
        card_extra={"Training data": "eight toy sentences"},
    )


@pytest.mark.parametrize(("name", "arch"), CASES)
class TestStudentContract:
    def test_shape_and_determinism(self, name, arch, tiny_tokenizer):
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        first, second = make_student(name, arch, tiny_tokenizer), make_student(name, arch, tiny_tokenizer)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        outputs = []
        for model in (first, second):
            torch.manual_seed(1)
            outputs.append(model.train()(input_ids, attention_mask))
        assert outputs[0].shape == (len(TEXTS), len(LABELS))
        assert torch.isfinite(outputs[0]).all()
        assert torch.equal(outputs[0], outputs[1])
        assert isinstance(first.embedding, nn.Embedding) and isinstance(first.classifier, nn.Linear)

    def test_padding_invariance(self, name, arch, tiny_tokenizer):
        model = make_student(name, arch, tiny_tokenizer).eval()
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        extra = torch.zeros((len(TEXTS), 7), dtype=torch.long)
        padded_ids = torch.cat([input_ids, extra + tiny_tokenizer.pad_token_id], dim=1)
        with torch.no_grad():
            logits = model(input_ids, attention_mask)
            padded = model(padded_ids, torch.cat([attention_mask, extra], dim=1))
            alone = torch.cat([model(*encode(tiny_tokenizer, [text])) for text in TEXTS])
        torch.testing.assert_close(padded, logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(alone, logits, atol=1e-5, rtol=0)

    def test_overfits_one_batch(self, name, arch, tiny_tokenizer):
        model = make_student(name, arch, tiny_tokenizer).train()
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        labels = torch.tensor([2, 0, 0, 1, 2, 1, 0, 2])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(50):
            loss = nn.functional.cross_entropy(model(input_ids, attention_mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.2 * losses[0], losses[::10]

    def test_save_load_predict(self, name, arch, tiny_tokenizer, tmp_path):
        model = make_student(name, arch, tiny_tokenizer).eval()
        directory = save(model, name, arch, tiny_tokenizer, tmp_path / "student")
        assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= {
            p.name for p in directory.iterdir()
        }
        loaded = Student.from_pretrained(directory)
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        with torch.no_grad():
            assert torch.equal(loaded.model(input_ids, attention_mask), model(input_ids, attention_mask))
        assert loaded.label_names == LABELS
        predictions = loaded.predict(TEXTS, batch_size=3)
        assert [p["label"] for p in predictions] == [LABELS[i] for i in loaded.predict_logits(TEXTS).argmax(1)]
        for prediction in predictions:
            assert set(prediction["probabilities"]) == set(LABELS)
            assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        one_by_one = np.concatenate([loaded.predict_logits([text]) for text in TEXTS])
        np.testing.assert_allclose(loaded.predict_logits(TEXTS, batch_size=3), one_by_one, atol=1e-5)

    def test_shrinks_or_says_it_cannot(self, name, arch, tiny_tokenizer):
        """The ``shrunk`` hook: a smaller dense student with the same output shape, or NotImplementedError."""
        model = make_student(name, arch, tiny_tokenizer).eval()
        try:
            smaller = model.shrunk(0.5)
        except NotImplementedError as error:
            assert "structured pruning" in str(error)
            return
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        assert type(smaller) is type(model)
        assert count_parameters(smaller) < count_parameters(model)
        with torch.no_grad():
            assert smaller.eval()(input_ids, attention_mask).shape == (len(TEXTS), len(LABELS))

    def test_exportable_form_gives_the_same_logits(self, name, arch, tiny_tokenizer):
        """The ``exportable`` hook: what ONNX export traces computes the student's logits (up to float rounding)."""
        model = make_student(name, arch, tiny_tokenizer).eval()
        input_ids, attention_mask = encode(tiny_tokenizer, TEXTS)
        with torch.no_grad():
            expected = model(input_ids, attention_mask)
            actual = model.exportable().eval()(input_ids, attention_mask)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)

    def test_init_embeddings(self, name, arch, tiny_tokenizer):
        model = make_student(name, arch, tiny_tokenizer)
        matrix = np.random.default_rng(0).normal(size=tuple(model.embedding.weight.shape)).astype(np.float32)
        init_embeddings(model, matrix, freeze=True)
        assert np.array_equal(model.embedding.weight.detach().numpy(), matrix)
        assert not model.embedding.weight.requires_grad
        with pytest.raises(ValueError, match="expects"):
            init_embeddings(model, matrix[:, :-1], freeze=False)


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(
        ValueError,
        match=r"unknown student 'lstm'; valid students: \['cnn', 'ngram-bag', 'pretrained-layers', 'rnn-att",
    ):
        build_student("lstm", {}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match=r"student.arch.hiden_size.*valid keys here: \['embedding_dim'"):
        build_student("rnn-attention", {"hiden_size": 8}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match="cell must be one of"):
        build_student("rnn-attention", {"cell": "rnn"}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match=r"pooling must be one of \['max', 'max-mean'\], got 'mean'"):
        build_student("cnn", {"pooling": "mean"}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match=r"chunk_stride in \[0, chunk\], got 4 and 6"):
        build_student("cnn", {"chunk": 4, "chunk_stride": 6}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match="divisible"):
        build_student("transformer", {"d_model": 30, "num_heads": 4}, vocab_size=10, num_labels=2)
    with pytest.raises(ConfigError, match="conflicts"):
        build_student("cnn", {"embedding_dim": 8}, vocab_size=10, num_labels=2, embedding_dim=16)
    assert build_student("cnn", {}, vocab_size=10, num_labels=2, embedding_dim=16).embedding.embedding_dim == 16


def test_register_refuses_a_class_without_the_student_hooks():
    @dataclasses.dataclass
    class PlainConfig:
        embedding_dim: int = 4

    class Plain(nn.Module):
        config_class = PlainConfig

    with pytest.raises(TypeError, match="Plain must subclass textdistill.students.StudentModule"):
        register("plain")(Plain)
    assert "plain" not in student_names()


@pytest.fixture
def saved_cnn(tiny_tokenizer, tmp_path) -> Path:
    model = make_student("cnn", TINY_ARCH["cnn"], tiny_tokenizer)
    return save(model, "cnn", TINY_ARCH["cnn"], tiny_tokenizer, tmp_path / "cnn")


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: shutil.rmtree(d), "does not exist"),
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: _edit_config(d, textdistill_student=False), "not a textdistill student"),
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00garbage" * 10), "corrupt or unreadable"),
        (
            lambda d: _edit_config(d, vocab_size=99),
            r"'embedding.weight' has shape \(\d+, 16\) in the file but \(99, 16\)",
        ),
        (lambda d: _edit_config(d, student="transformer"), "not describe a valid student: unknown config key"),
        (
            lambda d: _edit_config(d, arch={"embedding_dim": 16, "num_filters": 8, "kernel_sizes": [2, 3]}),
            "unexpected weight",
        ),
    ],
    ids=[
        "no-dir",
        "no-config",
        "foreign-config",
        "no-weights",
        "corrupt-weights",
        "shape-mismatch",
        "wrong-student",
        "fewer-convs",
    ],
)
def test_from_pretrained_errors(saved_cnn, damage, message):
    damage(saved_cnn)
    with pytest.raises(ValueError, match=message):
        Student.from_pretrained(saved_cnn)


def test_model_card_and_config(saved_cnn):
    config = json.loads((saved_cnn / "config.json").read_text())
    assert config["textdistill_student"] is True and config["student"] == "cnn"
    assert config["arch"]["kernel_sizes"] == [2, 3, 5] and config["arch"]["dropout"] == 0.1
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert config["tokenization"] == {"max_length": 12, "truncation": "head+tail", "head_fraction": 0.25}
    card = (saved_cnn / "README.md").read_text()
    assert "| accuracy | 0.5000 |" in card and "Student.from_pretrained" in card and "eight toy sentences" in card


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(5, 3)
        self.classifier = nn.Linear(3, 5, bias=False)
        self.classifier.weight = self.embedding.weight


def test_tied_weights_are_stored_once_and_restored(tmp_path):
    torch.manual_seed(0)
    source, target = Tied(), Tied()
    save_weights(source, tmp_path / "tied.safetensors")
    load_weights(target, tmp_path / "tied.safetensors")
    assert torch.equal(target.classifier.weight, source.embedding.weight)
    assert target.classifier.weight is target.embedding.weight


# ---------------------------------------------------------------------------------------------------
# Integrity of saved students: checksums, fingerprints, non-finite weights, file mode


def _flip_tensor_bytes(path: Path, count: int) -> None:
    """XOR ``count`` bytes of the tensor data (after the safetensors header) with 0x55."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    for offset in range(start, min(start + count, len(data))):
        data[offset] ^= 0x55
    path.write_bytes(bytes(data))


def _tokenizer_with(words: list[str], directory: Path):
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizerFast.from_pretrained(str(directory), do_lower_case=True)


def _words(tokenizer) -> list[str]:
    """The tokenizer's vocabulary in id order, without the five special tokens."""
    return [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])][5:]


def _replace_tokenizer(directory: Path, tokenizer) -> None:
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (directory / name).unlink(missing_ok=True)
    tokenizer.save_pretrained(str(directory))


def test_config_records_weights_checksum_and_tokenizer_fingerprint(saved_cnn, tiny_tokenizer):
    import hashlib

    from textdistill.tokens import tokenizer_fingerprint

    config = json.loads((saved_cnn / "config.json").read_text())
    assert config["weights_sha256"] == hashlib.sha256((saved_cnn / "model.safetensors").read_bytes()).hexdigest()
    assert config["tokenizer_fingerprint"] == tokenizer_fingerprint(tiny_tokenizer)


def test_flipped_weight_bytes_are_refused(saved_cnn):
    _flip_tensor_bytes(saved_cnn / "model.safetensors", 200)  # still a readable file, with different numbers
    with pytest.raises(ValueError, match=r"model.safetensors does not match the weights_sha256 in .*config.json"):
        Student.from_pretrained(saved_cnn)


def test_non_finite_weights_are_refused_at_load(tiny_tokenizer, tmp_path):
    model = make_student("cnn", TINY_ARCH["cnn"], tiny_tokenizer)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    directory = save(model, "cnn", TINY_ARCH["cnn"], tiny_tokenizer, tmp_path / "nan")  # checksum matches NaN
    with pytest.raises(ValueError, match=r"model.safetensors holds NaN or inf values in 'classifier.weight'"):
        Student.from_pretrained(directory)


def test_non_finite_logits_are_an_error_not_a_label(saved_cnn):
    student = Student.from_pretrained(saved_cnn)
    with torch.no_grad():
        student.model.classifier.bias[1] = float("inf")  # inf - inf in the softmax: NaN probabilities
        student.model.classifier.bias[2] = float("-inf")
    with pytest.raises(ValueError, match=r"NaN or inf logits for 2 of 2 texts \(indices \[0, 1\]\)"):
        student.predict(["good", "bad"])


def test_a_same_size_tokenizer_of_another_model_is_refused(saved_cnn, tiny_tokenizer, tmp_path):
    other = _tokenizer_with(_words(tiny_tokenizer)[::-1], tmp_path / "other")
    assert len(other) == len(tiny_tokenizer)
    _replace_tokenizer(saved_cnn, other)
    with pytest.raises(ValueError, match="not the ones the student was saved with"):
        Student.from_pretrained(saved_cnn)


@pytest.mark.parametrize("legacy", [False, True], ids=["fingerprinted", "legacy"])
def test_a_larger_tokenizer_than_the_embedding_is_refused(saved_cnn, tiny_tokenizer, tmp_path, legacy):
    if legacy:
        config = json.loads((saved_cnn / "config.json").read_text())
        del config["weights_sha256"], config["tokenizer_fingerprint"]
        (saved_cnn / "config.json").write_text(json.dumps(config))
    _replace_tokenizer(saved_cnn, _tokenizer_with([*_words(tiny_tokenizer), "extra", "words"], tmp_path / "larger"))
    with pytest.raises(ValueError, match=rf"has {len(tiny_tokenizer) + 2} tokens but the student's embedding has"):
        Student.from_pretrained(saved_cnn)


def test_a_student_saved_without_checksums_loads_with_a_warning(saved_cnn, caplog):
    config = json.loads((saved_cnn / "config.json").read_text())
    expected = Student.from_pretrained(saved_cnn).predict_logits(TEXTS)
    del config["weights_sha256"], config["tokenizer_fingerprint"]
    (saved_cnn / "config.json").write_text(json.dumps(config))
    caplog.clear()
    np.testing.assert_array_equal(Student.from_pretrained(saved_cnn).predict_logits(TEXTS), expected)
    assert "has no weights_sha256 or tokenizer_fingerprint (saved by an older textdistill)" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"texts\[1\] is empty or whitespace-only"),
        (" \t\n", r"texts\[1\] is empty or whitespace-only"),
        ("<br /><br />", r"texts\[1\] is empty or whitespace-only"),  # nothing left after normalisation
        ("bad \ud800 film", r"texts\[1\] is not valid Unicode: an unpaired surrogate '\\ud800' at character 4"),
    ],
    ids=["empty", "whitespace", "only-breaks", "lone-surrogate"],
)
def test_predict_refuses_texts_it_cannot_classify(saved_cnn, text, message):
    with pytest.raises(ValueError, match=message):
        Student.from_pretrained(saved_cnn).predict(["good", text])


def test_weights_file_mode_follows_the_umask(tiny_tokenizer, tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        directory = save(make_student("cnn", TINY_ARCH["cnn"], tiny_tokenizer), "cnn", {}, tiny_tokenizer, tmp_path)
    finally:
        os.umask(previous)
    assert (directory / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_cnn_max_mean_pooling_reads_how_much_of_a_text_a_pattern_covers(tiny_tokenizer):
    """Max pooling sees one "great" and ten alike; the mean beside it tells them apart."""
    ids = tiny_tokenizer("great", add_special_tokens=False)["input_ids"]
    filler = tiny_tokenizer("the", add_special_tokens=False)["input_ids"]
    once, ten_times = ids + filler * 9, (ids + filler) * 5
    inputs = pad_batch([np.array(once), np.array(ten_times)], tiny_tokenizer.pad_token_id)
    arch = TINY_ARCH["cnn"] | {"kernel_sizes": [1], "dropout": 0.0}
    with torch.no_grad():
        features = {}
        for pooling in ("max", "max-mean"):
            model = make_student("cnn", arch | {"pooling": pooling}, tiny_tokenizer).eval()
            model.classifier = nn.Identity()  # the pooled features themselves
            features[pooling] = model(*inputs)
    torch.testing.assert_close(features["max"][0], features["max"][1])
    width = arch["num_filters"]
    torch.testing.assert_close(features["max-mean"][:, :width], features["max"])
    assert not torch.allclose(features["max-mean"][0, width:], features["max-mean"][1, width:])


def test_cnn_chunks_average_the_max_over_the_windows_a_chunked_teacher_reads(tiny_tokenizer):
    """With 1-token filters, each chunk's max is the plain max over that window's tokens alone: the chunked
    features are their mean over ``tokens.window_starts`` (the teacher's windows), whatever the padding."""
    texts = ["the plot was boring and the ending was the worst i love to hate", "bad", "we love this story"]
    rows = [np.array(row) for row in tiny_tokenizer(texts, add_special_tokens=False)["input_ids"]]
    arch = TINY_ARCH["cnn"] | {"kernel_sizes": [1], "dropout": 0.0}
    chunked = make_student("cnn", arch | {"chunk": 4, "chunk_stride": 3}, tiny_tokenizer).eval()
    plain = make_student("cnn", arch, tiny_tokenizer).eval()  # same seed: the same weights
    chunked.classifier = plain.classifier = nn.Identity()
    with torch.no_grad():
        got = chunked(*pad_batch(rows, tiny_tokenizer.pad_token_id))
        for row, features in zip(rows, got, strict=True):
            windows = [row[start : start + 4] for start in window_starts(len(row), 4, 3)]
            expected = plain(*pad_batch(windows, tiny_tokenizer.pad_token_id)).mean(dim=0)
            torch.testing.assert_close(features, expected)
    assert len(window_starts(len(rows[0]), 4, 3)) > 2  # the long text is read in several chunks
