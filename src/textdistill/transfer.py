"""Transfer texts beyond the training domain: other sources' texts and augmented training texts.

Both join the ``unlabelled`` split, so the teacher(s) label them like the in-domain pool and the students distill
on them with ``distill.use_unlabelled``. Augmentation follows Tang et al. 2019 ("Distilling task-specific knowledge
from BERT into simple neural networks", section 3.3): each word is masked with probability ``mask_probability``
or else replaced by a word of the same part of speech with probability ``pos_probability``, then with probability
``ngram_probability`` only an n-gram (n uniform in 1..``max_ngram``) of the result is kept. Parts of speech come
from LemmInflect's English lexicon rather than a contextual tagger (none ships on PyPI with its model): a word's
class is the set of tags the lexicon allows it ("good": adjective or noun), and a replacement is drawn from the
augmented texts' words of the same class in proportion to their counts. Words the lexicon does not know (function
words, names it lacks, numbers) are never replaced.
Sentence spans (``sentence_spans``) cut runs of consecutive sentences from the training and in-domain unlabelled
texts: the teacher labels each on its own, a denser and more local target than one label per review. Negation edits
(``negation_edits``) are such spans with one negation put in or taken out (was good → was not good, wasn't → was;
with ``negation_forms`` "verb" also I loved → I did not love): minimal pairs whose label the teacher decides, the
kind of edit a bag of n-grams learnt from reviews alone misreads. The student learns the forms it is shown.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from textdistill.config import DEFAULT_NEGATION_FORMS, TransferConfig, TransferSource
from textdistill.data import UNLABELLED, DataError, Dataset, Split, read_named_split, text_keys
from textdistill.robustness import INTENSIFIERS, NEGATIONS, split_sentences

logger = logging.getLogger(__name__)


def read_source_texts(source: TransferSource, seed: int) -> list[str]:
    """The non-empty texts of ``source.column`` in one file, a directory's ``train`` file or a Hugging Face hub
    dataset's train split, at most ``source.max_rows`` of them drawn at random (seeded), in file order."""
    frame, _ = read_named_split(source.path, "train", "transfer source")
    if source.column not in frame.columns:
        columns = list(frame.columns)
        raise DataError(f"transfer source {source.path!r}: no column {source.column!r}; columns: {columns}")
    texts = [t for t in frame[source.column].tolist() if isinstance(t, str) and t.strip()]
    if source.max_rows is not None and source.max_rows < len(texts):
        rows = np.sort(np.random.default_rng(seed).permutation(len(texts))[: source.max_rows])
        texts = [texts[i] for i in rows]
    logger.info("transfer source %s: %d texts from %s", source.name, len(texts), source.path)
    return texts


class PartOfSpeechReplacer:
    """Draws a replacement of the same part-of-speech class for a word, from the words of a corpus.

    A word's class is the frozenset of universal POS tags LemmInflect's lexicon allows for it (lower-cased);
    candidates are the corpus's words of that class, drawn in proportion to their counts.
    """

    def __init__(self, texts: list[str]) -> None:
        from lemminflect import getAllLemmas  # imported here: only augmentation with replacement needs it

        counts = Counter(core.lower() for text in texts for core in map(_word_core, text.split()) if core)
        self._classes: dict[str, frozenset[str]] = {}
        by_class: dict[frozenset[str], list[tuple[str, int]]] = {}
        for word, count in counts.items():
            tags = frozenset(getAllLemmas(word))
            if tags:
                self._classes[word] = tags
                by_class.setdefault(tags, []).append((word, count))
        self._candidates = {tags: [word for word, _ in pairs] for tags, pairs in by_class.items()}
        self._cumulative = {tags: np.cumsum([n for _, n in pairs], dtype=float) for tags, pairs in by_class.items()}

    def replace(self, word: str, rng: np.random.Generator) -> str:
        """``word`` with its core (punctuation stripped) swapped for a same-class word; unknown words unchanged."""
        core = _word_core(word)
        tags = self._classes.get(core.lower())
        if tags is None:
            return word
        cumulative = self._cumulative[tags]
        pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        replacement = self._candidates[tags][min(pick, len(cumulative) - 1)]
        if core[0].isupper():
            replacement = replacement.capitalize()
        start = word.index(core)
        return word[:start] + replacement + word[start + len(core) :]


def _word_core(word: str) -> str:
    """A whitespace-separated word without the punctuation around it ("movie," → "movie")."""
    return word.strip(string.punctuation)


