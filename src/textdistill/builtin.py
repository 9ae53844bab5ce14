"""Built-in offline stand-ins, so the whole flow runs anywhere before anything is downloaded.

- ``data.path: builtin:toy-reviews`` writes a small synthetic sentiment dataset (train/test/unsup
  parquet) built from templates, seeded.
- ``teacher.model: builtin:tiny-bert`` builds a tiny BERT (2 layers, hidden 64) with a WordPiece
  vocabulary trained on the run's training texts with ``tokenizers``, saved with ``save_pretrained``.

Neither is a good model; they exist to exercise every stage offline in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

TOY_DATA = "builtin:toy-reviews"
TINY_BERT = "builtin:tiny-bert"

_POSITIVE = ["wonderful", "brilliant", "moving", "delightful", "superb", "charming", "gripping", "beautiful"]
_NEGATIVE = ["dreadful", "boring", "clumsy", "tedious", "awful", "lifeless", "predictable", "painful"]
_SUBJECTS = ["the acting", "the plot", "the script", "the ending", "the soundtrack", "the direction", "the cast"]
_FILLER = [
    "i saw it on a rainy sunday",
    "my friends picked it",
    "it runs about two hours",
    "the cinema was full",
    "it is based on a novel",
    "the trailer looked different",
    "i went in with no expectations",
]


def _review(rng: np.random.Generator, label: int) -> str:
    """A templated review: mostly words of its own polarity, some of the other, some neutral filler."""
    sentences = []
    for _ in range(int(rng.integers(3, 9))):
        own = _POSITIVE if label == 1 else _NEGATIVE
        words = own if rng.random() < 0.8 else (_NEGATIVE if label == 1 else _POSITIVE)
        if rng.random() < 0.3:
            sentences.append(str(rng.choice(_FILLER)))
        sentences.append(f"{rng.choice(_SUBJECTS)} was {rng.choice(words)}")
    return ". ".join(sentences).capitalize() + "."


def write_toy_dataset(directory: Path, seed: int = 0, sizes: tuple[int, int, int] = (1200, 400, 400)) -> Path:
    """Write train/test/unsup parquet files of templated reviews (balanced labels) into ``directory``."""
    if (directory / "train.parquet").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, size in zip(("train", "test", "unsup"), sizes, strict=True):
        labels = np.arange(size) % 2
        frame = pd.DataFrame({"text": [_review(rng, int(label)) for label in labels], "id": np.arange(size)})
        if name != "unsup":
            frame["label"] = labels
        frame.to_parquet(directory / f"{name}.parquet")
    logger.info("wrote the built-in toy dataset to %s", directory)
    return directory


def build_tiny_bert(directory: Path, texts: list[str], vocab_size: int = 2000, seed: int = 0) -> Path:
    """Train a WordPiece vocabulary on ``texts`` and save a tiny randomly initialised BERT with it."""
    if (directory / "config.json").is_file():
        return directory
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True, model_max_length=512)
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
    )
    BertModel(config).save_pretrained(str(directory))
    logger.info("built a tiny BERT (vocab %d) in %s", len(fast), directory)
    return directory
