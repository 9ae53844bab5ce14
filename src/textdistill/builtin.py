"""Built-in offline stand-ins, so the whole flow runs anywhere before anything is downloaded.

- ``data.path: builtin:toy-reviews`` writes a small synthetic sentiment dataset (train/test/unsup
  parquet) built from templates, seeded.
- ``teacher.model: builtin:tiny-bert`` builds a tiny BERT (2 layers, hidden 64) with a WordPiece
  vocabulary counted from the run's training texts, saved with ``save_pretrained``.

Neither is a good model; they exist to exercise every stage offline in seconds. Both are built
deterministically (same inputs, same bytes) into a temporary sibling directory that is renamed into
place, with a ``builtin.json`` marker written last: a build killed half-way leaves no broken cache,
and a directory without the marker (or with another recipe in it) is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


MARKER = "builtin.json"  # written last: its recipe says the directory is complete and what made it
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def is_built(directory: Path, recipe: dict[str, Any]) -> bool:
    """True when ``directory`` holds a finished build of exactly ``recipe`` (its marker says so)."""
    try:
        return json.loads((directory / MARKER).read_text(encoding="utf-8")) == recipe
    except (OSError, ValueError):
        return False


def build_atomically(directory: Path, recipe: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Run ``build(partial)`` in a temporary sibling of ``directory``, then rename it into place.

    ``directory`` is therefore either absent or complete: a kill mid-build leaves only a
    ``.<name>.partial-*`` sibling, which is never read (and is removed when the build fails in-process).
    A ``directory`` without a matching marker (an interrupted build of an older version, another
    recipe) is replaced.
    """
    if is_built(directory, recipe):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    partial.chmod(0o755)  # mkdtemp's 0o700 would make a shared cache unreadable to others
    try:
        build(partial)
        (partial / MARKER).write_text(json.dumps(recipe, indent=2, sort_keys=True), encoding="utf-8")
        _move_into_place(partial, directory, recipe)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already when the rename succeeded
    return directory


def _move_into_place(partial: Path, directory: Path, recipe: dict[str, Any]) -> None:
    if directory.exists():
        logger.warning("%s is incomplete or from another recipe (an interrupted build?); replacing it", directory)
        stale = directory.with_name(f".{directory.name}.stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            directory.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        partial.rename(directory)
    except OSError:
        if not is_built(directory, recipe):  # not a concurrent build of the same recipe that won the race
            raise


def write_toy_dataset(directory: Path, seed: int = 0, sizes: tuple[int, int, int] = (1200, 400, 400)) -> Path:
    """Write train/test/unsup parquet files of templated reviews (balanced labels) into ``directory``."""
    recipe = {"artifact": TOY_DATA, "version": 1, "seed": seed, "sizes": list(sizes)}

    def build(target: Path) -> None:
        rng = np.random.default_rng(seed)
        for name, size in zip(("train", "test", "unsup"), sizes, strict=True):
            labels = np.arange(size) % 2
            frame = pd.DataFrame({"text": [_review(rng, int(label)) for label in labels], "id": np.arange(size)})
            if name != "unsup":
                frame["label"] = labels
            frame.to_parquet(target / f"{name}.parquet")

    if not is_built(directory, recipe):
        build_atomically(directory, recipe, build)
        logger.info("wrote the built-in toy dataset to %s", directory)
    return directory


def wordpiece_vocabulary(texts: list[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary of ``texts``: special tokens, every character (word-initial and ``##``),
    then the most frequent whole words and ``##`` word endings (2-4 characters) up to ``vocab_size``.

    Deterministic, unlike ``tokenizers``' WordPieceTrainer, whose ties between equally frequent merges
    fall in Rust hash-map order (a fresh random seed per map), so every build gave another vocabulary.
    Here ties are broken by the token itself. Every word stays encodable: its characters are all in.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    alphabet = sorted({char for word in words for char in word})
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        pieces[word] += count
        for size in (2, 3, 4):
            if len(word) > size:
                pieces["##" + word[-size:]] += count
    fixed = SPECIAL_TOKENS + alphabet + ["##" + char for char in alphabet]
    taken = set(fixed)
    ranked = sorted((piece for piece in pieces if piece not in taken), key=lambda piece: (-pieces[piece], piece))
    return fixed + ranked[: max(0, vocab_size - len(fixed))]


def build_tiny_bert(directory: Path, texts: list[str], vocab_size: int = 2000, seed: int = 0) -> Path:
    """Save a tiny randomly initialised BERT (seeded) with a WordPiece vocabulary counted from ``texts``."""
    texts_digest = hashlib.sha256("\x1e".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    recipe = {"artifact": TINY_BERT, "version": 2, "vocab_size": vocab_size, "seed": seed, "texts": texts_digest}
    if not is_built(directory, recipe):
        build_atomically(directory, recipe, lambda target: _save_tiny_bert(target, texts, vocab_size, seed))
        logger.info("built a tiny BERT in %s", directory)
    return directory


def _save_tiny_bert(directory: Path, texts: list[str], vocab_size: int, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    vocab = {token: i for i, token in enumerate(wordpiece_vocabulary(texts, vocab_size))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=True, model_max_length=512)
    fast.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded weights without resetting the caller's generator
        torch.manual_seed(seed)
        model = BertModel(config)
    model.save_pretrained(str(directory))
    logger.info("tiny BERT: vocabulary %d, %d parameters", len(fast), model.num_parameters())
