"""Pruning, quantization and ONNX export on tiny students."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from textdistill import compress
from textdistill.config import DistillConfig
from textdistill.students import build_student, count_parameters
from textdistill.students.hub import Student, predict_logits, read_weights, save_student
from textdistill.students.rnn_attention import UnpackedRNNAttention
from textdistill.tokens import TokenSettings, pad_batch
from textdistill.train import DistillData

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["negative", "positive"]
ARCHS = {
    "lstm": ("rnn-attention", {"embedding_dim": 12, "hidden_size": 16, "attention_dim": 8, "num_layers": 2}),
    "gru-uni": (
        "rnn-attention",
        {"embedding_dim": 12, "hidden_size": 16, "attention_dim": 8, "cell": "gru", "bidirectional": False},
    ),
    "cnn": ("cnn", {"embedding_dim": 12, "num_filters": 8, "kernel_sizes": [2, 3]}),
    "cnn-max-mean": ("cnn", {"embedding_dim": 12, "num_filters": 8, "kernel_sizes": [2, 3], "pooling": "max-mean"}),
    "cnn-chunked": (
        "cnn",
        {"embedding_dim": 12, "num_filters": 8, "kernel_sizes": [2, 3], "chunk": 8, "chunk_stride": 6},
    ),
    "transformer": (
        "transformer",
        {"embedding_dim": 12, "d_model": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 2, "max_positions": 64},
    ),
    "bert-layers": (
        "pretrained-layers",
        {"embedding_dim": 16, "num_heads": 2, "intermediate_size": 32, "num_layers": 2, "max_positions": 64},
    ),
}
LENGTHS = [5, 12, 3, 9, 1, 16, 7, 2, 11, 4]  # content lengths: mixed, one of a single token


def make(kind: str, vocab_size: int = 60, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    name, arch = ARCHS[kind]
    return build_student(name, arch, vocab_size=vocab_size, num_labels=len(LABELS), pad_id=0).eval()


def sequences(vocab_size: int = 60, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.concatenate([[2], rng.integers(5, vocab_size, n), [3]]).astype(np.int64) for n in LENGTHS]


def logits(model: nn.Module, rows: list[np.ndarray] | None = None, batch_size: int = 4) -> np.ndarray:
    return predict_logits(model, rows or sequences(), pad_id=0, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------------
# Unstructured pruning


def test_prunable_weights_are_matrices_not_embeddings_or_biases():
    names = [name for name, _, _ in compress.prunable_weights(make("lstm"))]
    assert names == [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l0_reverse",
        "rnn.weight_hh_l0_reverse",
        "rnn.weight_ih_l1",
        "rnn.weight_hh_l1",
        "rnn.weight_ih_l1_reverse",
        "rnn.weight_hh_l1_reverse",
        "attention.proj.weight",
        "attention.score.weight",
        "classifier.weight",
    ]
    assert [n for n, _, _ in compress.prunable_weights(make("cnn"))] == [
        "convs.0.weight",
        "convs.1.weight",
        "classifier.weight",
    ]
    transformer = [n for n, _, _ in compress.prunable_weights(make("transformer"))]
    assert (
        "encoder.layers.0.self_attn.in_proj_weight" in transformer and "encoder.layers.1.linear2.weight" in transformer
    )
    assert not any("embedding" in n or "positions" in n or "norm" in n for n in transformer)


@pytest.mark.parametrize("kind", ["lstm", "gru-uni", "cnn", "transformer"])
def test_layer_scope_reaches_the_sparsity_in_every_layer(kind):
    model = make(kind)
    biases = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("bias")}
    report = compress.l1_unstructured_prune(model, 0.6, scope="layer")
    for name, entry in report.items():
        assert entry["zeros"] == round(0.6 * entry["numel"]) or name == "total", (name, entry)
    assert report["total"]["sparsity"] == pytest.approx(0.6, abs=0.02)
    names = {name for name, _ in model.named_parameters()}
    assert not any(name.endswith(("_orig", "_mask")) for name in names)  # made permanent
    assert all(torch.equal(p, biases[n]) for n, p in model.named_parameters() if n in biases)  # biases untouched


def test_global_scope_ranks_all_weights_together():
    model = make("lstm")
    with torch.no_grad():
        weight = model.classifier.weight
        weight.copy_(weight.sign() * (weight.abs() + 1.0))  # larger than any other weight: global ranking keeps them
    report = compress.l1_unstructured_prune(model, 0.5, scope="global")
    assert report["total"]["zeros"] == round(0.5 * report["total"]["numel"])
    assert report["classifier.weight"]["sparsity"] == 0.0
    assert report["rnn.weight_hh_l0"]["sparsity"] > 0.4


def test_pruning_errors():
    with pytest.raises(ValueError, match="sparsity"):
        compress.l1_unstructured_prune(make("cnn"), 1.0)
    with pytest.raises(ValueError, match="scope"):
        compress.l1_unstructured_prune(make("cnn"), 0.5, scope="row")


@pytest.mark.parametrize("kind", ["lstm", "gru-uni"])
def test_pruned_rnn_really_runs_on_the_zeroed_weights(kind):
    model = make(kind)
    before = logits(model)
    compress.l1_unstructured_prune(model, 0.8, scope="layer")
    rnn = model.rnn
    for name, weight in zip(rnn._flat_weights_names, rnn._flat_weights, strict=True):
        assert weight is getattr(rnn, name) and isinstance(weight, nn.Parameter)
    assert float((rnn.weight_hh_l0 == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    after = logits(model)
    assert not np.allclose(before, after, atol=1e-4)  # the zeros changed the outputs
    fresh = make(kind, seed=1)  # a new module whose flat weights certainly come from the loaded tensors
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_allclose(logits(fresh), after, atol=1e-6, rtol=0)
    loss = model.train()(*pad_batch(sequences()[:3], 0)).sum()  # forward and backward still work
    loss.backward()
    assert rnn.weight_hh_l0.grad is not None


def test_finetune_keeps_pruned_weights_at_zero(tmp_path):
    model = make("lstm").train()
    report = compress.l1_unstructured_prune(model, 0.7, scope="layer")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = sequences()
    rng = np.random.default_rng(0)
    data = DistillData(rows, rng.integers(0, 2, len(rows)), rng.normal(size=(len(rows), 2)).astype(np.float32))
    config = DistillConfig(epochs=3, batch_size=4, lr=1e-2, patience=5, warmup_ratio=0.0)
    result = compress.finetune_after_pruning(model, data, data, config, tmp_path / "ft", pad_id=0, epochs=1)
    assert result.completed and result.epochs_run == 1
    after = compress.sparsity_report(model)
    best = read_weights(tmp_path / "ft" / "best.safetensors")  # written during training, before the final re-masking
    for name, entry in report.items():
        assert after[name]["zeros"] == entry["zeros"], name
        if name != "total":
            assert int((best[name] == 0).sum()) == entry["zeros"], name
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "rnn.weight_hh_l0" in moved  # it did train the surviving weights


# ---------------------------------------------------------------------------------------------------
# Structured pruning


@pytest.mark.parametrize("kind", list(ARCHS))
def test_structured_prune_amount_zero_is_an_exact_copy(kind):
    model = make(kind)
    copy = compress.structured_prune(model, 0.0)
    assert copy is not model and type(copy) is type(model)
    assert count_parameters(copy) == count_parameters(model)
    assert np.array_equal(logits(copy), logits(model))


@pytest.mark.parametrize(
    ("kind", "field", "kept"),
    [
        ("lstm", "hidden_size", 8),
        ("gru-uni", "hidden_size", 8),
        ("cnn", "num_filters", 4),
        ("cnn-max-mean", "num_filters", 4),
        ("transformer", "ff_dim", 16),
        ("bert-layers", "intermediate_size", 16),
    ],
)
def test_structured_prune_shrinks_and_round_trips(kind, field, kept, tiny_tokenizer, tmp_path):
    name, _ = ARCHS[kind]
    model = make(kind, vocab_size=len(tiny_tokenizer))
    original = {n: p.detach().clone() for n, p in model.state_dict().items()}
    smaller = compress.structured_prune(model, 0.5)
    assert getattr(smaller.config, field) == kept
    assert count_parameters(smaller) < count_parameters(model)
    rows = sequences(len(tiny_tokenizer))
    assert logits(smaller, rows).shape == (len(rows), len(LABELS))
    assert all(torch.equal(p, original[n]) for n, p in model.state_dict().items())  # input left alone
    directory = save_student(
        smaller,
        tmp_path / kind,
        name=name,
        arch={},
        label_names=LABELS,
        tokenizer=tiny_tokenizer,
        tokens=TokenSettings(32, "head", 0.25),
    )
    loaded = Student.from_pretrained(directory)
    assert getattr(loaded.model.config, field) == kept
    np.testing.assert_array_equal(logits(loaded.model, rows), logits(smaller, rows))


def _silence_units(model: nn.Module, kind: str) -> None:
    """Zero every incoming weight and bias of the odd-numbered units: they then output exactly 0.

    LSTM: i = f = o = σ(0), g = tanh(0) = 0 so c = h = 0; GRU: n = 0, h = z·h_prev = 0; ReLU/GELU(0) = 0.
    """
    with torch.no_grad():
        if kind in ("lstm", "gru-uni"):
            hidden = model.config.hidden_size
            for tensor in model.rnn.parameters():
                gates = tensor.shape[0] // hidden
                tensor.view(gates, hidden, -1)[:, 1::2] = 0
        elif kind.startswith("cnn"):
            for conv in model.convs:
                conv.weight[1::2] = 0
                conv.bias[1::2] = 0
        elif kind == "bert-layers":
            for layer in model.encoder.encoder.layer:
                layer.intermediate.dense.weight[1::2] = 0
                layer.intermediate.dense.bias[1::2] = 0
                layer.output.dense.weight[:, 1::2] = 0
        else:
            for layer in model.encoder.layers:
                layer.linear1.weight[1::2] = 0
                layer.linear1.bias[1::2] = 0
                layer.linear2.weight[:, 1::2] = 0


@pytest.mark.parametrize("kind", list(ARCHS))
def test_structured_prune_removes_the_unimportant_units_consistently(kind):
    """Units that contribute nothing are the ones removed, and the rest is sliced consistently: same logits."""
    model = make(kind)
    _silence_units(model, kind)
    smaller = compress.structured_prune(model, 0.5)
    assert count_parameters(smaller) < count_parameters(model)
    np.testing.assert_allclose(logits(smaller), logits(model), atol=1e-6, rtol=0)


def test_structured_prune_errors():
    with pytest.raises(ValueError, match="amount"):
        compress.structured_prune(make("cnn"), 1.0)
    with pytest.raises(TypeError, match="supports"):
        compress.structured_prune(nn.Linear(2, 2), 0.5)
    ngram = build_student("ngram-bag", {"embedding_dim": 8, "bigram_buckets": 11}, vocab_size=60, num_labels=2)
    with pytest.raises(NotImplementedError, match="ngram-bag has no structured pruning"):
        compress.structured_prune(ngram, 0.5)


# ---------------------------------------------------------------------------------------------------
# Comparing logits


def test_compare_logits():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    candidate = np.array([[1.0, 0.5], [1.0, 0.0], [2.0, 1.0]])
    result = compress.compare_logits(reference, candidate, labels=np.array([0, 1, -1]))
    assert result["agreement"] == pytest.approx(2 / 3) and result["max_abs_diff"] == 1.0
    assert result["relative_max_abs_diff"] == pytest.approx(1.0 / 2.0)  # over the largest |reference logit|
    assert result["accuracy_before"] == 1.0 and result["accuracy_after"] == 0.5
    with pytest.raises(ValueError, match="shapes"):
        compress.compare_logits(reference, candidate[:2])


# ---------------------------------------------------------------------------------------------------
# ONNX


@pytest.mark.parametrize("kind", ["lstm", "gru-uni"])
def test_unpacked_rnn_equals_the_packed_student(kind):
    model = make(kind)
    rows = sequences() + [np.array([], dtype=np.int64)]  # an all-padding row too
    input_ids, attention_mask = pad_batch(rows, 0)
    with torch.no_grad():
        expected = model(input_ids, attention_mask)
        actual = UnpackedRNNAttention(model).eval()(input_ids, attention_mask)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru-uni", "cnn", "cnn-chunked", "bert-layers"])
def test_onnx_export_parity(kind, tmp_path):
    model = make(kind)
    path = compress.export_onnx(model, tmp_path / "model.onnx", max_length=64)
    rows = sequences()
    for batch_size in (1, 4, len(rows)):  # serving (1) and mixed-length padded batches
        assert (
            compress.onnx_parity(model, path, rows, pad_id=0, batch_size=batch_size) < compress.ONNX_PARITY_TOLERANCE
        )


# int8 is judged by what a user sees. Over 400 random sequences the 12 random students measured (4 kinds x 3
# seeds, ONNX Runtime 1.32, per-channel 7-bit weights) kept at least 99.25% of labels, every flip a near-tie
# (float margin < 0.2% of the logit scale), and moved logits by at most 2.1% of max|logit|. The error of int8
# weights (step = max|w| / 63 per channel) and uint8 activations (step = range / 255) is relative to the
# values, and it compounds over a few layers: a bound relative to the logit scale holds at any scale, a fixed
# one (0.1) does not. 5% leaves ~2.5x headroom over those measures and still fails int16 saturation (CPUs
# without VNNI and full-range weights: 12%). 98% allows 8 near-tie flips in 400 on a random model.
INT8_MIN_AGREEMENT = 0.98
INT8_MAX_RELATIVE_ERROR = 0.05


def random_sequences(count: int = 400, vocab_size: int = 60, seed: int = 1) -> list[np.ndarray]:
    """``count`` sequences of 3–42 ids ([CLS] … [SEP]), uniform lengths: enough rows for agreement to mean much."""
    rng = np.random.default_rng(seed)
    return [np.concatenate([[2], rng.integers(5, vocab_size, rng.integers(1, 41)), [3]]) for _ in range(count)]


@pytest.mark.parametrize("kind", list(ARCHS))
def test_onnx_int8_keeps_the_labels_and_the_logit_scale(kind, tmp_path):
    model = make(kind)
    path = compress.export_onnx(model, tmp_path / "model.onnx", max_length=64)
    int8 = compress.quantize_onnx_int8(path, tmp_path / "model.int8.onnx")
    check = compress.int8_check(model, int8, random_sequences(), pad_id=0)
    assert check["agreement"] >= INT8_MIN_AGREEMENT, check
    assert check["relative_max_abs_diff"] <= INT8_MAX_RELATIVE_ERROR, check


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_static_onnx_int8_calibrated_on_other_rows_keeps_the_labels(kind, tmp_path):
    model = make(kind)
    path = compress.export_onnx(model, tmp_path / "model.onnx", max_length=64)
    int8 = compress.quantize_onnx_int8_static(path, tmp_path / "model.int8.onnx", random_sequences(seed=2))
    check = compress.int8_check(model, int8, random_sequences(), pad_id=0)
    assert check["agreement"] >= INT8_MIN_AGREEMENT, check
    # int8 activations move logits more than dynamic int8 does (about 9% of the scale for this CNN)
    assert check["relative_max_abs_diff"] <= 0.15, check
    with pytest.raises(ValueError, match="calibration"):
        compress.quantize_onnx_int8_static(path, tmp_path / "none.onnx", [])


def test_onnx_int8_weights_have_7_bits(tmp_path):
    """Full-range int8 weights saturate the int16 pair sums of ONNX Runtime's u8s8 kernels on CPUs without VNNI."""
    import onnx
    from onnx import numpy_helper

    path = compress.export_onnx(make("cnn"), tmp_path / "model.onnx", max_length=64)
    int8 = compress.quantize_onnx_int8(path, tmp_path / "model.int8.onnx")
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(int8)).graph.initializer]
    int8_weights = [w for w in weights if w.dtype == np.int8 and w.size > 1]
    # |w| <= 64: a pair of uint8 × int8 products is at most 255 · 64 · 2 = 32640, within int16
    assert int8_weights and all(int(np.abs(w.astype(np.int16)).max()) <= 64 for w in int8_weights)


