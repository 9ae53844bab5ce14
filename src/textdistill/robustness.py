"""Behavioural checks for binary sentiment tasks, built from VALIDATION texts only, and their scoring.

Four kinds of check, each a ``CheckSet`` of edited texts with the label a sound model must give them:

- **slice**: single sentences cut from validation reviews that hold a clear sentiment word of the review's own
  polarity (from ``POSITIVE_WORDS``/``NEGATIVE_WORDS``), no word of the other polarity, no negation and no
  contrast word (but, although, ...). Assumption: such a sentence carries its review's gold label.
- **flip**: those sentences with exactly one lexicon word, swapped for its curated antonym (``great`` →
  ``terrible``), or, for positive sentences whose sentiment word follows a copula, negated (``was great`` →
  ``was not great``), or, where the one lexicon word is a first-person verb of liking, negated there (``I loved
  it`` → ``I did not love it``: ``transfer.negation_edits`` make this form only with ``negation_forms`` "verb",
  so without it the check tells whether a student learnt negation or only the copula edit), and the copula
  check's sentences again with ``never`` for ``not`` (a negator no edit puts in); the expected label is the other
  one. Negative sentences are not negated: "not bad" reads as mildly positive at best, not as a
  clear positive.
- **invariance**: short validation reviews (at most ``max_review_words`` words) with a neutral edit: person names
  swapped, numbers changed (never ratings such as ``7/10``), commas and the final full stop removed, typos in two
  non-sentiment words. The expected label is the review's gold label and the prediction should not change.
- **domain** (``report.domain_checks``, opt-in): another dataset's texts whose own labels map to this task's
  (emotion tweets: joy and love positive, sadness, anger and fear negative), the other rows left out: how far a
  model's reading carries beyond the training domain. Unlike the others these come from outside validation,
  read from the split the entry names (``test`` by default, never one the transfer texts come from).

Everything is seeded and deterministic, and nothing looks at the task's test split: the lexicons are curated by hand,
not tuned to any model or test set. ``score_checks`` scores any model's predictions on the sets: accuracy against
the expected label, accuracy on the rows whose original text the model got right (flip and invariance), the
share of unchanged predictions (invariance) and, given a teacher's predictions, agreement with the teacher.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from textdistill.config import DomainCheck
from textdistill.data import DataError, label_set, read_named_split, text_keys
from textdistill.tokens import normalise_text

logger = logging.getLogger(__name__)

# (positive, negative) antonym pairs, then (negative, positive) pairs: each word's antonym is its first pair's other.
_PAIRS_FROM_POSITIVE = [
    ("great", "terrible"),
    ("good", "bad"),
    ("excellent", "awful"),
    ("wonderful", "horrible"),
    ("brilliant", "dreadful"),
    ("amazing", "appalling"),
    ("fantastic", "atrocious"),
    ("superb", "abysmal"),
    ("outstanding", "mediocre"),
    ("beautiful", "ugly"),
    ("best", "worst"),
    ("love", "hate"),
    ("loved", "hated"),
    ("enjoyable", "unbearable"),
    ("entertaining", "tedious"),
    ("interesting", "boring"),
    ("fascinating", "dull"),
    ("funny", "unfunny"),
    ("masterpiece", "disaster"),
    ("perfect", "pathetic"),
    ("memorable", "forgettable"),
    ("impressive", "unimpressive"),
    ("liked", "disliked"),
    ("delightful", "painful"),
    ("charming", "annoying"),
    ("clever", "stupid"),
    ("powerful", "feeble"),
    ("superior", "inferior"),
    ("engaging", "tiresome"),
    ("enjoyed", "loathed"),
    ("solid", "weak"),
]
_PAIRS_FROM_NEGATIVE = [
    ("poor", "excellent"),
    ("mess", "triumph"),
    ("disappointing", "satisfying"),
    ("disappointed", "impressed"),
    ("pointless", "meaningful"),
    ("lame", "clever"),
    ("unwatchable", "watchable"),
    ("waste", "gem"),
]


def _antonyms() -> dict[str, str]:
    antonyms: dict[str, str] = {}
    for positive, negative in _PAIRS_FROM_POSITIVE:
        antonyms.setdefault(positive, negative)
        antonyms.setdefault(negative, positive)
    for negative, positive in _PAIRS_FROM_NEGATIVE:
        antonyms.setdefault(negative, positive)
        antonyms.setdefault(positive, negative)
    return antonyms


ANTONYMS = _antonyms()
POSITIVE_WORDS = frozenset(p for p, _ in _PAIRS_FROM_POSITIVE) | frozenset(p for _, p in _PAIRS_FROM_NEGATIVE)
NEGATIVE_WORDS = frozenset(n for _, n in _PAIRS_FROM_POSITIVE) | frozenset(n for n, _ in _PAIRS_FROM_NEGATIVE)
NEGATIONS = frozenset("not no never nothing neither nor none nobody nowhere hardly barely scarcely without".split())  # noqa: SIM905
CONTRASTS = frozenset("but however although though yet except despite whereas while instead".split())  # noqa: SIM905
INTENSIFIERS = "very|really|so|truly|quite|pretty|simply|absolutely|just|genuinely|extremely|incredibly"
COPULA = re.compile(rf"\b(is|was|are|were)(\s+(?:(?:{INTENSIFIERS})\s+)?)({{word}})\b", re.IGNORECASE)
# Positive lexicon adjectives that read naturally after "is/was not" (no verbs or nouns such as love, masterpiece).
NEGATABLE = frozenset(
    [
        "great",
        "good",
        "excellent",
        "wonderful",
        "brilliant",
        "amazing",
        "fantastic",
        "superb",
        "outstanding",
        "beautiful",
        "enjoyable",
        "entertaining",
        "interesting",
        "fascinating",
        "funny",
        "perfect",
        "memorable",
        "impressive",
        "delightful",
        "charming",
        "clever",
        "powerful",
        "superior",
        "engaging",
        "solid",
        "satisfying",
        "meaningful",
        "watchable",
        "best",
    ]
)
# Unambiguous first names (no Will, Grace, Mark, Frank, Bill, Hope ...: they are also ordinary words).
FIRST_NAMES = [
    "John",
    "James",
    "Robert",
    "Michael",
    "David",
    "Richard",
    "Charles",
    "Thomas",
    "Peter",
    "Paul",
    "George",
    "Steven",
    "Kevin",
    "Brian",
    "Jason",
    "Eric",
    "Daniel",
    "Anthony",
    "Jack",
    "Henry",
    "Tom",
    "Harry",
    "Steve",
    "Bruce",
    "Sean",
    "Brad",
    "Clint",
    "Robin",
    "Kate",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Margaret",
    "Sandra",
    "Emily",
    "Julia",
    "Laura",
    "Helen",
    "Anna",
    "Nicole",
    "Meryl",
    "Emma",
    "Sophie",
    "Michelle",
    "Barbara",
    "Catherine",
    "Diane",
    "Alice",
    "Jane",
    "Lucy",
    "Julie",
    "Rachel",
]
# Verbs of liking after a first-person subject: the verb-negation check's sites (past tense → its lemma).
_VERB_LEMMAS = {"loved": "love", "liked": "like", "enjoyed": "enjoy", "adored": "adore"}
_PRONOUN_VERB = re.compile(rf"\b(I|we|We)(\s+(?:(?:{INTENSIFIERS})\s+)?)(loved|love|liked|enjoyed|adored)\b")
_NAME = re.compile(r"\b(" + "|".join(FIRST_NAMES) + r")\b")
_NUMBER = re.compile(r"(?<![A-Za-z\d])\d+(?![A-Za-z\d])")  # standalone: not 3D, N64, 5th
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")

KINDS = ("slice", "flip", "invariance", "domain")


@dataclass
class CheckSet:
    """One behavioural check: edited ``texts`` with the ``expected`` label ids (n,), and for flip and invariance
    checks the unedited text of each row (``originals``; None for slices)."""

    name: str
    kind: str  # slice | flip | invariance
    description: str
    texts: list[str]
    expected: np.ndarray  # (n,) int64 label ids
    originals: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, count: int = 3) -> list[dict[str, Any]]:
        """The first ``count`` rows as ``{"text", "expected", "original"?}`` (for the report)."""
        rows = []
        for index in range(min(count, len(self))):
            row: dict[str, Any] = {"text": self.texts[index], "expected": int(self.expected[index])}
            if self.originals is not None:
                row["original"] = self.originals[index]
            rows.append(row)
        return rows


@dataclass
class CheckScore:
    """How one model did on one ``CheckSet`` (None where a measure does not apply)."""

    check: str
    kind: str
    examples: int
    accuracy: float  # share of rows predicted as the expected label
    accuracy_where_original_right: float | None = None  # same, on rows whose original the model got right
    consistency: float | None = None  # invariance: share of rows whose prediction did not change
    agreement_with_teacher: float | None = None  # share of edited rows predicted as the teacher predicts them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckPredictions:
    """One model's predicted label ids on a ``CheckSet``: on the edited texts and on their originals."""

    edited: np.ndarray  # (n,) int64
    original: np.ndarray | None = None  # (n,) int64, None for slices


