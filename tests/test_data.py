"""Data loading, validation, stratified splitting and fingerprints, on toy files and (when present) real IMDB."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textdistill.config import DataConfig
from textdistill.data import (
    DataError,
    duplicate_report,
    encode_labels,
    fingerprint,
    label_balance,
    load_dataset,
    save_label_mapping,
    stratified_sample,
    stratified_split,
    text_keys,
)

IMDB = Path(__file__).resolve().parents[2] / "shared/data/imdb"
FORMATS = ("parquet", "csv", "jsonl")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def toy_frame(n_per_label: int, labels=(0, 1), prefix: str = "r") -> pd.DataFrame:
    rows = [
        {"text": f"{prefix} review {i} about label {label}", "label": label, "id": f"{prefix}{label}-{i}"}
        for label in labels
        for i in range(n_per_label)
    ]
    return pd.DataFrame(rows)


def write_toy(directory: Path, fmt: str = "parquet", train=None, test=None, unsup=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_table(toy_frame(10) if train is None else train, directory / f"train.{fmt}")
    write_table(toy_frame(3, prefix="t") if test is None else test, directory / f"test.{fmt}")
    if unsup is not None:
        write_table(unsup, directory / f"unsup.{fmt}")
    return directory


def config_for(directory: Path, **overrides) -> DataConfig:
    return DataConfig(path=str(directory), **overrides)


# ---------------------------------------------------------------------------------------------------
# Loading and labels


@pytest.mark.parametrize("fmt", FORMATS)
def test_int_labels_in_every_format(tmp_path, fmt):
    dataset = load_dataset(config_for(write_toy(tmp_path, fmt)))
    assert dataset.label_names == ["0", "1"]
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (16, 4, 6)
    assert dataset.unlabelled is None
    for split in (dataset.train, dataset.validation, dataset.test):  # the toy text says its own label
        assert all(f"label {label}" in text for text, label in zip(split.texts, split.labels, strict=True))
        assert split.labels.dtype == np.int64
    assert sorted(dataset.test.ids) == sorted(f"t{label}-{i}" for label in (0, 1) for i in range(3))


@pytest.mark.parametrize("fmt", FORMATS)
def test_string_labels_mapped_to_ids(tmp_path, fmt):
    train = toy_frame(10, labels=("pos", "neg"))
    test = toy_frame(2, labels=("neg", "pos"), prefix="t")
    dataset = load_dataset(config_for(write_toy(tmp_path, fmt, train, test)))
    assert dataset.label_names == ["neg", "pos"]
    assert dataset.label2id == {"neg": 0, "pos": 1}
    for split in (dataset.train, dataset.validation, dataset.test):
        assert all(f"label {dataset.label_names[y]}" in t for t, y in zip(split.texts, split.labels, strict=True))
    path = tmp_path / "label_mapping.json"
    save_label_mapping(dataset, path)
    assert json.loads(path.read_text()) == {"id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}}


def test_numeric_labels_sort_as_numbers_and_match_test(tmp_path):
    train = toy_frame(5, labels=(2, 10, 1))
    test = toy_frame(1, labels=(10, 1, 2), prefix="t")
    dataset = load_dataset(config_for(write_toy(tmp_path, "csv", train, test)))
    assert dataset.label_names == ["1", "2", "10"]
    assert dict(zip(dataset.test.ids, dataset.test.labels.tolist(), strict=True)) == {"t10-0": 2, "t1-0": 0, "t2-0": 1}


def test_jsonl_keeps_string_ids_and_numeric_looking_texts(tmp_path):
    train = pd.DataFrame(
        {"text": [str(i) for i in range(10)], "label": [0, 1] * 5, "id": [f"{i:03d}" for i in range(10)]}
    )
    dataset = load_dataset(config_for(write_toy(tmp_path, "jsonl", train=train)))
    assert sorted(dataset.train.ids + dataset.validation.ids) == [f"{i:03d}" for i in range(10)]
    assert sorted(dataset.train.texts + dataset.validation.texts) == [str(i) for i in range(10)]


def test_row_numbers_when_ids_are_absent_or_repeat(tmp_path):
    train = toy_frame(10).drop(columns="id")
    test = toy_frame(3, prefix="t").assign(id=1)  # repeated ids (as IMDB's per-class ids) are not usable
    dataset = load_dataset(config_for(write_toy(tmp_path, "parquet", train, test)))
    assert sorted(dataset.train.ids + dataset.validation.ids) == sorted(f"train:{i}" for i in range(20))
    assert dataset.test.ids == [f"test:{i}" for i in range(6)]


def test_unlabelled_split(tmp_path):
    unsup = pd.DataFrame({"text": [f"unlabelled {i}" for i in range(8)], "id": range(8)})
    directory = write_toy(tmp_path, "parquet", unsup=unsup)
    dataset = load_dataset(config_for(directory, max_unlabelled=5))
    assert len(dataset.unlabelled) == 5 and (dataset.unlabelled.labels == -1).all()
    assert set(dataset.unlabelled.texts) <= set(unsup.text)
    assert label_balance(dataset.unlabelled, dataset.label_names) == {"0": 0, "1": 0}
    assert load_dataset(config_for(directory, use_unlabelled=False)).unlabelled is None
    assert len(load_dataset(config_for(directory)).unlabelled) == 8


def test_missing_column_names_existing_columns(tmp_path):
    directory = write_toy(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(config_for(directory, text_column="review"))
    message = str(info.value)
    assert "review" in message and "['text', 'label', 'id']" in message
    with pytest.raises(DataError, match=r"missing column\(s\) \['sentiment'\]"):
        load_dataset(config_for(directory, label_column="sentiment"))


# ---------------------------------------------------------------------------------------------------
# Bad rows


BAD_TEXTS = {"empty": "", "blank": "  \n ", "null": None}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(BAD_TEXTS))
def test_bad_texts_rejected_by_default_and_dropped_on_request(tmp_path, fmt, kind):
    train = toy_frame(10)
    train.loc[[3, 12], "text"] = BAD_TEXTS[kind]
    directory = write_toy(tmp_path, fmt, train=train)
    with pytest.raises(DataError, match=r"train: 2 row\(s\).*\[3, 12\].*bad_rows=drop"):
        load_dataset(config_for(directory))
    dataset = load_dataset(config_for(directory, bad_rows="drop"))
    assert dataset.dropped_rows == {"train": 2, "test": 0}
    assert len(dataset.train) + len(dataset.validation) == 18
    assert all(text.strip() for text in dataset.train.texts + dataset.validation.texts)


def test_non_string_texts_rejected(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(10)] + [{"text": 42, "label": 0}]
    (directory / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    write_table(toy_frame(2), directory / "test.jsonl")
    with pytest.raises(DataError, match=r"train: 1 row\(s\).*non-text.*\[10\]"):
        load_dataset(config_for(directory))
    assert load_dataset(config_for(directory, bad_rows="drop")).dropped_rows["train"] == 1


def test_null_label_rejected_or_dropped(tmp_path):
    train = toy_frame(10).astype({"label": "float64"})
    train.loc[5, "label"] = np.nan
    directory = write_toy(tmp_path, "csv", train=train)
    with pytest.raises(DataError, match="null label"):
        load_dataset(config_for(directory))
    dataset = load_dataset(config_for(directory, bad_rows="drop"))
    assert dataset.label_names == ["0", "1"]  # 0.0/1.0 read back from CSV still match the int test labels
    assert len(dataset.test) == 6


def test_all_rows_bad_is_an_error(tmp_path):
    test = toy_frame(2, prefix="t").assign(text="")
    with pytest.raises(DataError, match="test: no rows left"):
        load_dataset(config_for(write_toy(tmp_path, test=test), bad_rows="drop"))


# ---------------------------------------------------------------------------------------------------
# Labels outside the mapping


def test_test_label_never_seen_in_training(tmp_path):
    test = toy_frame(2, labels=(0, 1, 2), prefix="t")
    with pytest.raises(DataError, match=r"test: label\(s\) \['2'\] never seen.*\['0', '1'\]"):
        load_dataset(config_for(write_toy(tmp_path, test=test)))


def test_string_label_never_seen_in_training(tmp_path):
    train = toy_frame(5, labels=("neg", "pos"))
    test = toy_frame(1, labels=("neg", "neutral", "pos"), prefix="t")
    with pytest.raises(DataError, match="neutral"):
        load_dataset(config_for(write_toy(tmp_path, "csv", train, test)))


def test_labels_outside_class_names():
    names = ["neg", "pos"]
    assert encode_labels(pd.Series([1, 0, 1]), names, "test", names).tolist() == [1, 0, 1]
    with pytest.raises(DataError, match=r"test: label\(s\) \['5'\]"):
        encode_labels(pd.Series([0, 5]), names, "test", names)


def test_one_label_only_is_an_error(tmp_path):
    with pytest.raises(DataError, match="only one label"):
        load_dataset(config_for(write_toy(tmp_path, train=toy_frame(10, labels=(1,)))))


# ---------------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("train.parquet", np.random.default_rng(0).bytes(256)),
        ("train.parquet", b"text,label\nhello,0\nworld,1\n"),
        ("train.jsonl", b"not json at all\n"),
    ],
)
def test_file_that_is_not_what_its_extension_says(tmp_path, name, content):
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / name).write_bytes(content)
    write_table(toy_frame(2), directory / "test.parquet")
    kind = "parquet" if name.endswith("parquet") else "json"
    with pytest.raises(DataError, match=rf"{name}: could not be read as {kind}"):
        load_dataset(config_for(directory))


def _json_rows(n: int) -> list[dict]:
    return [{"text": f"review {i}", "label": i % 2, "id": f"{i:03d}"} for i in range(n)]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_is_read_as_rows(tmp_path, indent):
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "train.json").write_text(json.dumps(_json_rows(10), indent=indent))
    write_table(toy_frame(2), directory / "test.parquet")
    dataset = load_dataset(config_for(directory))
    assert sorted(dataset.train.ids + dataset.validation.ids) == [f"{i:03d}" for i in range(10)]
    assert sorted(dataset.train.texts + dataset.validation.texts) == sorted(f"review {i}" for i in range(10))


def test_json_array_of_non_objects_says_what_is_expected(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "train.json").write_text(json.dumps(["review one", "review two"]))
    write_table(toy_frame(2), directory / "test.parquet")
    with pytest.raises(
        DataError, match=r"train\.json: holds a JSON array of \['str'\].*expected JSON Lines: one object"
    ):
        load_dataset(config_for(directory))


def test_unreadable_json_lines_says_what_is_expected(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "train.jsonl").write_text('{"text": "a",\n "label": 0}\n')  # one object over two lines
    write_table(toy_frame(2), directory / "test.parquet")
    with pytest.raises(DataError, match=r"could not be read as json.*expected JSON Lines: one object per line"):
        load_dataset(config_for(directory))


@pytest.mark.parametrize("fmt", FORMATS)
def test_numeric_text_column_is_named_with_the_columns_that_exist(tmp_path, fmt):
    train = pd.DataFrame({"review": [str(1000 + i) for i in range(10)], "label": [0, 1] * 5, "title": ["t"] * 10})
    directory = write_toy(tmp_path, fmt, train=train.astype({"review": "int64"}))
    with pytest.raises(DataError) as info:
        load_dataset(config_for(directory, text_column="review"))
    message = str(info.value)
    assert "train: text column 'review' is numeric (int64)" in message
    assert "['review', 'label', 'title']" in message and "text-like: ['title']" in message


def test_csv_of_digit_only_texts_explains_why_they_are_numbers(tmp_path):
    train = pd.DataFrame({"text": [f"{i}{i}" for i in range(10)], "label": [0, 1] * 5})
    with pytest.raises(DataError, match=r"'text' is numeric.*CSV column of digits only is read as numbers"):
        load_dataset(config_for(write_toy(tmp_path, "csv", train=train)))


def test_csv_with_only_empty_texts_is_a_bad_rows_error_not_a_numeric_one(tmp_path):
    test = toy_frame(2, prefix="t").assign(text="")  # read back from CSV as an all-NaN float column
    with pytest.raises(DataError, match=r"test: 4 row\(s\) with an empty, null or non-text"):
        load_dataset(config_for(write_toy(tmp_path, "csv", test=test)))


def test_empty_split(tmp_path):
    test = toy_frame(1).iloc[:0]
    with pytest.raises(DataError, match="test: the split is empty"):
        load_dataset(config_for(write_toy(tmp_path, test=test)))


def test_empty_csv_file(tmp_path):
    directory = write_toy(tmp_path, "csv")
    (directory / "test.csv").write_text("")
    with pytest.raises(DataError, match="test.csv: could not be read as csv"):
        load_dataset(config_for(directory))


def test_missing_test_file(tmp_path):
    directory = write_toy(tmp_path)
    (directory / "test.parquet").unlink()
    with pytest.raises(DataError, match=r"no test file.*test\.parquet.*test\.csv.*test\.jsonl"):
        load_dataset(config_for(directory))


def test_two_files_for_one_split(tmp_path):
    directory = write_toy(tmp_path)
    write_table(toy_frame(3), directory / "test.csv")
    with pytest.raises(DataError, match="several files for split 'test'"):
        load_dataset(config_for(directory))


def test_path_that_is_a_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\nhi,0\n")
    with pytest.raises(DataError, match="is not a directory"):
        load_dataset(config_for(path))


def test_local_path_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(config_for(tmp_path / "absent"))


def fake_datasets(monkeypatch, load):
    """Stand in for the ``datasets`` package (slow to import, and the hub is unreachable here)."""
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load))


def test_unreachable_hub_suggests_a_local_directory(monkeypatch):
    def unreachable(name):
        raise ConnectionError(f"cannot reach the hub for {name}")

    fake_datasets(monkeypatch, unreachable)
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(path="someone/some-dataset"))
    message = str(info.value)
    assert "someone/some-dataset" in message and "ConnectionError" in message
    assert "local directory" in message and "data.path" in message


class FakeHubSplit:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.features = {"label": types.SimpleNamespace(names=["neg", "pos"])}

    def to_pandas(self) -> pd.DataFrame:
        return self.frame


def test_hub_dataset_uses_class_label_names(monkeypatch):
    unsup = pd.DataFrame({"text": ["u1", "u2"], "label": [-1, -1]})
    splits = {"train": toy_frame(5), "test": toy_frame(2, prefix="t"), "unsupervised": unsup}
    fake_datasets(monkeypatch, lambda name: {key: FakeHubSplit(frame) for key, frame in splits.items()})
    dataset = load_dataset(DataConfig(path="stanfordnlp/imdb"))
    assert dataset.label_names == ["neg", "pos"]
    assert (len(dataset.train), len(dataset.validation), len(dataset.test), len(dataset.unlabelled)) == (8, 2, 4, 2)


def test_hub_dataset_without_a_test_split(monkeypatch):
    fake_datasets(monkeypatch, lambda name: {"train": FakeHubSplit(toy_frame(5))})
    with pytest.raises(DataError, match=r"no \['test'\] split"):
        load_dataset(DataConfig(path="someone/train-only"))


# ---------------------------------------------------------------------------------------------------
# Splitting and fingerprints


def test_stratified_split_sizes_and_balance():
    labels = np.array([0] * 30 + [1] * 10 + [2] * 5)
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[held]).tolist() == [6, 2, 1]
    assert np.bincount(labels[kept]).tolist() == [24, 8, 4]
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(held) > 0)  # sorted, so row order is stable


def test_stratified_split_is_seeded():
    labels = np.repeat([0, 1], 50)
    first = stratified_split(labels, 0.2, seed=7)
    again = stratified_split(labels, 0.2, seed=7)
    other = stratified_split(labels, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


def test_stratified_sample():
    labels = np.array([0] * 30 + [1] * 10)
    rows = stratified_sample(labels, 20, seed=0)
    assert np.bincount(labels[rows]).tolist() == [15, 5]
    assert np.array_equal(stratified_sample(labels, 100, seed=0), np.arange(40))


def test_load_dataset_split_is_seeded_and_balanced(tmp_path):
    directory = write_toy(tmp_path, train=toy_frame(25))
    first = load_dataset(config_for(directory, seed=1))
    assert label_balance(first.validation, first.label_names) == {"0": 5, "1": 5}
    assert label_balance(first.train, first.label_names) == {"0": 20, "1": 20}
    assert not set(first.train.ids) & set(first.validation.ids)
    again = load_dataset(config_for(directory, seed=1))
    assert again.validation.ids == first.validation.ids and again.fingerprints() == first.fingerprints()
    other = load_dataset(config_for(directory, seed=2))
    assert other.validation.ids != first.validation.ids
    assert other.fingerprints()["validation"] != first.fingerprints()["validation"]
    assert other.fingerprints()["test"] == first.fingerprints()["test"]


def test_max_train_and_max_test_subsample(tmp_path):
    directory = write_toy(tmp_path, train=toy_frame(25), test=toy_frame(10, prefix="t"))
    dataset = load_dataset(config_for(directory, max_train=20, max_test=8))
    assert label_balance(dataset.train, dataset.label_names) == {"0": 8, "1": 8}
    assert label_balance(dataset.validation, dataset.label_names) == {"0": 2, "1": 2}
    assert label_balance(dataset.test, dataset.label_names) == {"0": 4, "1": 4}


def test_split_too_small_for_a_validation_set(tmp_path):
    directory = write_toy(tmp_path, train=toy_frame(2))
    with pytest.raises(DataError, match="0 validation rows"):
        load_dataset(config_for(directory))


def test_fingerprint_changes_with_one_text(tmp_path):
    texts, labels, ids = ["a good film", "a bad film"], np.array([1, 0]), ["x", "y"]
    base = fingerprint(texts, labels, ids)
    assert fingerprint(list(texts), labels.copy(), list(ids)) == base
    assert fingerprint(["a good film", "a bad film."], labels, ids) != base
    assert fingerprint(texts, np.array([0, 0]), ids) != base
    assert fingerprint(texts, labels, ["x", "z"]) != base
    assert fingerprint(texts[::-1], labels[::-1], ids[::-1]) != base

    train = toy_frame(10)
    directory = write_toy(tmp_path / "a", train=train)
    before = load_dataset(config_for(directory)).fingerprints()
    train.loc[train.id == "r1-9", "text"] += "!"
    write_table(train, directory / "train.parquet")
    after = load_dataset(config_for(directory)).fingerprints()
    assert after["test"] == before["test"]
    assert (after["train"] != before["train"]) or (after["validation"] != before["validation"])
    assert len(set(after.values())) == 3


# ---------------------------------------------------------------------------------------------------
# Duplicates and leaks between splits


def test_duplicate_report_counts_normalised_repeats_and_overlap():
    texts = {
        "train": ["a b", "c", "c", "x"],
        "validation": ["a  b", "d", "X"],  # whitespace is normalised; case is kept ("X" is not "x")
        "test": ["c", "<br />c ", "e", "d"],  # "<br />" reads as a space, like the tokenizer path
        "unlabelled": ["e", "f", "a b", "x"],  # "x" is a train text: not a leak for the transfer set
    }
    report = duplicate_report({name: text_keys(split) for name, split in texts.items()})
    assert report.within_split == {"train": 1, "validation": 0, "test": 1, "unlabelled": 0}
    assert report.overlap == {
        "validation": {"train": 1},
        "test": {"train": 2, "validation": 1},
        "unlabelled": {"validation": 1, "test": 1},
    }
    assert report.dropped == {"validation": 0, "test": 0, "unlabelled": 0}


def leaky_toy(directory: Path) -> tuple[Path, pd.DataFrame]:
    """Toy data whose test repeats two train texts (one re-spaced) and one of its own rows, and whose
    unlabelled split repeats two test texts and one train text."""
    train = toy_frame(10)
    test = toy_frame(3, prefix="t")
    copies = pd.DataFrame(
        {"text": ["  " + train.text[0].replace(" ", "   "), train.text[15], test.text[0]], "label": [0, 1, 0]}
    )
    test = pd.concat([test, copies.assign(id=["c0", "c1", "c2"])], ignore_index=True)
    unsup = pd.DataFrame({"text": [test.text[1], test.text[4], train.text[3], "new 1", "new 2"], "id": range(5)})
    return write_toy(directory, train=train, test=test, unsup=unsup), train


def test_repeats_and_leaks_are_counted_and_warned_by_default(tmp_path, caplog):
    directory, train = leaky_toy(tmp_path)
    with caplog.at_level("WARNING", logger="textdistill.data"):
        dataset = load_dataset(config_for(directory))
    report = dataset.duplicates
    assert report.within_split == {"train": 0, "validation": 0, "test": 1, "unlabelled": 0}
    in_validation = sum(train.text[i] in dataset.validation.texts for i in (0, 15))  # where the copied rows landed
    assert report.overlap["test"] == {"train": 2 - in_validation, "validation": in_validation}
    assert report.overlap["validation"] == {"train": 0}
    assert report.overlap["unlabelled"] == {"validation": 0, "test": 2}
    assert report.dropped == {"validation": 0, "test": 0, "unlabelled": 0}
    assert (len(dataset.test), len(dataset.unlabelled)) == (9, 5)  # reported, not dropped, by default
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "'test': 1" in messages and "'unlabelled in test': 2" in messages and "data.drop_overlap=true" in messages


def test_drop_overlap_drops_leaked_rows_only(tmp_path, caplog):
    directory, _ = leaky_toy(tmp_path)
    kept = load_dataset(config_for(directory))
    with caplog.at_level("WARNING", logger="textdistill.data"):
        dropped = load_dataset(config_for(directory, drop_overlap=True))
    assert dropped.duplicates.dropped == {"validation": 0, "test": 2, "unlabelled": 2}
    assert dropped.duplicates.overlap == kept.duplicates.overlap  # counted before dropping
    assert (len(dropped.test), len(dropped.unlabelled)) == (7, 3)
    assert sorted(dropped.test.ids) == sorted([f"t{label}-{i}" for label in (0, 1) for i in range(3)] + ["c2"])
    assert sorted(dropped.unlabelled.texts) == sorted(kept.unlabelled.texts[2:])  # the train text stays
    assert dropped.fingerprints()["train"] == kept.fingerprints()["train"]
    assert dropped.fingerprints()["test"] != kept.fingerprints()["test"]
    assert any("dropped" in r.getMessage() and "'test': 2" in r.getMessage() for r in caplog.records)


def test_drop_unlabelled_overlap_drops_only_transfer_rows_and_warns_about_the_rest(tmp_path, caplog):
    directory, _ = leaky_toy(tmp_path)
    kept = load_dataset(config_for(directory))
    caplog.clear()
    with caplog.at_level("WARNING", logger="textdistill.data"):
        dropped = load_dataset(config_for(directory, drop_unlabelled_overlap=True))
    assert dropped.duplicates.dropped == {"validation": 0, "test": 0, "unlabelled": 2}
    assert sorted(dropped.unlabelled.texts) == sorted(kept.unlabelled.texts[2:])
    assert dropped.fingerprints() | {"unlabelled": ""} == kept.fingerprints() | {"unlabelled": ""}  # the rest as is
    leaks = next(r.getMessage() for r in caplog.records if "also occurs in another split" in r.getMessage())
    assert "'test in train': 2" in leaks and "unlabelled in" not in leaks  # the kept leaks only


def test_drop_overlap_that_empties_a_split_is_an_error(tmp_path):
    train = toy_frame(10)
    directory = write_toy(tmp_path, train=train, test=train.iloc[[0, 11]])
    with pytest.raises(DataError, match="test: every row repeats a text"):
        load_dataset(config_for(directory, drop_overlap=True))


# ---------------------------------------------------------------------------------------------------
# Real IMDB (../shared/data/imdb)


@pytest.fixture(scope="module")
def imdb():
    if not (IMDB / "train.parquet").is_file():
        pytest.skip(f"IMDB parquet files not found at {IMDB}")
    return load_dataset(DataConfig(path=str(IMDB)))


@pytest.mark.slow
def test_imdb_sizes_balance_and_fingerprints(imdb):
    sizes = {name: len(split) for name, split in imdb.splits().items()}
    assert sizes == {"train": 20_000, "validation": 5_000, "test": 25_000, "unlabelled": 50_000}
    assert imdb.label_names == ["0", "1"]
    assert label_balance(imdb.train, imdb.label_names) == {"0": 10_000, "1": 10_000}
    assert label_balance(imdb.validation, imdb.label_names) == {"0": 2_500, "1": 2_500}
    assert label_balance(imdb.test, imdb.label_names) == {"0": 12_500, "1": 12_500}
    assert imdb.dropped_rows == {"train": 0, "test": 0, "unlabelled": 0}
    # The split must be identical on every machine for the default seed: these were recorded once.
    assert imdb.fingerprints() == {
        "train": "aa541de3fc33706a",
        "validation": "de30728d2f2d9454",
        "test": "4a8ed8f29aff678a",
        "unlabelled": "afc3426ceccd6cf3",
    }
    assert sorted(imdb.validation.ids)[:5] == [f"train:{i}" for i in (10000, 10010, 10013, 10020, 10035)]
    assert imdb.validation.ids[:5] == ["train:4", "train:11", "train:16", "train:28", "train:30"]
    assert not set(imdb.train.ids) & set(imdb.validation.ids)
    assert imdb.train.texts[0].startswith("Story of a man who has unnatural feelings for a pig.")


@pytest.mark.slow
def test_imdb_repeats_and_leaks(imdb):
    """IMDB keeps its duplicate reviews (its MANIFEST: 123 distinct texts in both train and test); they are
    reported but kept by default, so the reference fingerprints above stay valid."""
    report = imdb.duplicates
    assert report.within_split == {"train": 62, "validation": 5, "test": 201, "unlabelled": 495}
    assert report.overlap == {
        "validation": {"train": 33},
        "test": {"train": 108, "validation": 15},
        "unlabelled": {"validation": 72, "test": 270},
    }
    dropped = load_dataset(DataConfig(path=str(IMDB), drop_overlap=True))
    assert dropped.duplicates.dropped == {"validation": 33, "test": 123, "unlabelled": 331}
    assert {name: len(split) for name, split in dropped.splits().items()} == {
        "train": 20_000,
        "validation": 4_967,
        "test": 24_877,
        "unlabelled": 49_669,
    }
    assert dropped.fingerprints() == {
        "train": "aa541de3fc33706a",
        "validation": "0c035c9746394b3d",
        "test": "be285ac61e6a8abe",
        "unlabelled": "55a54d6dfaeabbd8",
    }


# ---------------------------------------------------------------------------------------------------
# Shipped validation splits, several classes, label sets (multi-label)

SHARED = Path(__file__).resolve().parents[2] / "shared/data"


def test_shipped_validation_split_is_used_unless_configured_off(tmp_path):
    abc = ("a", "b", "c")
    directory = write_toy(tmp_path / "d", train=toy_frame(10, labels=abc), test=toy_frame(2, labels=abc, prefix="t"))
    write_table(toy_frame(4, labels=("a", "b", "c"), prefix="v"), directory / "validation.parquet")
    shipped = load_dataset(config_for(directory))
    assert len(shipped.train) == 30 and len(shipped.validation) == 12
    assert all(i.startswith("v") for i in shipped.validation.ids)
    assert shipped.label_names == ["a", "b", "c"] and shipped.task == "single_label"
    carved = load_dataset(config_for(directory, use_validation_split=False, validation_fraction=0.2))
    assert len(carved.train) == 24 and len(carved.validation) == 6  # 2 of each class's 10 held out
    assert np.bincount(carved.validation.labels).tolist() == [2, 2, 2]


def multi_label_frame(rows: list[tuple[str, list[str]]], prefix: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"text": f"{prefix} {text} {i}", "labels": labels, "id": f"{prefix}{i}"}
            for i, (text, labels) in enumerate(rows)
        ]
    )


def test_list_valued_labels_are_detected_as_multi_label_and_multi_hot(tmp_path):
    train = multi_label_frame([("x", ["joy", "love"]), ("y", ["anger"]), ("z", ["joy"])] * 4, "tr")
    test = multi_label_frame([("w", ["love"]), ("v", ["anger", "joy"])], "te")
    directory = write_toy(tmp_path / "d", train=train, test=test)
    dataset = load_dataset(config_for(directory, label_column="labels", validation_fraction=0.25))
    assert dataset.task == "multi_label" and dataset.multi_label
    assert dataset.label_names == ["anger", "joy", "love"]
    assert dataset.test.labels.tolist() == [[0, 0, 1], [1, 1, 0]]
    assert len(dataset.train) + len(dataset.validation) == 12
    assert label_balance(dataset.test, dataset.label_names) == {"anger": 1, "joy": 1, "love": 1}
    assert json.loads(json.dumps(dataset.label_mapping()))["task"] == "multi_label"


def test_delimited_label_strings_unknown_labels_and_empty_rows(tmp_path):
    train = pd.DataFrame({"text": [f"t{i}" for i in range(8)], "label": ["a,b", "b", "a", "c, a"] * 2})
    test = pd.DataFrame({"text": ["u", "v"], "label": ["b,c", "a"]})
    directory = write_toy(tmp_path / "d", train=train, test=test)
    config = config_for(directory, label_delimiter=",", validation_fraction=0.25)
    dataset = load_dataset(config)
    assert dataset.task == "multi_label" and dataset.label_names == ["a", "b", "c"]
    assert dataset.test.labels.tolist() == [[0, 1, 1], [1, 0, 0]]
    write_table(pd.DataFrame({"text": ["u"], "label": ["a,zzz"]}), directory / "test.parquet")
    with pytest.raises(DataError, match=r"test: label\(s\) \['zzz'\] never seen"):
        load_dataset(config)
    write_table(pd.DataFrame({"text": ["u", "v"], "label": ["a", ""]}), directory / "test.parquet")
    with pytest.raises(DataError, match="1 row.* with no label.*allow_empty_labels"):
        load_dataset(config)
    allowed = load_dataset(
        config_for(directory, label_delimiter=",", validation_fraction=0.25, allow_empty_labels=True)
    )
    assert allowed.test.labels.tolist() == [[1, 0, 0], [0, 0, 0]]


def test_iterative_stratification_keeps_every_label_in_proportion():
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 12)) < np.linspace(0.01, 0.4, 12)).astype(np.int64)
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(2000))
    assert len(held) == pytest.approx(400, abs=2)
    share = labels[held].sum(0) / labels.sum(0)
    assert np.abs(share - 0.2).max() < 0.03  # a random split of the rarest label (~20 rows) is off by ~0.09
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[1], held)
    sample = stratified_sample(labels, 500, seed=1)
    assert len(sample) == pytest.approx(500, abs=2) and (labels[sample].sum(0) > 0).all()


@pytest.mark.skipif(not (SHARED / "go_emotions").is_dir(), reason="../shared/data/go_emotions is not here")
def test_go_emotions_loads_as_28_label_multi_label():
    dataset = load_dataset(config_for(SHARED / "go_emotions", label_column="labels", max_train=2000, max_test=300))
    assert dataset.task == "multi_label" and len(dataset.label_names) == 28
    assert len(dataset.validation) == 5426 and dataset.train.labels.shape == (len(dataset.train), 28)
    assert dataset.train.labels.sum(1).min() >= 1