@pytest.mark.skipif(
    importlib.util.find_spec("onnxscript") is None, reason="the torch.export exporter needs onnxscript"
)
def test_transformer_onnx_export_parity(tmp_path):
    model = make("transformer")
    path = compress.export_onnx(model, tmp_path / "model.onnx", max_length=64)
    assert compress.onnx_parity(model, path, sequences(), pad_id=0, batch_size=4) < compress.ONNX_PARITY_TOLERANCE


def test_onnx_student_predicts_texts(tiny_tokenizer, tmp_path):
    model = make("lstm", vocab_size=len(tiny_tokenizer))
    directory = save_student(
        model,
        tmp_path / "student",
        name="rnn-attention",
        arch={},
        label_names=LABELS,
        tokenizer=tiny_tokenizer,
        tokens=TokenSettings(32, "head", 0.25),
    )
    compress.export_onnx(model, directory / compress.ONNX_NAME, max_length=32)
    texts = ["a wonderful film", "boring", "the worst acting and a dull plot"]
    onnx_student = compress.load_onnx_student(directory)
    torch_student = Student.from_pretrained(directory)
    np.testing.assert_allclose(onnx_student.predict_logits(texts), torch_student.predict_logits(texts), atol=1e-5)
    assert [p["label"] for p in onnx_student.predict(texts)] == [p["label"] for p in torch_student.predict(texts)]
    with pytest.raises(ValueError, match="export it"):
        compress.load_onnx_student(directory, "missing.onnx")