# ---------------------------------------------------------------------------------------------------
# Text helpers


def words(text: str) -> list[str]:
    """Lower-cased words (letters and inner apostrophes) of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def split_sentences(text: str) -> list[str]:
    """Sentences of a review (after ``normalise_text``): split after . ! ? when a capital or quote follows."""
    return [s.strip() for s in _SENTENCE_END.split(normalise_text(text)) if s.strip()]


def _is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


def _match_case(replacement: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    return replacement.capitalize() if original[0].isupper() else replacement


def sentiment_hits(sentence: str) -> tuple[list[str], list[str]]:
    """(positive, negative) lexicon words of ``sentence``, in order, repeats kept."""
    tokens = words(sentence)
    return [w for w in tokens if w in POSITIVE_WORDS], [w for w in tokens if w in NEGATIVE_WORDS]


# ---------------------------------------------------------------------------------------------------
# Candidate sentences and short reviews (validation only)


@dataclass
class Sentence:
    """A clear-sentiment sentence of a validation review, labelled with the review's gold label."""

    text: str
    label: int
    sentiment_words: list[str]


def clear_sentences(
    texts: Sequence[str], labels: np.ndarray, positive: int, min_words: int = 6, max_words: int = 40
) -> list[Sentence]:
    """Sentences of ``min_words``..``max_words`` words holding a lexicon word of their review's polarity, none of
    the other, no negation, no contrast word and no question mark; labelled with their review's gold label."""
    found = []
    for text, label in zip(texts, labels, strict=True):
        for sentence in split_sentences(text):
            tokens = words(sentence)
            if not min_words <= len(tokens) <= max_words or "?" in sentence:
                continue
            if any(_is_negation(w) or w in CONTRASTS for w in tokens):
                continue
            good, bad = sentiment_hits(sentence)
            own, other = (good, bad) if int(label) == positive else (bad, good)
            if own and not other:
                found.append(Sentence(sentence, int(label), own))
    return found


