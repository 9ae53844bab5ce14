"""Behavioural checks: the edits, the check sets built from (validation) texts, scoring and when they apply."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textdistill import robustness
from textdistill.config import ConfigError, DomainCheck, load_config
from textdistill.data import DataError, text_keys
from textdistill.robustness import (
    CheckPredictions,
    CheckSet,
    CheckSettings,
    add_typos,
    applies,
    build_checks,
    change_numbers,
    change_punctuation,
    clear_sentences,
    domain_check,
    negate,
    negate_verb,
    polarity_rows,
    predict_checks,
    read_domain_check,
    score_check,
    score_model,
    split_sentences,
    swap_antonym,
    swap_names,
)

POSITIVE = 1
REVIEWS = [
    (
        "The acting was really great in this film. I saw it with John on a Sunday in 1985. "
        "It is not good, but the music is lovely. Was it wonderful?",
        1,
    ),
    ("A terrible script from start to end. Mary and John were in it too, sadly for them.", 0),
    ("The plot was boring and predictable from the first scene. Avoid it, I rated it 2/10.", 0),
    ("What a beautiful and moving story about a family. I loved every minute of it, really.", 1),
    ("This is the best film I have seen this year, honestly. Thomas Smith was excellent here.", 1),
    ("The ending was awful but the cast was great in every single scene.", 0),
]


def texts_and_labels(copies: int = 1) -> tuple[list[str], np.ndarray]:
    rows = REVIEWS * copies
    return [t for t, _ in rows], np.array([y for _, y in rows])


# ---------------------------------------------------------------------------------------------------
# Sentences and edits


def test_sentences_are_split_after_end_marks_before_capitals():
    assert split_sentences("Good film.<br /><br />Bad end! Why? no split here. Yes") == [
        "Good film.",
        "Bad end!",
        "Why? no split here.",
        "Yes",
    ]


def test_clear_sentences_keep_only_one_polarity_without_negation_contrast_or_question():
    texts, labels = texts_and_labels()
    found = {(s.text, s.label) for s in clear_sentences(texts, labels, POSITIVE)}
    assert ("The acting was really great in this film.", 1) in found
    assert ("The plot was boring and predictable from the first scene.", 0) in found
    assert ("This is the best film I have seen this year, honestly.", 1) in found
    everything = " ".join(text for text, _ in found)
    assert "not good" not in everything  # negation
    assert "awful but" not in everything  # contrast and both polarities
    assert "Was it wonderful?" not in everything  # a question (and under six words)
    assert "A terrible script" in everything  # six words, negative, in a negative review


def test_a_sentence_of_the_other_polarity_than_its_review_is_not_taken():
    found = clear_sentences(["The acting was really great in this film."], np.array([0]), POSITIVE)
    assert found == []


def test_antonym_swap_keeps_case_and_needs_exactly_one_lexicon_word():
    assert swap_antonym("Great acting from everyone in the cast.") == "Terrible acting from everyone in the cast."
    assert swap_antonym("The plot was boring and slow.") == "The plot was interesting and slow."
    assert swap_antonym("A film about a family.") is None
    assert swap_antonym("Great acting, terrible plot.") is None


def test_negation_after_a_copula_for_positive_adjectives_only():
    assert negate("The acting was really great in this film.") == "The acting was not really great in this film."
    assert negate("The songs are wonderful.") == "The songs are not wonderful."
    assert negate("The plot was boring.") is None  # negative: "not boring" is not a clear positive
    assert negate("I loved every minute of it.") is None  # a verb, no copula
    assert negate("Harry's best friend was there.") is None  # possessive 's is no copula
    assert negate("The songs are wonderful.", "never") == "The songs are never wonderful."


def test_a_first_person_verb_of_liking_is_negated_with_do_support():
    assert negate_verb("I loved every minute of it, really.") == "I did not love every minute of it, really."
    assert negate_verb("We really enjoyed the cast.") == "We did not really enjoy the cast."
    assert negate_verb("I love this show.") == "I do not love this show."
    assert negate_verb("I loved the great cast.") is None  # another positive word would keep it positive
    assert negate_verb("I loved it and I love it still.") is None  # two sites: one negation would not flip it
    assert negate_verb("She loved it.") is None  # first person only: "she did not love it" is a report


def test_names_are_swapped_consistently_and_deterministically():
    text = "John met Mary. Later John left, and Mary stayed. Willow was fine."
    edited = swap_names(text, np.random.default_rng(0))
    assert edited is not None and edited != text
    first, second = edited.split()[0], edited.split()[2].rstrip(".")
    assert first in robustness.FIRST_NAMES and first not in ("John", "Mary") and second != first
    assert edited.count(first) == 2 and "Willow" in edited
    assert swap_names(text, np.random.default_rng(0)) == edited
    assert swap_names("No names at all here.", np.random.default_rng(0)) is None


def test_numbers_change_but_ratings_decimals_and_tokens_with_letters_do_not():
    text = "In 1985 he made 3 films in 3D, rated 7/10, 8 out of 10, 4 stars, 7.5 on N64."
    edited = change_numbers(text, np.random.default_rng(1))
    assert edited is not None
    year, count = edited.split()[1], edited.split()[4]
    assert year != "1985" and 1930 <= int(year) <= 2020 and len(count) == 1 and count != "3"
    assert edited.endswith(" films in 3D, rated 7/10, 8 out of 10, 4 stars, 7.5 on N64.")
    assert change_numbers("Rated 9/10 and 10 out of 10.", np.random.default_rng(1)) is None


def test_punctuation_and_typos_leave_sentiment_words_alone():
    assert change_punctuation("Well, it was great, really.") == "Well it was great really"
    assert change_punctuation("No commas here.") is None
    text = "the wonderful director wanted another picture about terrible weather"
    edited = add_typos(text, np.random.default_rng(3))
    assert edited is not None
    changed = [(a, b) for a, b in zip(text.split(), edited.split(), strict=True) if a != b]
    assert len(changed) == 2
    for before, after in changed:
        assert sorted(before) == sorted(after) and before[0] == after[0] and before[-1] == after[-1]
        assert before not in robustness.ANTONYMS
    assert add_typos("a good film", np.random.default_rng(3)) is None


def test_every_antonym_pair_maps_back_and_the_polarities_are_disjoint():
    assert not robustness.POSITIVE_WORDS & robustness.NEGATIVE_WORDS
    for word, antonym in robustness.ANTONYMS.items():
        assert (word in robustness.POSITIVE_WORDS) != (antonym in robustness.POSITIVE_WORDS)
    assert robustness.NEGATABLE <= robustness.POSITIVE_WORDS


# ---------------------------------------------------------------------------------------------------
# Check sets


def test_build_checks_is_deterministic_labels_follow_the_kind_and_the_cap_holds():
    texts, labels = texts_and_labels(copies=4)
    settings = CheckSettings(seed=5, max_per_check=3, max_review_words=40)
    checks = build_checks(texts, labels, POSITIVE, settings)
    again = build_checks(texts, labels, POSITIVE, settings)
    assert [(c.name, c.texts, c.expected.tolist(), c.originals) for c in checks] == [
        (c.name, c.texts, c.expected.tolist(), c.originals) for c in again
    ]
    names = {c.name for c in checks}
    assert {"slice: sentiment sentences", "flip: antonym swap", "flip: negation", "invariance: names"} <= names
    assert [c.name for c in checks][-2:] == ["flip: verb negation", "flip: never"]  # last: drawn after the others
    negation, never = (next(c for c in checks if c.name == name) for name in ("flip: negation", "flip: never"))
    assert never.originals == negation.originals  # the same sentences, "never" for "not"
    assert [t.replace(" never ", " not ") for t in never.texts] == negation.texts
    gold = {robustness.normalise_text(t): y for t, y in zip(texts, labels, strict=True)}
    sentence_label = {s.text: s.label for s in clear_sentences(texts, labels, POSITIVE)}
    for check in checks:
        assert 1 <= len(check) <= 3 and check.kind in robustness.KINDS
        if check.kind == "flip":
            assert [sentence_label[o] for o in check.originals] == (1 - check.expected).tolist()
        if check.kind == "invariance":
            assert [gold[o] for o in check.originals] == check.expected.tolist()
            assert all(t != o for t, o in zip(check.texts, check.originals, strict=True))
    other_seed = build_checks(texts, labels, POSITIVE, CheckSettings(seed=6, max_per_check=3, max_review_words=40))
    assert [c.texts for c in other_seed] != [c.texts for c in checks]


def test_long_reviews_get_no_invariance_edits():
    texts, labels = texts_and_labels()
    checks = build_checks(texts, labels, POSITIVE, CheckSettings(max_review_words=5))
    assert not [c for c in checks if c.kind == "invariance"]


def test_a_positive_label_of_zero_flips_the_polarity_of_the_labels():
    texts, labels = texts_and_labels()
    found = clear_sentences(texts, 1 - labels, positive=0)
    assert {s.text for s in found} == {s.text for s in clear_sentences(texts, labels, POSITIVE)}


# ---------------------------------------------------------------------------------------------------
# Scoring


def flip_set() -> CheckSet:
    return CheckSet("flip", "flip", "", ["a-", "b-", "c-", "d-"], np.array([0, 0, 1, 1]), ["a", "b", "c", "d"])


def test_scores_of_a_flip_check():
    predicted = CheckPredictions(np.array([0, 1, 1, 1]), np.array([1, 1, 1, 0]))  # originals right: a, b, d
    teacher = CheckPredictions(np.array([0, 0, 0, 1]))
    score = score_check(flip_set(), predicted, teacher)
    assert score.accuracy == pytest.approx(3 / 4)
    assert score.accuracy_where_original_right == pytest.approx(2 / 3)  # a right, b wrong, d right
    assert score.agreement_with_teacher == pytest.approx(2 / 4)
    assert score.consistency is None


def test_scores_of_an_invariance_check():
    check = CheckSet("inv", "invariance", "", ["a'", "b'", "c'"], np.array([1, 0, 1]), ["a", "b", "c"])
    predicted = CheckPredictions(np.array([1, 1, 1]), np.array([1, 0, 0]))
    score = score_check(check, predicted)
    assert score.accuracy == pytest.approx(2 / 3)
    assert score.consistency == pytest.approx(1 / 3)
    assert score.accuracy_where_original_right == pytest.approx(1 / 2)  # a (right, stays right), b (right, broken)
    assert score.agreement_with_teacher is None


def test_predict_is_called_once_on_unique_texts_and_the_order_is_kept():
    calls = []

    def predict(texts):
        calls.append(list(texts))
        return np.array([int(t.endswith("-")) for t in texts])

    slices = CheckSet("slice", "slice", "", ["a", "b-"], np.array([0, 1]))
    scores = score_model([flip_set(), slices], predict)
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(calls[0])) and len(calls[0]) == 8
    assert scores[0].accuracy == pytest.approx(2 / 4)  # edited texts all predicted 1
    assert scores[1].accuracy == pytest.approx(1.0)
    got = predict_checks([slices], predict)[0]
    assert got.edited.tolist() == [0, 1] and got.original is None


def test_a_predict_function_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="label ids"):
        predict_checks([flip_set()], lambda texts: np.zeros((len(texts), 2)))


# ---------------------------------------------------------------------------------------------------
# When the checks apply


def test_which_label_is_positive():
    assert robustness.positive_label(["0", "1"]) == 1
    assert robustness.positive_label(["positive", "negative"]) == 0
    assert robustness.positive_label(["neg", "pos"]) == 1
    assert robustness.positive_label(["ham", "spam"]) is None
    assert robustness.positive_label(["ham", "spam"], "ham") == 0
    with pytest.raises(ValueError, match="not one of the labels"):
        robustness.positive_label(["ham", "spam"], "eggs")


def test_auto_skips_with_a_note_and_on_fails_where_the_checks_cannot_run():
    assert applies("auto", ["neg", "pos"]) == (1, None)
    index, why = applies("auto", ["a", "b", "c"])
    assert index is None and "binary sentiment" in why and "3 labels" in why
    index, why = applies("auto", ["ham", "spam"])
    assert index is None and "report.positive_label" in why
    assert applies("off", ["neg", "pos"])[0] is None
    with pytest.raises(ValueError, match="report.robustness: on, but .*3 labels"):
        applies("on", ["a", "b", "c"])
    assert applies("on", ["ham", "spam"], "spam") == (1, None)


def test_yaml_on_and_off_are_read_as_the_settings(tmp_path):
    path = tmp_path / "config.yaml"
    for raw, expected in (("on", "on"), ("off", "off"), ("auto", "auto")):
        path.write_text(f"report:\n  robustness: {raw}\n", encoding="utf-8")
        assert load_config(path).report.robustness == expected
    with pytest.raises(ConfigError, match="report.robustness must be one of"):
        load_config(None, ["report.robustness=sometimes"])


# ---------------------------------------------------------------------------------------------------
# Domain checks (report.domain_checks)


def test_polarity_rows_keep_rows_of_one_polarity_once():
    texts = ["glad", "sad", "mixed", "neutral", "glad", "torn", "torn", "", None, "unlabelled"]
    sets = [["joy"], ["anger", "sadness"], ["joy", "anger"], ["neutral"], ["love"], ["joy"], ["fear"], ["joy"],
            ["joy"], []]  # fmt: skip
    rows = polarity_rows(texts, sets, ["joy", "love"], ["anger", "sadness", "fear"])
    assert rows == [("glad", True), ("sad", False)]  # "torn" has both polarities; "glad" once


def test_a_domain_check_maps_polarity_to_label_ids_and_caps_the_rows():
    rows = [(f"text {i}", i % 2 == 0) for i in range(10)]
    check = domain_check("domain: x", "d", rows, 0, np.random.default_rng(1), 4)
    assert check.kind == "domain" and len(check) == 4 and check.originals is None
    for text, expected in zip(check.texts, check.expected, strict=True):
        assert expected == (0 if int(text.split()[1]) % 2 == 0 else 1)  # positive is label 0 here
    again = domain_check("domain: x", "d", rows, 0, np.random.default_rng(1), 4)
    assert again.texts == check.texts


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_read_domain_check_from_a_directory_split_with_label_lists_leaving_out_seen_texts(tmp_path, caplog):
    write_rows(tmp_path / "train.jsonl", [{"text": "never read", "labels": ["joy"]}])
    test_rows = [
        {"text": "so happy", "labels": ["joy", "love"]},
        {"text": "so angry", "labels": ["anger"]},
        {"text": "hmm", "labels": ["neutral"]},
        {"text": "seen in training", "labels": ["joy"]},
    ]
    write_rows(tmp_path / "test.jsonl", test_rows)
    entry = DomainCheck(path=str(tmp_path), positive=["joy", "love"], negative=["anger", "grief"],
                        label_column="labels", name="comments")  # fmt: skip
    seen = set(text_keys(["seen  in training"]))  # the same text up to whitespace
    with caplog.at_level("WARNING"):
        check = read_domain_check(entry, 1, np.random.default_rng(0), seen, "report.domain_checks[0]")
    assert check.name == "domain: comments" and sorted(check.texts) == ["so angry", "so happy"]
    assert dict(zip(check.texts, check.expected.tolist(), strict=True)) == {"so happy": 1, "so angry": 0}
    assert "1 of 3 texts are also training" in caplog.text and "['grief'] never occur" in caplog.text


def test_read_domain_check_errors_name_the_entry_columns_and_labels(tmp_path):
    path = write_rows(tmp_path / "tweets.jsonl", [{"text": "so happy", "label": "joy"}])
    where = "report.domain_checks[1]"
    with pytest.raises(DataError, match=r"report.domain_checks\[1\].*no column\(s\) \['labels'\]; columns"):
        read_domain_check(DomainCheck(path=str(path), positive=["joy"], negative=["anger"], label_column="labels"),
                          1, np.random.default_rng(0), set(), where)  # fmt: skip
    with pytest.raises(DataError, match=r"labels \['anger'\] never occur .*its labels: \['joy'\]"):
        read_domain_check(DomainCheck(path=str(path), positive=["joy"], negative=["anger"]),
                          1, np.random.default_rng(0), set(), where)  # fmt: skip
    with pytest.raises(DataError, match="a directory without a test file"):
        read_domain_check(DomainCheck(path=str(tmp_path), positive=["joy"], negative=["anger"]),
                          1, np.random.default_rng(0), set(), where)  # fmt: skip


def test_domain_check_config_errors_name_the_entry_and_the_valid_keys():
    entry = "{path: x.jsonl, positive: [joy], negative: [anger]"
    assert load_config(None, [f"report.domain_checks=[{entry}}}]"]).report.domain_check_entries()[0].name == "x"
    with pytest.raises(ConfigError, match=r"report.domain_checks\[0\].colum'\]; valid keys here: \['path'"):
        load_config(None, [f"report.domain_checks=[{entry}, colum: t}}]"])
    with pytest.raises(ConfigError, match=r"report.domain_checks\[0\]: labels \['joy'\] are both"):
        load_config(None, ["report.domain_checks=[{path: x.jsonl, positive: [joy], negative: [joy]}]"])
    with pytest.raises(ConfigError, match="positive and negative"):
        load_config(None, ["report.domain_checks=[{path: x.jsonl, positive: [joy]}]"])
    with pytest.raises(ConfigError, match="names must be unique"):
        load_config(None, [f"report.domain_checks=[{entry}}}, {entry}}}]"])


def test_a_hub_domain_check_reads_the_named_split_and_maps_class_label_ids_to_names(monkeypatch):
    import datasets

    names = datasets.Sequence(datasets.ClassLabel(names=["anger", "joy", "neutral"]))
    features = datasets.Features({"text": datasets.Value("string"), "labels": names})
    loaded = []

    def fake_load_dataset(name, split):
        loaded.append((name, split))
        return datasets.Dataset.from_dict({"text": ["yay", "grr", "meh"], "labels": [[1], [0], [2]]}, features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    entry = DomainCheck(path="someone/comments", positive=["joy"], negative=["anger"], label_column="labels")
    check = read_domain_check(entry, 1, np.random.default_rng(0), set(), "report.domain_checks[0]")
    assert loaded == [("someone/comments", "test")]
    assert dict(zip(check.texts, check.expected.tolist(), strict=True)) == {"yay": 1, "grr": 0}