# ---------------------------------------------------------------------------------------------------
# Deploy: the int8 file ships only if it keeps the float student's labels on validation


def saved_cnn(tokenizer, directory, model: nn.Module | None = None):
    name, arch = ARCHS["cnn"]
    model = model or make("cnn", vocab_size=len(tokenizer))
    return save_student(
        model,
        directory,
        name=name,
        arch=arch,
        label_names=LABELS,
        tokenizer=tokenizer,
        tokens=TokenSettings(48, "head", 0.25),
    )


def int8_blind(model: nn.Module) -> nn.Module:
    """Make the CNN's two logits differ only by a weight below int8 resolution: float always says class 1, int8
    sees a tie (argmax 0). Filter 0 of the first convolution outputs exactly 1 (zero weights, bias 1), and the
    classifier rows are equal except at that feature, where class 1 has +0.1 of a quantization step."""
    with torch.no_grad():
        model.convs[0].weight[0], model.convs[0].bias[0] = 0.0, 1.0
        weight = model.classifier.weight
        weight[1] = weight[0]
        weight[:, 0] = 0.0
        weight[1, 0] = 0.1 * weight[0].abs().max() / 63
        model.classifier.bias[1] = model.classifier.bias[0]
    return model


def deploy_config(min_agreement: float):
    from textdistill.config import load_config

    return load_config(None, [f"compress.int8_min_agreement={min_agreement}"])