def _sample(items: list[Any], rng: np.random.Generator, limit: int) -> list[Any]:
    """At most ``limit`` of ``items`` in a seeded random order."""
    order = rng.permutation(len(items))[:limit]
    return [items[i] for i in order]


# ---------------------------------------------------------------------------------------------------
# Edits (each returns the edited text, or None when it does not apply)


def swap_antonym(sentence: str) -> str | None:
    """The one lexicon word of ``sentence`` replaced by its antonym (case kept); None unless exactly one."""
    good, bad = sentiment_hits(sentence)
    if len(good) + len(bad) != 1:
        return None
    word = (good + bad)[0]
    pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
    return pattern.sub(lambda m: _match_case(ANTONYMS[word], m.group(0)), sentence, count=1)


def negate(sentence: str, negator: str = "not") -> str | None:
    """``is/was/are/were [intensifier] WORD`` → ``... not [intensifier] WORD`` (or another ``negator``: ``was never
    great``) for its one positive lexicon word."""
    good, bad = sentiment_hits(sentence)
    if len(good) != 1 or bad or good[0] not in NEGATABLE:
        return None
    pattern = re.compile(COPULA.pattern.format(word=re.escape(good[0])), re.IGNORECASE)
    edited, count = pattern.subn(lambda m: f"{m.group(1)} {negator}{m.group(2)}{m.group(3)}", sentence, count=1)
    return edited if count else None


