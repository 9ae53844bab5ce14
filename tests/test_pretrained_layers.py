"""``pretrained-layers``: the weights really come from the pretrained BERT, only on the training path.

The generic student contract (shapes, padding, save/load, export, shrinking, vocabulary pruning) runs over this
student too, randomly initialised, in test_students.py, test_compress.py and test_vocabulary.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertModel

from textdistill import Distiller, Student, api, builtin
from textdistill.config import ConfigError, DistillConfig, StudentConfig
from textdistill.plans import StudentPlan
from textdistill.students import build_arch, build_student, pretrained_source
from textdistill.students.hub import save_student
from textdistill.students.pretrained_layers import PretrainedLayersStudent
from textdistill.tokens import SpecialIds, TokenSettings, load_tokenizer, pad_batch
from textdistill.train import DistillData

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = ["neg", "pos"]
TEXTS = [
    "a really wonderful movie with great acting",
    "bad",
    "the plot was boring and the ending was the worst",
    "we love this story and its music",
]
TINY_BERT_ARCH = {"embedding_dim": 64, "num_heads": 2, "intermediate_size": 128}  # builtin:tiny-bert, 2 layers


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """The built-in tiny BERT (2 layers, hidden 64) with a WordPiece vocabulary of TEXTS, as a local directory."""
    return builtin.build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", TEXTS * 3, vocab_size=200)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(str(tiny_bert))


def arch(source: Path | str | None, **changes) -> dict:
    return {"pretrained": None if source is None else str(source), "num_layers": 1, **TINY_BERT_ARCH, **changes}


def make(tokenizer, settings: dict, seed: int = 0) -> PretrainedLayersStudent:
    torch.manual_seed(seed)
    model = build_student("pretrained-layers", settings, len(tokenizer), len(LABELS), pad_id=tokenizer.pad_token_id)
    assert isinstance(model, PretrainedLayersStudent)
    return model.eval()


def encode(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    special = SpecialIds.of(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return pad_batch([np.array([special.cls, *row, special.sep]) for row in ids], special.pad)


def test_init_pretrained_copies_the_bottom_layers_and_computes_the_truncated_model(tiny_bert, tokenizer):
    student = make(tokenizer, arch(tiny_bert))
    reference = BertModel.from_pretrained(str(tiny_bert), attn_implementation="eager").eval()
    layer = reference.encoder.layer[0].state_dict()
    query = "attention.self.query.weight"
    assert not torch.equal(student.encoder.encoder.layer[0].state_dict()[query], layer[query])  # random before
    assert student.init_pretrained()
    for name, tensor in student.encoder.encoder.layer[0].state_dict().items():
        assert torch.equal(tensor, layer[name]), name
    assert torch.equal(student.embedding.weight, reference.embeddings.word_embeddings.weight)
    input_ids, attention_mask = encode(tokenizer, TEXTS)
    with torch.no_grad():
        # hidden_states[1]: the full 2-layer model's output after its first layer
        expected = reference(input_ids, attention_mask, output_hidden_states=True).hidden_states[1]
        real = attention_mask.bool()
        torch.testing.assert_close(student.hidden_states(input_ids, attention_mask)[real], expected[real])
        weights = attention_mask.unsqueeze(-1).float()
        pooled = (expected * weights).sum(dim=1) / weights.sum(dim=1)
        torch.testing.assert_close(student(input_ids, attention_mask), student.classifier(pooled))


def test_pretrained_logits_do_not_depend_on_right_padding(tiny_bert, tokenizer):
    student = make(tokenizer, arch(tiny_bert, num_layers=2))
    student.init_pretrained()
    input_ids, attention_mask = encode(tokenizer, TEXTS)
    extra = torch.zeros((len(TEXTS), 9), dtype=torch.long)
    with torch.no_grad():
        logits = student(input_ids, attention_mask)
        padded = student(
            torch.cat([input_ids, extra + tokenizer.pad_token_id], 1), torch.cat([attention_mask, extra], 1)
        )
        alone = torch.cat([student(*encode(tokenizer, [text])) for text in TEXTS])
    torch.testing.assert_close(padded, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        ({"num_heads": 4}, ["student.arch.num_heads=4", "num_attention_heads is 2"]),
        (
            {"embedding_dim": 32, "intermediate_size": 64},
            ["student.arch.embedding_dim=32", "hidden_size is 64", "student.arch.intermediate_size=64"],
        ),
        ({"max_positions": 128}, ["student.arch.max_positions=128", "max_position_embeddings is 512"]),
        ({"num_layers": 3}, ["student.arch.num_layers=3", "only 2 layers"]),
    ],
    ids=["heads", "sizes", "positions", "too-deep"],
)
def test_a_pretrained_model_that_does_not_fit_is_a_clear_error(tiny_bert, tokenizer, changes, messages):
    student = make(tokenizer, arch(tiny_bert, **changes))
    with pytest.raises(ValueError, match="does not fit") as error:
        student.init_pretrained()
    assert all(message in str(error.value) for message in messages), str(error.value)


def test_other_pretrained_problems_are_clear_errors(tiny_bert, tokenizer, tmp_path):
    from transformers import DistilBertConfig

    wrong_vocabulary = build_student("pretrained-layers", arch(tiny_bert), len(tokenizer) + 1, 2)
    with pytest.raises(ValueError, match="use the pretrained model's tokenizer"):
        wrong_vocabulary.init_pretrained()
    DistilBertConfig().save_pretrained(str(tmp_path / "distilbert"))
    with pytest.raises(ValueError, match="'distilbert' model"):
        make(tokenizer, arch(tmp_path / "distilbert")).init_pretrained()
    with pytest.raises(ValueError, match="could not be loaded"):
        make(tokenizer, arch(tmp_path / "missing")).init_pretrained()
    assert not make(tokenizer, arch(None)).init_pretrained()  # random init: nothing to read


def test_arch_validation_and_the_word2vec_size():
    for bad, key in (({"num_layers": 0}, "num_layers"), ({"num_heads": 5}, "divisible"), ({"pretrained": " "}, "")):
        with pytest.raises(ConfigError, match=f"student.arch.*{key}"):
            build_arch("pretrained-layers", bad)
    # Word2Vec's vector size neither sizes nor conflicts with a pretrained student; it sizes a random one
    assert build_arch("pretrained-layers", {"pretrained": "some/bert"}, embedding_dim=300).embedding_dim == 384
    assert build_arch("pretrained-layers", {}, embedding_dim=300).embedding_dim == 300
    assert pretrained_source("pretrained-layers", {"pretrained": "some/bert"}) == "some/bert"
    assert pretrained_source("pretrained-layers", {}) is None and pretrained_source("cnn", {}) is None


def test_a_saved_student_loads_its_own_weights_and_never_reads_pretrained(tiny_bert, tokenizer, tmp_path, monkeypatch):
    source = shutil.copytree(tiny_bert, tmp_path / "bert")
    settings = arch(source, num_layers=2)
    student = make(tokenizer, settings)
    student.init_pretrained()
    with torch.no_grad():
        student.classifier.weight.normal_()  # a trained head: not what a fresh init would give
    directory = save_student(
        student,
        tmp_path / "student",
        name="pretrained-layers",
        arch=settings,
        tokenizer=tokenizer,
        label_names=LABELS,
        tokens=TokenSettings(32, "head", 0.25),
    )
    shutil.rmtree(source)

    def forbidden(self):
        raise AssertionError("loading a saved student must not read arch.pretrained")

    monkeypatch.setattr(PretrainedLayersStudent, "init_pretrained", forbidden)
    loaded = Student.from_pretrained(directory)
    assert loaded.config["arch"]["pretrained"] == str(source)
    input_ids, attention_mask = encode(tokenizer, TEXTS)
    with torch.no_grad():
        assert torch.equal(loaded.model(input_ids, attention_mask), student(input_ids, attention_mask))


def _data(tokenizer) -> DistillData:
    input_ids, _ = encode(tokenizer, TEXTS)
    rows = [row[row != tokenizer.pad_token_id].numpy() for row in input_ids]
    return DistillData(rows, np.array([1, 0, 0, 1]), None)


def test_fit_student_loads_the_pretrained_weights_over_word2vec(tiny_bert, tokenizer, tmp_path, monkeypatch):
    """The training path calls the hook, and the pretrained embedding wins over a Word2Vec matrix (of any size)."""
    monkeypatch.setattr(api, "train_student", lambda model, *args, **kwargs: None)  # the initialised student
    word2vec = np.ones((len(tokenizer), 16), dtype=np.float32)
    student = StudentConfig(name="pretrained-layers", arch=arch(tiny_bert), freeze_embeddings=True)
    data = _data(tokenizer)
    model, _ = api.fit_student(
        student, DistillConfig(), data, data, len(tokenizer), 2, tokenizer.pad_token_id, word2vec, tmp_path
    )
    reference = BertModel.from_pretrained(str(tiny_bert))
    assert torch.equal(model.embedding.weight, reference.embeddings.word_embeddings.weight)
    assert not model.embedding.weight.requires_grad  # freeze_embeddings applies to the pretrained table
    assert torch.equal(
        model.encoder.encoder.layer[0].output.dense.weight, reference.encoder.layer[0].output.dense.weight
    )


def test_distiller_fits_a_pretrained_student_without_word2vec(tiny_bert, tmp_path, monkeypatch):
    def no_word2vec(*args, **kwargs):
        raise AssertionError("Word2Vec is not needed by a student with pretrained embeddings")

    monkeypatch.setattr(api, "train_word2vec", no_word2vec)
    texts, labels = TEXTS * 8, ["pos", "neg", "neg", "pos"] * 8
    distiller = Distiller(
        "pretrained-layers",
        tokenizer=tiny_bert,
        arch=arch(tiny_bert),
        distill={"epochs": 2, "batch_size": 8, "lr": 1e-3},
        output_dir=tmp_path / "train",
        validation_fraction=0.25,
    )
    student = distiller.fit(texts, labels)
    assert student.config["arch"]["pretrained"] == str(tiny_bert)
    student.save_pretrained(tmp_path / "student")
    reloaded = Student.from_pretrained(tmp_path / "student")
    assert np.array_equal(reloaded.predict_logits(TEXTS), student.predict_logits(TEXTS))


def test_the_run_key_follows_the_pretrained_weights(tiny_bert):
    from textdistill.pipeline import _pretrained_part

    plan = StudentPlan("bert", StudentConfig(name="pretrained-layers", arch=arch(tiny_bert)), DistillConfig())
    assert _pretrained_part(plan)["pretrained"].startswith("local:")
    assert _pretrained_part(StudentPlan("cnn", StudentConfig(name="cnn"), DistillConfig())) == {}


def test_run_end_to_end_with_the_teacher_as_the_pretrained_model(tmp_path, caplog):
    """``textdistill run`` (toy data): the tiny BERT is fine-tuned as the teacher and its bottom layer starts the
    student; compression (structured pruning of FFN units, vocabulary pruning, ONNX, int8) runs on it."""
    from test_pipeline import TINY_RUN

    from textdistill.config import load_config
    from textdistill.workflow import run

    data = builtin.write_toy_dataset(tmp_path / "toy", sizes=(120, 60, 40))
    bert = builtin.build_tiny_bert(tmp_path / "bert", pd.read_parquet(data / "train.parquet")["text"].tolist())
    overrides = TINY_RUN | {
        "data.path": str(data),
        "teacher.model": str(bert),
        "student.name": "pretrained-layers",
        "student.arch": json.dumps(arch(bert)),  # YAML reads JSON
        "students": "[]",
        "out_dir": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
    }
    with caplog.at_level("INFO", logger="textdistill.students.pretrained_layers"):
        metrics = run(load_config(None, [f"{key}={value}" for key, value in overrides.items()]))
    assert f"embeddings and layers 0..0 from {bert}" in caplog.text
    compressed = metrics["compress"]["students"]["pretrained-layers"]
    assert compressed["onnx_parity"] < 1e-4 and compressed["int8_check"]["chosen"]
    assert compressed["vocabulary"]["bytes_after"] < compressed["vocabulary"]["bytes_before"]
    assert "structured (smaller dense model)" in {row["method"] for row in metrics["compress"]["sweep"]}