def test_deploy_ships_int8_that_keeps_the_labels(tiny_tokenizer, tmp_path, caplog):
    from textdistill import deploy

    directory = saved_cnn(tiny_tokenizer, tmp_path / "student")
    validation = random_sequences(vocab_size=len(tiny_tokenizer))
    with caplog.at_level("WARNING"):
        made = deploy.deployables(deploy_config(0.99), directory, validation, runs=3)
    check = made["int8"]
    assert check["shipped"] and check["agreement"] >= 0.99 and (directory / compress.ONNX_INT8_NAME).is_file()
    assert check["status"] == f"shipped (agreement {check['agreement']:.4f} >= 0.99)"
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "int8" in r.getMessage()]


def test_deploy_ships_the_int8_scope_that_keeps_the_labels(tiny_tokenizer, tmp_path):
    """The int8-blind CNN loses its labels once the classifier is int8; int8 embeddings alone keep them."""
    from textdistill import deploy

    model = int8_blind(make("cnn", vocab_size=len(tiny_tokenizer)))
    directory = saved_cnn(tiny_tokenizer, tmp_path / "student", model)
    validation = random_sequences(vocab_size=len(tiny_tokenizer))
    check = deploy.deployables(deploy_config(0.99), directory, validation, runs=3)["int8"]
    variants = {row["name"]: row for row in check["variants"]}
    assert set(variants) == {"pytorch float", "onnx float", *(f"onnx int8 ({s})" for s in compress.INT8_SCOPES)}
    assert variants["onnx int8 (all)"]["agreement"] < 0.5 and variants["onnx int8 (no-conv)"]["agreement"] < 0.5
    assert check["shipped"] and check["scope"] == "embedding" and check["agreement"] == 1.0
    assert check["chosen"] in {"pytorch float", "onnx float", "onnx int8 (embedding)"}
    assert all(row["latency_ms_p50"] > 0 and row["bytes"] > 0 for row in variants.values())
    weights = dict(compress.onnx_initializers(directory / compress.ONNX_INT8_NAME))
    assert any(a.dtype.itemsize == 1 and a.shape == (len(tiny_tokenizer), 12) for a in weights.values())  # table
    classifier = tuple(model.classifier.weight.shape)
    assert any(a.dtype == np.float32 and a.shape in (classifier, classifier[::-1]) for a in weights.values())