def negate_verb(sentence: str) -> str | None:
    """``I/we [intensifier] loved`` → ``I/we did not [intensifier] love`` (present tense: ``do not``) when that verb
    is the sentence's one positive lexicon word and occurs once; None otherwise."""
    found = _PRONOUN_VERB.findall(sentence)
    good, _ = sentiment_hits(sentence)
    if len(found) != 1 or len(good) != 1:
        return None
    verb = found[0][2]
    lemma, auxiliary = (_VERB_LEMMAS[verb], "did") if verb in _VERB_LEMMAS else (verb, "do")
    return _PRONOUN_VERB.sub(lambda m: f"{m.group(1)} {auxiliary} not{m.group(2)}{lemma}", sentence, count=1)


def swap_names(text: str, rng: np.random.Generator) -> str | None:
    """Every listed first name replaced by another listed name (each distinct name consistently)."""
    found = sorted(set(_NAME.findall(text)))
    if not found:
        return None
    replacement: dict[str, str] = {}
    for name in found:
        choices = [n for n in FIRST_NAMES if n not in found and n not in replacement.values()]
        replacement[name] = str(rng.choice(choices))
    return _NAME.sub(lambda m: replacement[m.group(1)], text)


def _is_rating(text: str, start: int, end: int) -> bool:
    """Whether the number at ``text[start:end]`` is part of a rating or score (7/10, 8 out of 10, 4 stars)."""
    before, after = text[max(0, start - 8) : start].lower(), text[end : end + 8].lower()
    rating = before.rstrip().endswith(("/", "out of")) or after.lstrip().startswith(("/", "out of", "star", "point"))
    decimal = before.endswith((".", ",")) or (after.startswith((".", ",")) and after[1:2].isdigit())  # 7.5, 1,000
    return rating or decimal


def change_numbers(text: str, rng: np.random.Generator) -> str | None:
    """Every number that is not a rating replaced by another with as many digits (no leading zero)."""
    spans = [m.span() for m in _NUMBER.finditer(text) if not _is_rating(text, *m.span())]
    if not spans:
        return None
    pieces, last = [], 0
    for start, end in spans:
        digits, number = end - start, int(text[start:end])
        low, high = (1, 10) if digits == 1 else (10 ** (digits - 1), 10**digits)
        if 1900 <= number <= 2030:  # a year stays a plausible year
            low, high = 1930, 2021
        value = text[start:end]
        while value == text[start:end]:
            value = str(int(rng.integers(low, high)))
        pieces += [text[last:start], value]
        last = end
    return "".join(pieces) + text[last:]


def change_punctuation(text: str) -> str | None:
    """Commas removed and the final full stop dropped (or one added); None without a comma."""
    if "," not in text:
        return None
    edited = text.replace(",", "").rstrip()
    return edited[:-1] if edited.endswith(".") else edited + "."


def add_typos(text: str, rng: np.random.Generator, count: int = 2) -> str | None:
    """Two adjacent inner letters swapped in ``count`` non-sentiment words of at least 5 letters."""
    matches = [
        m
        for m in re.finditer(r"\b[a-z]{5,}\b", text)
        if m.group(0) not in ANTONYMS and not _is_negation(m.group(0)) and m.group(0) not in CONTRASTS
    ]
    matches = [m for m in matches if len(set(m.group(0)[1:-1])) > 1]
    if len(matches) < count:
        return None
    chosen = sorted(rng.choice(len(matches), size=count, replace=False))
    pieces, last = [], 0
    for index in chosen:
        match = matches[int(index)]
        word = match.group(0)
        positions = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1]]
        if not positions:
            continue
        i = int(rng.choice(positions))
        pieces += [text[last : match.start()], word[:i] + word[i + 1] + word[i] + word[i + 2 :]]
        last = match.end()
    edited = "".join(pieces) + text[last:]
    return edited if edited != text else None


# ---------------------------------------------------------------------------------------------------
# Building the check sets


@dataclass
class CheckSettings:
    """How the checks are built: seed, the cap on rows per check and what counts as a short review."""

    seed: int = 42
    max_per_check: int = 300
    max_review_words: int = 120