def augment_text(
    text: str,
    rng: np.random.Generator,
    settings: TransferConfig,
    mask_token: str,
    replacer: PartOfSpeechReplacer | None = None,
) -> str:
    """One augmented copy of ``text``: words masked or replaced by a same-POS word, then (sometimes) only an n-gram
    of them kept. ``replacer`` is required when ``settings.pos_probability`` is positive."""
    if settings.pos_probability > 0 and replacer is None:
        raise ValueError("augment_text: transfer.pos_probability > 0 needs a PartOfSpeechReplacer")
    words = text.split()
    if not words:
        return text
    augmented = []
    for word in words:
        draw = rng.random()  # one draw per word: masking and replacement exclude each other, as in Tang et al.
        if draw < settings.mask_probability:
            word = mask_token
        elif draw < settings.mask_probability + settings.pos_probability and replacer is not None:  # (checked above)
            word = replacer.replace(word, rng)
        augmented.append(word)
    if rng.random() < settings.ngram_probability and len(augmented) > 1:
        size = int(rng.integers(1, min(settings.max_ngram, len(augmented)) + 1))
        start = int(rng.integers(0, len(augmented) - size + 1))
        augmented = augmented[start : start + size]
    return " ".join(augmented)


def augment_texts(texts: list[str], settings: TransferConfig, mask_token: str) -> list[str]:
    """``settings.augment_copies`` augmented copies of every text, seeded (copy-major order: all first copies, ...);
    replacement words are drawn from ``texts`` themselves."""
    rng = np.random.default_rng(settings.seed)
    replacer = PartOfSpeechReplacer(texts) if settings.pos_probability > 0 else None
    return [
        augment_text(text, rng, settings, mask_token, replacer)
        for _ in range(settings.augment_copies)
        for text in texts
    ]


# Negation sites: ``not`` goes in after a copula before an adjective (form "copula") or with do-support before a
# verb after a subject pronoun ("verb"), or comes out after an auxiliary ("auxiliary").
_COPULA_ADJECTIVE = re.compile(rf"\b(is|was|are|were|am)(\s+(?:(?:{INTENSIFIERS})\s+)?)([A-Za-z]+)\b", re.IGNORECASE)
_NEGATED_AUXILIARY = re.compile(
    r"\b(is|was|are|were|am|do|does|did|has|have|had|could|would|should|must)(?:n't|\s+not)\b", re.IGNORECASE
)
_NEGATED_CAN_WILL = re.compile(r"\b(?:(can)(?:'t|not|\s+not)|(wo)n't)\b", re.IGNORECASE)
_SUBJECT_VERB = re.compile(rf"\b(I|[Ww]e|[Tt]hey|[Hh]e|[Ss]he)(\s+(?:(?:{INTENSIFIERS}|also)\s+)?)([a-z]+)\b")
_AUXILIARY_LEMMAS = frozenset("be have do will shall can may must would could should might".split())  # noqa: SIM905


@functools.lru_cache(maxsize=200_000)
def _is_adjective(word: str) -> bool:
    from lemminflect import getAllLemmas  # imported here: only negation edits and POS replacement need it

    return word not in NEGATIONS and "ADJ" in getAllLemmas(word)


@functools.lru_cache(maxsize=200_000)
def _do_support(word: str) -> tuple[str, str] | None:
    """(do/does/did, lemma) that negate the finite verb ``word`` (loved → did, love; loves → does, love); None for
    words the lexicon does not know as a verb, auxiliaries and forms that are neither past, 3rd-singular nor base."""
    from lemminflect import getAllLemmas, getInflection

    lemmas = getAllLemmas(word).get("VERB")
    if not lemmas or lemmas[0] in _AUXILIARY_LEMMAS:
        return None
    lemma = lemmas[0]
    if word in getInflection(lemma, "VBD"):
        return "did", lemma
    if word in getInflection(lemma, "VBZ"):
        return "does", lemma
    return ("do", lemma) if word == lemma else None


def negation_sites(sentence: str, forms: Sequence[str] = DEFAULT_NEGATION_FORMS) -> list[tuple[int, int, str]]:
    """Every place ``sentence``'s polarity can be toggled in one of ``forms``, as (start, end, replacement):
    "copula" ``was good`` → ``was not good`` (an adjective in LemmInflect's lexicon after is/was/are/were/am, an
    intensifier allowed between); "auxiliary" ``wasn't``/``did not``/``can't``/``won't`` →
    ``was``/``did``/``can``/``will``; "verb" ``I loved`` → ``I did not love`` (a subject pronoun, then a verb)."""
    sites = []
    if "copula" in forms:
        sites += [
            (match.start(), match.end(1), f"{match.group(1)} not")
            for match in _COPULA_ADJECTIVE.finditer(sentence)
            if _is_adjective(match.group(3).lower())
        ]
    if "auxiliary" in forms:
        sites += [(match.start(), match.end(), match.group(1)) for match in _NEGATED_AUXILIARY.finditer(sentence)]
        for match in _NEGATED_CAN_WILL.finditer(sentence):
            word = match.group(1) or match.group(2)
            positive = word if match.group(1) else word[0] + "ill"  # won't → will, case of its first letter kept
            sites.append((match.start(), match.end(), positive))
    if "verb" in forms:
        for match in _SUBJECT_VERB.finditer(sentence):
            if support := _do_support(match.group(3)):
                auxiliary, lemma = support
                sites.append((match.start(), match.end(), f"{match.group(1)} {auxiliary} not{match.group(2)}{lemma}"))
    return sites