def test_choose_variant_is_the_fastest_that_passes_and_the_smaller_of_a_tie():
    from textdistill.deploy import choose_variant

    rows = [
        {"name": "float", "agreement": 1.0, "latency_ms_p50": 1.00, "bytes": 1200},
        {"name": "int8 all", "agreement": 0.98, "latency_ms_p50": 0.50, "bytes": 300},
        {"name": "int8 embedding", "agreement": 0.999, "latency_ms_p50": 1.03, "bytes": 400},
        {"name": "int8 slow", "agreement": 1.0, "latency_ms_p50": 2.0, "bytes": 100},
    ]
    assert choose_variant(rows, 0.995)["name"] == "int8 embedding"  # within 5% of the fastest, and smaller
    assert choose_variant(rows, 0.97)["name"] == "int8 all"
    assert choose_variant(rows[1:2], 0.995) is None


def test_deploy_refuses_int8_below_the_bar(tiny_tokenizer, tmp_path, caplog):
    from textdistill import deploy

    model = int8_blind(make("cnn", vocab_size=len(tiny_tokenizer)))
    directory = saved_cnn(tiny_tokenizer, tmp_path / "student", model)
    (directory / compress.ONNX_INT8_NAME).write_bytes(b"stale file from an earlier run")
    validation = random_sequences(vocab_size=len(tiny_tokenizer))
    config = deploy_config(0.99)
    config.compress.int8_scopes = ["all", "no-conv"]  # int8 classifiers: both lose the labels
    with caplog.at_level("WARNING"):
        made = deploy.deployables(config, directory, validation, runs=3)
    check = made["int8"]
    assert check["agreement"] < 0.5 and not check["shipped"]
    assert check["status"] == f"refused (agreement {check['agreement']:.4f} < 0.99)"
    assert not (directory / compress.ONNX_INT8_NAME).exists() and (directory / compress.ONNX_NAME).is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(check["status"] in message and "not shipped" in message for message in warnings), warnings