def build_checks(
    texts: Sequence[str], labels: np.ndarray, positive: int, settings: CheckSettings | None = None
) -> list[CheckSet]:
    """Every check built from validation ``texts``/``labels`` (label ids 0/1, ``positive`` the positive one);
    empty checks are left out. Same inputs and settings, same checks."""
    settings = settings or CheckSettings()
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(settings.seed)
    sentences = clear_sentences(texts, labels, positive)
    checks = [
        _slice_check(sentences, rng, settings.max_per_check),
        _flip_check(
            "flip: antonym swap",
            "one sentiment word swapped for its antonym (great → terrible); the label must flip",
            sentences,
            swap_antonym,
            rng,
            settings.max_per_check,
        ),
    ]
    negation = _flip_check(
        "flip: negation",
        "a positive sentence negated after its copula (was great → was not great); must be negative",
        [s for s in sentences if s.label == positive],
        negate,
        rng,
        settings.max_per_check,
    )
    checks.append(negation)
    short = [
        (t, int(y))
        for t, y in zip(texts, labels, strict=True)
        if len(normalise_text(t).split()) <= settings.max_review_words
    ]
    short = [(normalise_text(t), y) for t, y in short]
    neutral: list[tuple[str, str, Callable[[str], str | None]]] = [
        ("invariance: names", "person names swapped (John → Sarah)", lambda t: swap_names(t, rng)),
        (
            "invariance: numbers",
            "numbers changed (years to other years), never ratings such as 7/10",
            lambda t: change_numbers(t, rng),
        ),
        ("invariance: punctuation", "commas removed and the final full stop dropped", change_punctuation),
        ("invariance: typos", "two adjacent letters swapped in two non-sentiment words", lambda t: add_typos(t, rng)),
    ]
    for name, description, edit in neutral:
        checks.append(_invariance_check(name, description, short, edit, rng, settings.max_per_check))
    checks.append(  # added last (after the others drew from rng), so the earlier checks are as they were before it
        _flip_check(
            "flip: verb negation",
            "a positive sentence's verb of liking negated (I loved it → I did not love it); must be negative",
            [s for s in sentences if s.label == positive],
            negate_verb,
            rng,
            settings.max_per_check,
        )
    )
    never = [(o, e) for o in negation.originals or [] if (e := negate(o, "never"))]  # the same sentences as "not"
    checks.append(
        CheckSet(
            "flip: never",
            "flip",
            "the negation check's sentences with never for not (was great → was never great); must be negative",
            [edited for _, edited in never],
            np.full(len(never), 1 - positive, dtype=np.int64),
            [original for original, _ in never],
        )
    )
    return [check for check in checks if len(check)]


def _slice_check(sentences: list[Sentence], rng: np.random.Generator, limit: int) -> CheckSet:
    chosen = _sample(sentences, rng, limit)
    return CheckSet(
        "slice: sentiment sentences",
        "slice",
        "one clear-sentiment sentence of a validation review, labelled with the review's gold label",
        [s.text for s in chosen],
        np.array([s.label for s in chosen], dtype=np.int64),
    )


def _flip_check(
    name: str,
    description: str,
    sentences: list[Sentence],
    edit: Callable[[str], str | None],
    rng: np.random.Generator,
    limit: int,
) -> CheckSet:
    edited = [(s, e) for s in sentences if (e := edit(s.text)) is not None]
    chosen = _sample(edited, rng, limit)
    return CheckSet(
        name,
        "flip",
        description,
        [e for _, e in chosen],
        np.array([1 - s.label for s, _ in chosen], dtype=np.int64),
        [s.text for s, _ in chosen],
    )


def _invariance_check(
    name: str,
    description: str,
    reviews: list[tuple[str, int]],
    edit: Callable[[str], str | None],
    rng: np.random.Generator,
    limit: int,
) -> CheckSet:
    order = rng.permutation(len(reviews))
    rows: list[tuple[str, str, int]] = []
    for index in order:  # edit in a seeded order until the cap, so the random edits do not depend on the cap
        text, label = reviews[int(index)]
        edited = edit(text)
        if edited is not None and edited != text:
            rows.append((text, edited, label))
            if len(rows) == limit:
                break
    return CheckSet(
        name,
        "invariance",
        description,
        [e for _, e, _ in rows],
        np.array([y for _, _, y in rows], dtype=np.int64),
        [t for t, _, _ in rows],
    )


