"""Transfer texts: other sources' texts and Tang et al. 2019 augmentation join the unlabelled split."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from textdistill import builtin
from textdistill.config import ConfigError, TransferConfig, TransferSource, load_config
from textdistill.data import DataError, Dataset, Split
from textdistill.pipeline import prepare_data
from textdistill.transfer import (
    augment_texts,
    negation_edits,
    negation_sites,
    read_source_texts,
    sentence_spans,
    toggle_negation,
    with_transfer_texts,
)


def test_augmentation_masks_words_and_samples_ngrams_reproducibly():
    texts = [" ".join(f"w{i}" for i in range(40))] * 50
    settings = TransferConfig(augment_copies=2, mask_probability=0.2, ngram_probability=0.3, max_ngram=4)
    copies = augment_texts(texts, settings, "[MASK]")
    assert len(copies) == 100 and copies == augment_texts(texts, settings, "[MASK]")  # seeded
    words = [c.split() for c in copies]
    sampled = [w for w in words if len(w) < 40]
    assert sampled and all(len(w) <= 4 for w in sampled)  # an n-gram of at most max_ngram words
    assert 0.2 < len(sampled) / len(words) < 0.4  # about ngram_probability of the copies
    full = [w for w in words if len(w) == 40]
    masked = np.mean([token == "[MASK]" for w in full for token in w])
    assert 0.15 < masked < 0.25  # about mask_probability of the words
    kept = {t for w in full for t in w} - {"[MASK]"}
    assert kept <= set(texts[0].split())  # nothing but masking: no new words


def test_pos_guided_replacement_swaps_words_within_their_part_of_speech_class():
    from lemminflect import getAllLemmas

    texts = ["The movie was good, the acting terrible.", "A brilliant film; quickly paced xqzw 1999!"] * 20
    settings = TransferConfig(augment_copies=3, mask_probability=0.0, pos_probability=1.0, ngram_probability=0.0)
    copies = augment_texts(texts, settings, "[MASK]")
    assert copies == augment_texts(texts, settings, "[MASK]")  # seeded
    corpus = {w.strip(",.;!").lower() for t in texts for w in t.split()}
    changed = 0
    for text, copy in zip(texts * 3, copies, strict=True):
        for word, new in zip(text.split(), copy.split(), strict=True):
            core, new_core = word.strip(",.;!"), new.strip(",.;!")
            assert word.replace(core, "") == new.replace(new_core, "")  # punctuation around the word kept
            if not getAllLemmas(core.lower()):  # unknown to the lexicon ("The", "xqzw", "1999"): never replaced
                assert new == word
                continue
            assert new_core.lower() in corpus  # drawn from the augmented texts' own words
            assert frozenset(getAllLemmas(new_core.lower())) == frozenset(getAllLemmas(core.lower()))
            assert new_core[0].isupper() == core[0].isupper()
            changed += new_core.lower() != core.lower()
    assert changed > 0  # classes with several members ("good"/"brilliant": adjective or noun) do swap


def test_mask_and_pos_probabilities_cannot_exceed_one_together():
    with pytest.raises(ConfigError, match="mask_probability \\+ transfer.pos_probability"):
        TransferConfig(mask_probability=0.6, pos_probability=0.5)


def test_no_augmentation_changes_nothing():
    settings = TransferConfig(augment_copies=1, mask_probability=0.0, ngram_probability=0.0)
    assert augment_texts(["a b c"], settings, "[MASK]") == ["a b c"]


def drawn_with_sources(draw, texts, settings, count):
    """What ``draw`` (``sentence_spans`` or ``negation_edits``) makes from ``texts`` (ids ``r<i>``) as (text, id,
    source text) rows, after checking that it is seeded and gives ``count`` distinct texts."""
    ids = [f"r{i}" for i in range(len(texts))]
    drawn, drawn_ids = draw(texts, ids, settings)
    assert (drawn, drawn_ids) == draw(texts, ids, settings)  # seeded
    assert len(drawn) == len(set(drawn)) == len(drawn_ids) == count
    return [(text, i, texts[ids.index(i.split(":")[2])]) for text, i in zip(drawn, drawn_ids, strict=True)]


def test_sentence_spans_are_distinct_runs_of_sentences_never_a_whole_text(caplog):
    texts = [f"Review {r} opens. Review {r} goes on! Does review {r} end? Review {r} ends." for r in range(30)]
    texts.append("A review of one sentence only.")
    rows = drawn_with_sources(sentence_spans, texts, TransferConfig(sentence_spans=100, max_span_sentences=2), 100)
    for span, _, source in rows:
        assert span in source and span != source
        assert 1 <= sum(span.count(end) for end in ".!?") <= 2  # one or two whole sentences
    assert not any(i.endswith(":r30") for _, i, _ in rows)  # a one-sentence text has no span shorter than itself
    with caplog.at_level(logging.WARNING):
        few, _ = sentence_spans(texts[:2], ["r0", "r1"], TransferConfig(sentence_spans=100, max_span_sentences=2))
    assert len(few) == 14  # 2 texts x (4 single sentences + 3 pairs): all there are
    assert "sentences: only 14 distinct texts (asked for 100)" in caplog.text


def test_sentence_spans_join_the_unlabelled_split_after_the_in_domain_pool():
    def split(name, texts):
        return Split(name, texts, np.zeros(len(texts), dtype=np.int64), [f"{name}{i}" for i in range(len(texts))])

    reviews = ["Good start. Bad middle. Fine end.", "Loved it. Then hated it."]
    dataset = Dataset(
        split("train", reviews[:1]), split("validation", ["Loved it."]), split("test", ["x"]), ["neg", "pos"],
        unlabelled=split("unlabelled", reviews[1:]),
    )  # fmt: skip
    unlabelled = with_transfer_texts(dataset, TransferConfig(sentence_spans=50), "[MASK]").unlabelled
    assert unlabelled is not None and unlabelled.ids[0] == "unlabelled0"
    spans = dict(zip(unlabelled.ids[1:], unlabelled.texts[1:], strict=True))
    assert sorted(spans.values()) == [
        "Bad middle.",
        "Bad middle. Fine end.",
        "Fine end.",
        "Good start.",
        "Good start. Bad middle.",
        "Then hated it.",
    ]  # "Loved it." is a validation text
    assert all(i.startswith("sentences:") and i.endswith((":train0", ":unlabelled0")) for i in spans)
    assert (unlabelled.labels == -1).all()


@pytest.mark.parametrize(
    ("sentence", "edited"),
    [
        ("The plot was good.", "The plot was not good."),
        ("The actors are really convincing here.", "The actors are not really convincing here."),
        ("It isn't worth a rental.", "It is worth a rental."),
        ("I did not like the ending.", "I did like the ending."),
        ("You can't miss it.", "You can miss it."),
        ("Cannot recommend it.", "Can recommend it."),
        ("It won't disappoint.", "It will disappoint."),
    ],
)
def test_a_negation_goes_in_after_a_copula_or_comes_out_after_an_auxiliary(sentence, edited):
    assert toggle_negation(sentence, np.random.default_rng(0)) == edited


def test_sentences_without_a_negation_site_stay_as_they_are():
    rng = np.random.default_rng(0)
    for sentence in ("The plot was a mess.", "Nothing happens.", "I loved it."):
        assert negation_sites(sentence) == []
        assert toggle_negation(sentence, rng) == sentence
    assert toggle_negation("It is not good.", rng) == "It is good."  # taken out, never "is not not good"


@pytest.mark.parametrize(
    ("sentence", "edited"),
    [
        ("I loved this movie.", "I did not love this movie."),
        ("We really enjoyed the cast.", "We did not really enjoy the cast."),
        ("He thinks it works.", "He does not think it works."),
        ("They recommend it.", "They do not recommend it."),
        ("She saw it twice.", "She did not see it twice."),
    ],
)
def test_the_verb_form_negates_a_finite_verb_after_a_subject_pronoun_with_do_support(sentence, edited):
    assert negation_sites(sentence) == []  # not among the default forms
    assert toggle_negation(sentence, np.random.default_rng(0), ["verb"]) == edited


def test_the_verb_form_leaves_auxiliaries_and_unknown_words_alone():
    for sentence in ("I have seen it.", "We will watch it.", "They were there.", "I zorbled it."):
        assert negation_sites(sentence, ["verb"]) == []


def test_an_unknown_negation_form_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown \['adverb'\]; valid: \['copula', 'auxiliary', 'verb'\]"):
        TransferConfig(negation_forms=["copula", "adverb"])


def test_negation_edits_are_distinct_spans_with_exactly_one_negation_toggled(caplog):
    texts = [f"Scene {r} opens. The acting was good. Scene {r} ends well. I didn't care." for r in range(20)]
    texts.append("A review without a site.")
    rows = drawn_with_sources(negation_edits, texts, TransferConfig(negation_edits=60, max_span_sentences=2), 60)
    for edit, edit_id, source in rows:
        assert edit_id.startswith("negation:") and edit not in source
        assert ("was not good" in edit) != ("I did care." in edit)  # one site toggled, the other left as it was
    assert not any(i.endswith(":r20") for _, i, _ in rows)
    with caplog.at_level(logging.WARNING):
        few, _ = negation_edits(texts[:1], ["r0"], TransferConfig(negation_edits=100, max_span_sentences=1))
    assert sorted(few) == ["I did care.", "The acting was not good."]
    assert "negation: only 2 distinct texts (asked for 100)" in caplog.text


def test_negation_edits_join_the_unlabelled_split_beside_the_sentence_spans():
    def split(name, texts):
        return Split(name, texts, np.zeros(len(texts), dtype=np.int64), [f"{name}{i}" for i in range(len(texts))])

    dataset = Dataset(
        split("train", ["The cast was great. The score was loud."]), split("validation", ["x"]), split("test", ["y"]),
        ["neg", "pos"],
    )  # fmt: skip
    settings = TransferConfig(sentence_spans=10, negation_edits=10, max_span_sentences=1)
    unlabelled = with_transfer_texts(dataset, settings, "[MASK]").unlabelled
    assert unlabelled is not None
    by_kind = {}
    for text, text_id in zip(unlabelled.texts, unlabelled.ids, strict=True):
        by_kind.setdefault(text_id.split(":")[0], []).append(text)
    assert sorted(by_kind["sentences"]) == ["The cast was great.", "The score was loud."]
    assert sorted(by_kind["negation"]) == ["The cast was not great.", "The score was not loud."]


def test_negation_edits_cannot_be_negative():
    with pytest.raises(ConfigError, match="negation_edits must be at least 0"):
        TransferConfig(negation_edits=-1)


def test_sources_read_files_and_directories(tmp_path):
    frame = pd.DataFrame({"sentence": ["one text", "", "two text", "three text"], "label": [0, 1, 0, 1]})
    (tmp_path / "other").mkdir()
    frame.to_parquet(tmp_path / "other" / "train.parquet")
    texts = read_source_texts(TransferSource(path=str(tmp_path / "other"), column="sentence"), seed=0)
    assert texts == ["one text", "two text", "three text"]  # empty texts skipped
    two = read_source_texts(
        TransferSource(path=str(tmp_path / "other/train.parquet"), column="sentence", max_rows=2), 0
    )
    assert len(two) == 2 and set(two) <= set(texts)
    with pytest.raises(DataError, match="no column 'text'; columns: \\['sentence', 'label'\\]"):
        read_source_texts(TransferSource(path=str(tmp_path / "other")), seed=0)
    with pytest.raises(DataError, match="does not exist"):
        read_source_texts(TransferSource(path=str(tmp_path / "missing.csv")), seed=0)


def test_a_hub_source_reads_its_train_split_and_failures_name_the_offline_way(monkeypatch):
    import datasets

    loaded = []

    def fake_load_dataset(name, split):
        loaded.append((name, split))
        if name == "nobody/nothing":
            raise ConnectionError("offline")
        return datasets.Dataset.from_dict({"text": ["a hub text", "another"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert read_source_texts(TransferSource(path="someone/texts"), seed=0) == ["a hub text", "another"]
    assert loaded == [("someone/texts", "train")]
    with pytest.raises(DataError, match="its train split from the Hugging Face hub.*local file or directory"):
        read_source_texts(TransferSource(path="nobody/nothing"), seed=0)


def test_a_wrong_source_key_names_the_valid_ones():
    with pytest.raises(ConfigError, match="valid keys here: \\['path', 'column', 'max_rows', 'name'\\]"):
        load_config(None, ["transfer.sources=[{path: x.csv, colum: text}]"])
    with pytest.raises(ConfigError, match="names must be unique"):
        load_config(None, ["transfer.sources=[{path: a/x.csv}, {path: b/x.csv}]"])


def test_transfer_texts_join_the_unlabelled_split_without_evaluation_texts(tmp_path, caplog):
    data = builtin.write_toy_dataset(tmp_path / "toy", sizes=(60, 20, 20))
    test_text = pd.read_parquet(data / "test.parquet")["text"].iloc[0]
    pd.DataFrame({"text": ["a tweet about nothing", test_text]}).to_csv(tmp_path / "tweets.csv", index=False)
    overrides = [
        f"data.path={data}",
        "teacher.model=builtin:tiny-bert",
        f"cache_dir={tmp_path / 'cache'}",
        f"transfer.sources=[{{path: {tmp_path / 'tweets.csv'}}}]",
        "transfer.augment_copies=2",
    ]
    plain = prepare_data(load_config(None, [f"data.path={data}", f"cache_dir={tmp_path / 'cache'}"] + overrides[1:2]))
    with caplog.at_level(logging.WARNING):
        prepared = prepare_data(load_config(None, overrides))
    unlabelled = prepared.dataset.unlabelled
    pool = len(plain.dataset.unlabelled) if plain.dataset.unlabelled else 0
    assert len(unlabelled) == pool + 1 + 2 * len(prepared.dataset.train)  # the test text is dropped
    assert "tweets:0" in unlabelled.ids and "tweets:1" not in unlabelled.ids
    assert "dropped 1 text(s) equal to validation/test texts" in caplog.text
    first_train_id = prepared.dataset.train.ids[0]
    assert {f"augment:0:{first_train_id}", f"augment:1:{first_train_id}"} <= set(unlabelled.ids)
    assert len(prepared.encoded["unlabelled"]) == len(unlabelled)  # tokenised like every split
    assert (unlabelled.labels == -1).all()
