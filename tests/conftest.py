"""Shared tiny, offline fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # run from a source checkout without installing the package
    sys.path.insert(0, str(SRC))

TINY_WORDS = """
the a an and but or not very really quite movie film story plot acting actor actress scene ending music
good great wonderful excellent moving fun love best bad awful terrible boring dull worst hate waste
is was it this that i we they of to in with for ##s ##ing ##ed
""".split()  # noqa: SIM905 (one word list, easier to read as text)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """A WordPiece ``BertTokenizerFast`` with [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 and ~50 words."""
    from transformers import BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast.from_pretrained(str(directory), do_lower_case=True)


@pytest.fixture
def single_thread():
    """Run a test on one torch thread: on a busy shared 2-core machine, 2 threads can make tiny models 5-30x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_bert_classifier(vocab_size: int = 60, num_labels: int = 2):
    """A randomly initialised ``BertForSequenceClassification`` (hidden 16, one layer) in eval mode, seeded."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config).eval()