def polarity_rows(
    texts: Sequence[Any],
    label_sets: Sequence[Sequence[str]],
    positive_names: Sequence[str],
    negative_names: Sequence[str],
) -> list[tuple[str, bool]]:
    """(text, is positive) for each row whose labels are all in ``positive_names`` or all in ``negative_names``;
    rows with mixed, other or no labels, empty or non-text texts, repeats and texts seen with both polarities are
    left out (so the expected label is never ambiguous)."""
    positive, negative = set(positive_names), set(negative_names)
    polarity: dict[str, bool | None] = {}
    for text, labels in zip(texts, label_sets, strict=True):
        if not isinstance(text, str) or not text.strip() or not labels:
            continue
        if set(labels) <= positive or set(labels) <= negative:
            is_positive = set(labels) <= positive
            polarity[text] = is_positive if polarity.get(text, is_positive) == is_positive else None
    return [(text, is_positive) for text, is_positive in polarity.items() if is_positive is not None]


def domain_check(
    name: str, description: str, rows: list[tuple[str, bool]], positive: int, rng: np.random.Generator, limit: int
) -> CheckSet:
    """A ``domain`` check of at most ``limit`` of ``rows`` (``polarity_rows``), in a seeded random order."""
    chosen = _sample(rows, rng, limit)
    expected = [positive if is_positive else 1 - positive for _, is_positive in chosen]
    return CheckSet(name, "domain", description, [t for t, _ in chosen], np.array(expected, dtype=np.int64))


def read_domain_check(
    entry: DomainCheck, positive: int, rng: np.random.Generator, seen: set[bytes], where: str
) -> CheckSet:
    """The ``domain`` check of one ``report.domain_checks`` entry (``where`` names it in errors): its split's rows
    that map to a polarity, less those whose text the run trains or selects on (``seen``: ``data.text_keys`` of
    the train, validation and transfer texts; left out with a warning), at most ``entry.max_rows``."""
    frame, class_names = read_named_split(entry.path, entry.split, where, entry.label_column)
    missing = [c for c in (entry.column, entry.label_column) if c not in frame.columns]
    if missing:
        raise DataError(f"{where} ({entry.path}): no column(s) {missing}; columns: {list(frame.columns)}")
    sets = [label_set(value, None, class_names) for value in frame[entry.label_column]]
    present = {name for names in sets for name in names}
    absent = sorted((set(entry.positive) | set(entry.negative)) - present)
    if not present & set(entry.positive) or not present & set(entry.negative):
        raise DataError(f"{where}: labels {absent} never occur in {entry.path}; its labels: {sorted(present)}")
    if absent:
        logger.warning("%s: labels %s never occur in %s (its labels: %s)", where, absent, entry.path, sorted(present))
    rows = polarity_rows(frame[entry.column].tolist(), sets, entry.positive, entry.negative)
    unseen = [row for row, key in zip(rows, text_keys([t for t, _ in rows]), strict=True) if key not in seen]
    if len(unseen) < len(rows):
        logger.warning(
            "%s: %d of %d texts are also training, validation or transfer texts; left out",
            where,
            len(rows) - len(unseen),
            len(rows),
        )
    description = (
        f"the {entry.split} texts of {entry.path} labelled {'/'.join(entry.positive)} (positive) or "
        f"{'/'.join(entry.negative)} (negative) there, read as that"
    )
    return domain_check(f"domain: {entry.name}", description, unseen, positive, rng, entry.max_rows or len(unseen))


# ---------------------------------------------------------------------------------------------------
# Scoring


def predict_checks(checks: list[CheckSet], predict: Callable[[list[str]], np.ndarray]) -> list[CheckPredictions]:
    """One model's label ids on every check, ``predict`` (texts → (n,) label ids) called once on the unique texts."""
    unique = sorted({t for c in checks for t in c.texts} | {t for c in checks for t in c.originals or []})
    if not unique:
        return [CheckPredictions(np.zeros(0, dtype=np.int64)) for _ in checks]
    labels = np.asarray(predict(unique), dtype=np.int64)
    if labels.shape != (len(unique),):
        raise ValueError(f"predict returned shape {labels.shape} for {len(unique)} texts; expected label ids (n,)")
    lookup = dict(zip(unique, labels.tolist(), strict=True))
    return [
        CheckPredictions(
            np.array([lookup[t] for t in c.texts], dtype=np.int64),
            None if c.originals is None else np.array([lookup[t] for t in c.originals], dtype=np.int64),
        )
        for c in checks
    ]


