"""Tokenisation: normalisation, truncation strategies, padding, length buckets, the encode cache, length reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textdistill import tokens
from textdistill.cache import ArtifactCache
from textdistill.tokens import (
    EncodedTexts,
    SpecialIds,
    chunk_windows,
    encode_cached,
    encode_texts,
    length_bucketed_batches,
    length_report,
    model_inputs,
    normalise_text,
    pad_batch,
    tokenizer_fingerprint,
    truncate,
    window_starts,
)

SPECIAL = SpecialIds(cls=2, sep=3, pad=0)


def test_normalise_text_turns_line_breaks_into_spaces():
    assert normalise_text("Great film.<br /><br />Really<br/>good<BR>fun <br  />end") == (
        "Great film. Really good fun end"
    )
    assert normalise_text("  spaced \n\t out  ") == "spaced out"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("head", [0, 1, 2, 3, 4, 5, 6, 7]),
        ("tail", [12, 13, 14, 15, 16, 17, 18, 19]),
        ("head+tail", [0, 1, 14, 15, 16, 17, 18, 19]),  # budget 8: round(8 * 0.25) = 2 from the start
    ],
)
def test_truncate_strategies(strategy, expected):
    ids = np.arange(20, dtype=np.int32)
    assert truncate(ids, 10, strategy, head_fraction=0.25).tolist() == expected


def test_truncate_edge_cases():
    ids = np.arange(20, dtype=np.int32)
    assert truncate(ids[:8], 10, "head+tail").tolist() == list(range(8))  # fits: unchanged
    assert truncate(ids, 10, "head+tail", head_fraction=0.0).tolist() == list(range(12, 20))
    assert truncate(ids, 10, "head+tail", head_fraction=1.0).tolist() == list(range(8))
    assert truncate(ids, 14, "head+tail", head_fraction=0.5).tolist() == [0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 18, 19]


def test_model_inputs_wrap_and_respect_max_length():
    encoded = EncodedTexts.from_sequences([list(range(10, 30)), [5], []])
    inputs = model_inputs(encoded, 8, "head+tail", SPECIAL, head_fraction=0.25)
    assert [x.tolist() for x in inputs] == [[2, 10, 11, 26, 27, 28, 29, 3], [2, 5, 3], [2, 3]]
    assert all(x.dtype == np.int64 for x in inputs)
    for max_length in (8, 9, 20, 22, 50):
        lengths = [len(x) for x in model_inputs(encoded, max_length, "head", SPECIAL)]
        assert lengths == [min(22, max_length), 3, 2]


def test_pad_batch_shapes_and_masks():
    sequences = [np.array([2, 7, 3]), np.array([2, 3]), np.array([2, 5, 6, 7, 3])]
    input_ids, attention_mask = pad_batch(sequences, pad_id=0)
    assert input_ids.shape == attention_mask.shape == (3, 5)
    assert input_ids.dtype == attention_mask.dtype == torch.long
    assert input_ids.tolist() == [[2, 7, 3, 0, 0], [2, 3, 0, 0, 0], [2, 5, 6, 7, 3]]
    assert attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert pad_batch([np.array([2, 3])], pad_id=9)[0].tolist() == [[2, 3]]


LENGTHS = np.random.default_rng(0).integers(1, 200, size=103)


def test_bucketed_batches_cover_every_index_once():
    batches = length_bucketed_batches(LENGTHS, batch_size=4, shuffle=True, seed=1, chunk_batches=5)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(LENGTHS)))
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert sum(len(batch) < 4 for batch in batches) == 1  # 103 = 5 chunks of 20 + 3: only the last is short


def test_bucketed_batches_are_seeded():
    def run(seed):
        return [b.tolist() for b in length_bucketed_batches(LENGTHS, 4, shuffle=True, seed=seed, chunk_batches=5)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_bucketed_batches_sorted_by_length_within_chunks():
    batch_size, chunk_batches = 4, 5
    batches = length_bucketed_batches(LENGTHS, batch_size, shuffle=True, seed=3, chunk_batches=chunk_batches)
    assert all(np.all(np.diff(LENGTHS[batch]) >= 0) for batch in batches)
    # Rebuild the chunks the docstring describes: the same seeded permutation, cut every batch_size * chunk_batches.
    order = np.random.default_rng(3).permutation(len(LENGTHS))
    chunk = batch_size * chunk_batches
    by_chunk = {int(i): start // chunk for start in range(0, len(order), chunk) for i in order[start : start + chunk]}
    for batch in batches:
        assert len({by_chunk[int(i)] for i in batch}) == 1  # a batch never mixes chunks
    # Sorting within chunks makes batches much tighter than random batches of the same size.
    spread = np.mean([np.ptp(LENGTHS[batch]) for batch in batches])
    random_spread = np.mean([np.ptp(LENGTHS[order[i : i + batch_size]]) for i in range(0, len(order), batch_size)])
    assert spread < random_spread / 2


def test_unshuffled_batches_sort_by_length():
    batches = length_bucketed_batches(LENGTHS, batch_size=10, shuffle=False)
    order = np.concatenate(batches)
    assert np.array_equal(order, np.argsort(LENGTHS, kind="stable"))
    assert np.all(np.diff(LENGTHS[order]) >= 0)
    assert [len(b) for b in batches] == [10] * 10 + [3]


def test_encoded_texts_round_trip(tmp_path):
    encoded = EncodedTexts.from_sequences([[5, 6, 7], [], [9], [10, 11]])
    assert len(encoded) == 4
    assert encoded.lengths.tolist() == [3, 0, 1, 2]
    assert encoded.flat.dtype == np.int32 and encoded.offsets.dtype == np.int64
    path = tmp_path / "ids.npz"
    encoded.save(path)
    loaded = EncodedTexts.load(path)
    assert np.array_equal(loaded.flat, encoded.flat) and np.array_equal(loaded.offsets, encoded.offsets)
    assert [loaded.sequence(i).tolist() for i in range(4)] == [[5, 6, 7], [], [9], [10, 11]]
    assert [p.name for p in tmp_path.iterdir()] == ["ids.npz"]  # the temporary file was renamed away


def test_encode_texts_without_special_tokens_or_truncation(tiny_tokenizer):
    texts = ["The movie was great<br />fun", "boring " * 300]
    encoded = encode_texts(texts, tiny_tokenizer, batch_size=1)
    vocab = tiny_tokenizer.get_vocab()
    assert encoded.sequence(0).tolist() == [vocab[w] for w in ("the", "movie", "was", "great", "fun")]
    assert encoded.lengths.tolist() == [5, 300]  # nothing cut, no [CLS]/[SEP]


def test_encode_cached_hits_then_misses(tmp_path, tiny_tokenizer, monkeypatch):
    cache = ArtifactCache(tmp_path)
    texts = ["a good film", "a bad film"]
    first = encode_cached(texts, "fp-1", tiny_tokenizer, cache)

    def fail(*args, **kwargs):
        raise AssertionError("encode_texts called although the ids are cached")

    monkeypatch.setattr(tokens, "encode_texts", fail)
    second = encode_cached(texts, "fp-1", tiny_tokenizer, cache)
    assert np.array_equal(first.flat, second.flat) and np.array_equal(first.offsets, second.offsets)
    with pytest.raises(AssertionError, match="encode_texts called"):
        encode_cached(texts, "fp-2", tiny_tokenizer, cache)  # another data fingerprint: a miss


def test_tokenizer_fingerprint_is_stable(tiny_tokenizer):
    assert tokenizer_fingerprint(tiny_tokenizer) == tokenizer_fingerprint(tiny_tokenizer)
    assert len(tokenizer_fingerprint(tiny_tokenizer)) == 16


def test_length_report():
    encoded = EncodedTexts.from_sequences([[1] * 3, [1] * 8, [1] * 18])  # 5, 10 and 20 tokens with [CLS]/[SEP]
    report = length_report(encoded, {"teacher": 10, "student": 20})
    assert report == pytest.approx(
        {
            "p50": 10.0,
            "p90": 18.0,  # linear interpolation between 10 and 20
            "p99": 19.8,
            "mean": 35 / 3,
            "truncated_at_teacher_10": 1 / 3,  # only the 20-token text exceeds 10
            "truncated_at_student_20": 0.0,  # exactly at the limit is not truncated
        }
    )


@pytest.mark.parametrize(
    ("length", "budget", "stride", "expected"),
    [(5, 8, 4, [0]), (8, 8, 4, [0]), (9, 8, 4, [0, 1]), (20, 8, 4, [0, 4, 8, 12]), (20, 8, 8, [0, 8, 12])],
)
def test_window_starts_cover_every_token_without_a_short_tail(length, budget, stride, expected):
    starts = window_starts(length, budget, stride)
    assert starts == expected
    covered = {t for s in starts for t in range(s, min(s + budget, length))}
    assert covered == set(range(length))  # every token read at least once
    assert all(s + budget <= length for s in starts) or starts == [0]  # only a short text has a short window


def test_chunk_windows_wrap_each_window_and_name_its_text():
    encoded = EncodedTexts.from_sequences([list(range(10, 30)), [7, 8]])  # 20 tokens, then 2
    windows, owners = chunk_windows(encoded, max_length=10, stride=6, special=SpecialIds(cls=1, sep=2, pad=0))
    assert owners.tolist() == [0, 0, 0, 1]  # starts 0, 6, 12 over 20 tokens with 8 per window
    assert all(len(w) <= 10 and w[0] == 1 and w[-1] == 2 for w in windows)
    assert windows[2][1:-1].tolist() == list(range(22, 30))  # the last window ends at the text's end
    assert windows[3].tolist() == [1, 7, 8, 2]
