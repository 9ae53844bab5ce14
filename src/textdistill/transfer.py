"""Transfer texts beyond the training domain: other sources' texts and augmented training texts.

Both join the ``unlabelled`` split, so the teacher(s) label them like the in-domain pool and the students distill
on them with ``distill.use_unlabelled``. Augmentation follows Tang et al. 2019 ("Distilling task-specific knowledge
from BERT into simple neural networks", section 3.3): each word is masked with probability ``mask_probability``,
then with probability ``ngram_probability`` only an n-gram (n uniform in 1..``max_ngram``) of the result is kept.
Their POS-guided word replacement is not implemented (it needs a POS tagger this project does not ship).
Sentence spans (``sentence_spans``) cut runs of consecutive sentences from the training and in-domain unlabelled
texts: the teacher labels each on its own, a denser and more local target than one label per review.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from textdistill.config import TransferConfig, TransferSource
from textdistill.data import UNLABELLED, DataError, Dataset, Split, load_hub_dataset, read_table, text_keys
from textdistill.robustness import split_sentences

logger = logging.getLogger(__name__)


def read_source_texts(source: TransferSource, seed: int) -> list[str]:
    """The non-empty texts of ``source.column`` in one file, a directory's ``train`` file or a Hugging Face hub
    dataset's train split, at most ``source.max_rows`` of them drawn at random (seeded), in file order."""
    path = Path(source.path).expanduser()
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.stem == "train" and p.is_file())
        if not candidates:
            raise DataError(f"transfer source {source.path!r}: a directory without a train file")
        path = candidates[0]
    if path.is_file():
        frame = read_table(path)
    elif path.exists() or source.path.startswith((".", "/", "~")):
        raise DataError(f"transfer source {source.path!r} does not exist (give a file, a directory or a hub name)")
    else:
        failure, offline = f"transfer source {source.path!r}: could not load it", "give a local file or directory"
        frame = load_hub_dataset(source.path, failure, offline, split="train").to_pandas()
    if source.column not in frame.columns:
        raise DataError(f"transfer source {path}: no column {source.column!r}; columns: {list(frame.columns)}")
    texts = [t for t in frame[source.column].tolist() if isinstance(t, str) and t.strip()]
    if source.max_rows is not None and source.max_rows < len(texts):
        rows = np.sort(np.random.default_rng(seed).permutation(len(texts))[: source.max_rows])
        texts = [texts[i] for i in rows]
    logger.info("transfer source %s: %d texts from %s", source.name, len(texts), path)
    return texts


def augment_text(text: str, rng: np.random.Generator, settings: TransferConfig, mask_token: str) -> str:
    """One augmented copy of ``text``: words masked, then (sometimes) only an n-gram of them kept."""
    words = text.split()
    if not words:
        return text
    masked = [mask_token if rng.random() < settings.mask_probability else word for word in words]
    if rng.random() < settings.ngram_probability and len(masked) > 1:
        size = int(rng.integers(1, min(settings.max_ngram, len(masked)) + 1))
        start = int(rng.integers(0, len(masked) - size + 1))
        masked = masked[start : start + size]
    return " ".join(masked)


def augment_texts(texts: list[str], settings: TransferConfig, mask_token: str) -> list[str]:
    """``settings.augment_copies`` augmented copies of every text, seeded (copy-major order: all first copies, ...)."""
    rng = np.random.default_rng(settings.seed)
    return [augment_text(text, rng, settings, mask_token) for _ in range(settings.augment_copies) for text in texts]


def sentence_spans(texts: list[str], ids: list[str], settings: TransferConfig) -> tuple[list[str], list[str]]:
    """Up to ``settings.sentence_spans`` distinct spans of 1..``max_span_sentences`` consecutive sentences and
    their ids (``sentences:<k>:<text id>``), seeded.

    Texts are visited in random order, pass after pass until ten passes in a row find no new span; a span never
    covers a whole text, so texts of one sentence give none.
    """
    rng = np.random.default_rng(settings.seed)
    spans: list[str] = []
    span_ids: list[str] = []
    seen: set[bytes] = set()
    fruitless_passes = 0
    while len(spans) < settings.sentence_spans and fruitless_passes < 10:
        found_before = len(spans)
        for index in rng.permutation(len(texts)):
            sentences = split_sentences(texts[index])
            if len(sentences) < 2:
                continue
            size = int(rng.integers(1, min(settings.max_span_sentences, len(sentences) - 1) + 1))
            start = int(rng.integers(0, len(sentences) - size + 1))
            span = " ".join(sentences[start : start + size])
            key = text_keys([span])[0]
            if key not in seen:
                seen.add(key)
                span_ids.append(f"sentences:{len(spans)}:{ids[index]}")
                spans.append(span)
                if len(spans) == settings.sentence_spans:
                    break
        fruitless_passes = fruitless_passes + 1 if len(spans) == found_before else 0
    if len(spans) < settings.sentence_spans:
        logger.warning("sentence spans: only %d distinct spans (asked for %d)", len(spans), settings.sentence_spans)
    return spans, span_ids


def with_transfer_texts(dataset: Dataset, settings: TransferConfig, mask_token: str) -> Dataset:
    """``dataset`` whose unlabelled split also holds the configured sources' texts, augmented training texts and
    sentence spans of the training and in-domain unlabelled texts.

    Ids say where each row comes from (``<source name>:<row>``, ``augment:<copy>:<train id>``,
    ``sentences:<k>:<text id>``). A transfer text equal to a validation or test text is dropped with a warning: it
    would leak evaluation texts into training.
    """
    in_domain_texts = list(dataset.unlabelled.texts) if dataset.unlabelled else []
    in_domain_ids = list(dataset.unlabelled.ids) if dataset.unlabelled else []
    parts: list[tuple[str, list[str], list[str]]] = []
    for source in settings.source_entries():
        source_texts = read_source_texts(source, settings.seed)
        parts.append((source.name, source_texts, [f"{source.name}:{row}" for row in range(len(source_texts))]))
    if settings.augment_copies:
        augmented = augment_texts(dataset.train.texts, settings, mask_token)  # copy-major, like these ids
        augment_ids = [f"augment:{c}:{i}" for c in range(settings.augment_copies) for i in dataset.train.ids]
        parts.append(("augment", augmented, augment_ids))
    if settings.sentence_spans:
        pool_texts, pool_ids = dataset.train.texts + in_domain_texts, dataset.train.ids + in_domain_ids
        parts.append(("sentences", *sentence_spans(pool_texts, pool_ids, settings)))
    if not parts:
        return dataset
    evaluation = set(text_keys(dataset.validation.texts + dataset.test.texts))
    texts, ids = in_domain_texts, in_domain_ids
    for name, new_texts, new_ids in parts:
        keep = [key not in evaluation for key in text_keys(new_texts)]
        if not all(keep):
            logger.warning("transfer %s: dropped %d text(s) equal to validation/test texts", name, keep.count(False))
        texts += [t for t, k in zip(new_texts, keep, strict=True) if k]
        ids += [i for i, k in zip(new_ids, keep, strict=True) if k]
    shape = (len(texts), len(dataset.label_names)) if dataset.multi_label else (len(texts),)  # (n, K): label sets
    unlabelled = Split("unlabelled", texts, np.full(shape, UNLABELLED, dtype=np.int64), ids)
    logger.info("unlabelled (transfer set): %d texts, %s", len(texts), {name: len(t) for name, t, _ in parts})
    return dataclasses.replace(dataset, unlabelled=unlabelled)