def toggle_negation(sentence: str, rng: np.random.Generator, forms: Sequence[str] = DEFAULT_NEGATION_FORMS) -> str:
    """``sentence`` with one of its ``negation_sites`` in ``forms`` (drawn at random) toggled; unchanged when it
    has none."""
    sites = negation_sites(sentence, forms)
    if not sites:
        return sentence
    start, end, replacement = sites[int(rng.integers(len(sites)))]
    return sentence[:start] + replacement + sentence[end:]


def sentence_spans(texts: list[str], ids: list[str], settings: TransferConfig) -> tuple[list[str], list[str]]:
    """Up to ``settings.sentence_spans`` distinct spans of 1..``max_span_sentences`` consecutive sentences and
    their ids (``sentences:<k>:<text id>``), seeded; a span never covers a whole text, so texts of one sentence
    give none."""

    def draw_span(text: str, rng: np.random.Generator) -> str | None:
        sentences = split_sentences(text)
        if len(sentences) < 2:
            return None
        size = int(rng.integers(1, min(settings.max_span_sentences, len(sentences) - 1) + 1))
        start = int(rng.integers(0, len(sentences) - size + 1))
        return " ".join(sentences[start : start + size])

    rng = np.random.default_rng(settings.seed)
    return _distinct_draws(texts, ids, settings.sentence_spans, draw_span, rng, "sentences")


def negation_edits(texts: list[str], ids: list[str], settings: TransferConfig) -> tuple[list[str], list[str]]:
    """Up to ``settings.negation_edits`` distinct spans of 1..``max_span_sentences`` consecutive sentences, one
    of whose sentences has one negation toggled (``toggle_negation``), and their ids (``negation:<k>:<text id>``),
    seeded. The edits are minimal pairs of the texts the teacher already labels; it labels the edited span too, so
    the student learns what a negation does from the teacher rather than from a rule."""

    def draw_edit(text: str, rng: np.random.Generator) -> str | None:
        sentences = split_sentences(text)
        sites = [i for i, sentence in enumerate(sentences) if negation_sites(sentence, settings.negation_forms)]
        if not sites:
            return None
        edited = sites[int(rng.integers(len(sites)))]
        size = int(rng.integers(1, min(settings.max_span_sentences, len(sentences)) + 1))
        start = int(rng.integers(max(0, edited - size + 1), min(edited, len(sentences) - size) + 1))
        span = sentences[start : start + size]
        span[edited - start] = toggle_negation(span[edited - start], rng, settings.negation_forms)
        return " ".join(span)

    rng = np.random.default_rng([settings.seed, 1])  # a stream of its own: not the sentence spans' choices
    return _distinct_draws(texts, ids, settings.negation_edits, draw_edit, rng, "negation")


def _distinct_draws(
    texts: list[str],
    ids: list[str],
    count: int,
    draw: Callable[[str, np.random.Generator], str | None],
    rng: np.random.Generator,
    prefix: str,
) -> tuple[list[str], list[str]]:
    """Up to ``count`` distinct texts ``draw`` makes from ``texts`` and their ids (``<prefix>:<k>:<text id>``).

    Texts are visited in random order, pass after pass, until ten passes in a row find nothing new.
    """
    found: list[str] = []
    found_ids: list[str] = []
    seen: set[bytes] = set()
    fruitless_passes = 0
    while len(found) < count and fruitless_passes < 10:
        found_before = len(found)
        for index in rng.permutation(len(texts)):
            text = draw(texts[index], rng)
            if text is None:
                continue
            key = text_keys([text])[0]
            if key not in seen:
                seen.add(key)
                found_ids.append(f"{prefix}:{len(found)}:{ids[index]}")
                found.append(text)
                if len(found) == count:
                    break
        fruitless_passes = fruitless_passes + 1 if len(found) == found_before else 0
    if len(found) < count:
        logger.warning("%s: only %d distinct texts (asked for %d)", prefix, len(found), count)
    return found, found_ids


def with_transfer_texts(dataset: Dataset, settings: TransferConfig, mask_token: str) -> Dataset:
    """``dataset`` whose unlabelled split also holds the configured sources' texts, augmented training texts and
    sentence spans and negation edits of the training and in-domain unlabelled texts.

    Ids say where each row comes from (``<source name>:<row>``, ``augment:<copy>:<train id>``,
    ``sentences:<k>:<text id>``, ``negation:<k>:<text id>``). A transfer text equal to a validation or test text is
    dropped with a warning: it would leak evaluation texts into training.
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
    pool_texts, pool_ids = dataset.train.texts + in_domain_texts, dataset.train.ids + in_domain_ids
    if settings.sentence_spans:
        parts.append(("sentences", *sentence_spans(pool_texts, pool_ids, settings)))
    if settings.negation_edits:
        parts.append(("negation", *negation_edits(pool_texts, pool_ids, settings)))
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
