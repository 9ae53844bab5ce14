"""Window logits aggregated per text (the chunked teacher's logit pass), and the teacher's representations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_bert_classifier

from textdistill.inference import RepresentationTap, aggregate_windows, predict_logits


def test_mean_aggregate_averages_each_texts_windows():
    window_logits = np.array([[1.0, -1.0], [3.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    got = aggregate_windows(window_logits, np.array([0, 0, 1]), 2, "mean")
    np.testing.assert_allclose(got, [[2.0, 0.0], [0.5, 0.5]])


def test_mean_probs_is_the_log_of_the_mean_softmax():
    window_logits = np.array([[4.0, 0.0], [0.0, 1.0]])
    got = aggregate_windows(window_logits, np.array([0, 0]), 1, "mean-probs")
    probs = np.exp(window_logits) / np.exp(window_logits).sum(1, keepdims=True)
    np.testing.assert_allclose(np.exp(got[0]), probs.mean(0), rtol=1e-6)
    # a confident window outweighs a hesitant one less than the mean of logits lets it
    assert got[0].argmax() == aggregate_windows(window_logits, np.array([0, 0]), 1, "mean")[0].argmax() == 0


def test_a_text_without_windows_or_an_unknown_aggregate_is_an_error():
    with pytest.raises(ValueError, match="1 text"):
        aggregate_windows(np.zeros((1, 2)), np.array([0]), 2)
    with pytest.raises(ValueError, match="valid: mean, mean-probs"):
        aggregate_windows(np.zeros((1, 2)), np.array([0]), 1, "max")


def test_the_representation_tap_gives_what_the_output_layer_reads():
    model = tiny_bert_classifier(50, num_labels=3)
    rng = np.random.default_rng(0)
    windows = [np.concatenate([[2], rng.integers(5, 50, n), [3]]) for n in (12, 4, 20, 7)]
    tap = RepresentationTap(model, num_labels=3)
    representations = predict_logits(tap, windows, pad_id=0)
    logits = predict_logits(model, windows, pad_id=0)
    assert representations.shape == (4, tap.hidden_size) == (4, 16)
    with torch.no_grad():
        through_head = model.classifier(torch.from_numpy(representations)).numpy()
    np.testing.assert_allclose(through_head, logits, atol=1e-5)
    # the head is linear: a text's mean window representation gives its mean window logits
    owners = np.array([0, 0, 1, 1])
    with torch.no_grad():
        pooled = torch.from_numpy(aggregate_windows(representations, owners, 2))
        np.testing.assert_allclose(model.classifier(pooled).numpy(), aggregate_windows(logits, owners, 2), atol=1e-5)


def test_a_model_without_a_matching_output_layer_is_an_error():
    with pytest.raises(ValueError, match="no nn.Linear output layer with 5 outputs"):
        RepresentationTap(tiny_bert_classifier(50, num_labels=3), num_labels=5)