def test_int8_min_agreement_is_a_share():
    from textdistill.config import ConfigError

    with pytest.raises(ConfigError, match="int8_min_agreement"):
        deploy_config(1.5)


# ---------------------------------------------------------------------------------------------------
# The teacher's int8 logit pass (ONNX Runtime)


def test_teacher_int8_logit_pass_through_onnx(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from textdistill.inference import predict_logits as teacher_logits
    from textdistill.pipeline import _model_for

    torch.manual_seed(0)
    bert = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    BertForSequenceClassification(bert).eval().save_pretrained(tmp_path / "teacher")
    models: dict = {}
    int8 = _model_for("onnx-int8", tmp_path / "teacher", models)
    assert isinstance(int8, compress.OnnxSequenceClassifier) and (tmp_path / "teacher" / "model.int8.onnx").is_file()
    assert _model_for("onnx-int8", tmp_path / "teacher", models) is int8  # built once
    rows = random_sequences()
    exact = teacher_logits(_model_for("fp32", tmp_path / "teacher", models), rows, pad_id=0, batch_size=16)
    check = compress.compare_logits(exact, teacher_logits(int8, rows, pad_id=0, batch_size=16))
    assert check["agreement"] >= INT8_MIN_AGREEMENT, check
    # A random BERT's logits are a nearly cancelling sum (max |logit| ~0.003 here, hidden states ~1), so the int8
    # error is large next to them: 10% measured for this model (2-5% for other seeds). A bound of 25% still fails
    # a broken export or kernel (errors of the order of the logits), and the run itself only uses the int8
    # teacher after it agrees with fp32 on 99.5% of validation.
    assert check["relative_max_abs_diff"] <= 0.25, check