def score_check(check: CheckSet, predicted: CheckPredictions, teacher: CheckPredictions | None = None) -> CheckScore:
    """Accuracy against ``check.expected``; flip and invariance: also on rows whose original the model got right
    (the original's gold label is the other label for flips, the same for invariance); invariance: consistency."""
    hit = predicted.edited == check.expected
    score = CheckScore(check.name, check.kind, len(check), float(hit.mean()))
    if predicted.original is not None:
        gold = 1 - check.expected if check.kind == "flip" else check.expected
        right = predicted.original == gold
        score.accuracy_where_original_right = float(hit[right].mean()) if right.any() else None
        if check.kind == "invariance":
            score.consistency = float((predicted.edited == predicted.original).mean())
    if teacher is not None:
        score.agreement_with_teacher = float((predicted.edited == teacher.edited).mean())
    return score


def score_checks(
    checks: list[CheckSet], predicted: list[CheckPredictions], teacher: list[CheckPredictions] | None = None
) -> list[CheckScore]:
    """``score_check`` for every check (``teacher``: the teacher's predictions, for agreement)."""
    teachers: list[CheckPredictions | None] = list(teacher) if teacher is not None else [None] * len(checks)
    return [score_check(c, p, t) for c, p, t in zip(checks, predicted, teachers, strict=True)]


def score_model(
    checks: list[CheckSet],
    predict: Callable[[list[str]], np.ndarray],
    teacher_predict: Callable[[list[str]], np.ndarray] | None = None,
) -> list[CheckScore]:
    """Score any predict function (texts → label ids) on the checks; with ``teacher_predict``, agreement too."""
    teacher = predict_checks(checks, teacher_predict) if teacher_predict is not None else None
    return score_checks(checks, predict_checks(checks, predict), teacher)


# ---------------------------------------------------------------------------------------------------
# When the checks apply

POSITIVE_NAMES = ("1", "pos", "positive", "good", "true", "yes")
NEGATIVE_NAMES = ("0", "neg", "negative", "bad", "false", "no")
ROBUSTNESS_SETTINGS = ("auto", "on", "off")


def positive_label(label_names: list[str], given: str | None = None) -> int | None:
    """The index of the positive label of a 2-class task: ``given`` when set (a ValueError if it is not one of
    the labels), else the one named like ``positive`` when the other is named like ``negative``; None otherwise."""
    if len(label_names) != 2:
        return None
    if given is not None:
        if given not in label_names:
            raise ValueError(f"report.positive_label {given!r} is not one of the labels {label_names}")
        return label_names.index(given)
    lowered = [name.strip().lower() for name in label_names]
    for index in (0, 1):
        if lowered[index] in POSITIVE_NAMES and lowered[1 - index] in NEGATIVE_NAMES:
            return index
    return None


def applies(setting: str, label_names: list[str], given: str | None = None) -> tuple[int | None, str | None]:
    """(positive label index, None) when the checks run; (None, why not) when they are skipped.

    ``auto`` runs them on 2-class tasks whose positive label is known (``report.positive_label``, or label names
    such as 0/1, neg/pos) and skips them otherwise; ``on`` is the same but a task they cannot run on is a
    ValueError (raised before any stage, see ``workflow.run``); ``off`` never runs them.
    """
    index, why = _applies(setting, label_names, given)
    if setting == "on" and why is not None:
        raise ValueError(f"report.robustness: on, but {why.removeprefix('robustness checks skipped: ')}")
    return index, why


def _applies(setting: str, label_names: list[str], given: str | None) -> tuple[int | None, str | None]:
    if setting == "off":
        return None, "robustness checks off (report.robustness: off)"
    if len(label_names) != 2:
        return None, (
            f"robustness checks skipped: they are for binary sentiment tasks; this task has {len(label_names)} labels"
        )
    index = positive_label(label_names, given)
    if index is None:
        return None, (
            f"robustness checks skipped: cannot tell which of the labels {label_names} is positive; set "
            "report.positive_label"
        )
    return index, None
