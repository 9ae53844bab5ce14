"""Window logits aggregated per text (the chunked teacher's logit pass)."""

from __future__ import annotations

import numpy as np
import pytest

from textdistill.inference import aggregate_windows


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
