"""Bring-your-own logits (teachers.logits) and the teacher ensemble (teachers.ensemble): golden values on tiny
hand-made arrays, and every bad-input case an error naming what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from textdistill.teachers.ensemble import (
    calibrate,
    calibration_error,
    choose_combiner,
    choose_weights,
    combine,
    fit_stacker,
    fit_temperature,
    nll,
    simplex_grid,
    teacher_report,
)
from textdistill.teachers.logits import read_logits_dir, sha256_of, write_logits_dir

IDS = {"train": ["a", "b", "c"], "validation": ["v1", "v2"]}
LOGITS = {
    "train": np.array([[1.0, -1.0], [0.5, 2.0], [-3.0, 3.0]], dtype=np.float32),
    "validation": np.array([[0.25, 0.0], [-1.5, 1.5]], dtype=np.float32),
}


# ---------------------------------------------------------------------------------------------------
# teachers.logits


def test_write_then_read_aligns_to_the_data_ids_whatever_the_file_order(tmp_path):
    reversed_ids = {split: ids[::-1] for split, ids in IDS.items()}
    reversed_logits = {split: values[::-1] for split, values in LOGITS.items()}
    write_logits_dir(tmp_path, reversed_logits, reversed_ids, {"teacher": "toy"})
    read = read_logits_dir(tmp_path, IDS, num_labels=2)
    for split, values in LOGITS.items():
        assert read[split].dtype == np.float32
        np.testing.assert_allclose(read[split], values, rtol=1e-3)  # float16 on disk: ~3 significant digits


def test_manifest_holds_counts_hashes_and_extra_fields(tmp_path):
    write_logits_dir(tmp_path, LOGITS, IDS, {"teacher": "toy"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["teacher"] == "toy" and manifest["num_labels"] == 2 and manifest["dtype"] == "float16"
    for split, ids in IDS.items():
        entry = manifest["splits"][split]
        assert entry["examples"] == len(ids)
        assert entry["sha256"] == sha256_of(tmp_path / entry["file"])
    with np.load(tmp_path / "train.npz") as stored:
        assert stored["logits"].dtype == np.float16


def test_a_file_changed_after_writing_fails_its_manifest_hash(tmp_path):
    write_logits_dir(tmp_path, LOGITS, IDS)
    np.savez(tmp_path / "train.npz", logits=LOGITS["train"] + 1, ids=np.array(IDS["train"]))
    with pytest.raises(ValueError, match="sha256"):
        read_logits_dir(tmp_path, IDS, num_labels=2)


def test_csv_label_columns_are_put_in_label_order_when_names_are_given(tmp_path):
    frame = pd.DataFrame({"id": ["v2", "v1"], "pos": [1.5, 0.0], "neg": [-1.5, 0.25]})
    frame.to_csv(tmp_path / "validation.csv", index=False)
    named = read_logits_dir(tmp_path, {"validation": IDS["validation"]}, 2, label_names=["neg", "pos"])
    np.testing.assert_array_equal(named["validation"], LOGITS["validation"])
    in_file_order = read_logits_dir(tmp_path, {"validation": IDS["validation"]}, 2)
    np.testing.assert_array_equal(in_file_order["validation"], LOGITS["validation"][:, ::-1])


def test_csv_numeric_ids_match_string_ids(tmp_path):
    pd.DataFrame({"id": [10, 2], "0": [1.0, 2.0], "1": [3.0, 4.0]}).to_csv(tmp_path / "test.csv", index=False)
    read = read_logits_dir(tmp_path, {"test": ["2", "10"]}, 2)
    np.testing.assert_array_equal(read["test"], [[2.0, 4.0], [1.0, 3.0]])


def test_parquet_is_read_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"id": ["b", "a", "c"], "0": [0.5, 1.0, -3.0], "1": [2.0, -1.0, 3.0]}).to_parquet(
        tmp_path / "train.parquet"
    )
    read = read_logits_dir(tmp_path, {"train": IDS["train"]}, 2)
    np.testing.assert_array_equal(read["train"], LOGITS["train"])


def _write_npz(directory, ids, logits, split="train"):
    np.savez(directory / f"{split}.npz", logits=np.asarray(logits), ids=np.array(ids))


@pytest.mark.parametrize(
    ("file_ids", "logits", "message"),
    [
        (["a", "b"], [[0, 1], [1, 0]], r"no logits for ids \['c'\] \(1 in all\)"),
        (["a", "b", "c", "zz"], [[0, 1]] * 4, r"ids \['zz'\] \(1 in all\) are not in the split"),
        (["a", "b", "b"], [[0, 1]] * 3, r"duplicate ids \['b'\]"),
        (["a", "b", "c"], [[0, 1, 2]] * 3, r"shape \(3, 3\) for 3 ids; expected \(3, 2\)"),
        (["a", "b", "c"], [[0, 1], [np.nan, 0], [np.inf, 1]], r"non-finite logits .* \['b', 'c'\]"),
    ],
)
def test_logits_that_do_not_match_the_data_are_errors_naming_the_ids(tmp_path, file_ids, logits, message):
    _write_npz(tmp_path, file_ids, logits)
    with pytest.raises(ValueError, match=message):
        read_logits_dir(tmp_path, {"train": IDS["train"]}, num_labels=2)


def test_many_missing_ids_are_listed_first_few_with_the_count(tmp_path):
    _write_npz(tmp_path, ["x"], [[0.0, 1.0]])
    expected = [f"id{i}" for i in range(20)]
    with pytest.raises(ValueError, match=r"\['id0', 'id1', 'id2', 'id3', 'id4'\] ... \(20 in all\)"):
        read_logits_dir(tmp_path, {"train": expected}, num_labels=2)


def test_a_missing_split_file_or_two_files_for_one_split_are_errors(tmp_path):
    _write_npz(tmp_path, IDS["train"], LOGITS["train"])
    with pytest.raises(ValueError, match="no logits for split 'validation'"):
        read_logits_dir(tmp_path, IDS, num_labels=2)
    pd.DataFrame({"id": IDS["train"], "0": [0.0] * 3, "1": [1.0] * 3}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match="several logit files for split 'train'"):
        read_logits_dir(tmp_path, {"train": IDS["train"]}, num_labels=2)


def test_csv_without_id_or_with_other_label_names_is_an_error(tmp_path):
    pd.DataFrame({"key": ["a"], "0": [0.0], "1": [1.0]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match="no 'id' column"):
        read_logits_dir(tmp_path, {"train": ["a"]}, 2)
    pd.DataFrame({"id": ["a"], "0": [0.0], "1": [1.0]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"label columns \['0', '1'\] are not the labels \['neg', 'pos'\]"):
        read_logits_dir(tmp_path, {"train": ["a"]}, 2, label_names=["neg", "pos"])


def test_write_refuses_values_float16_cannot_hold_and_mismatched_ids(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        write_logits_dir(tmp_path, {"train": np.array([[1e6, 0.0]])}, {"train": ["a"]})
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for 2 ids"):
        write_logits_dir(tmp_path, {"train": LOGITS["train"]}, {"train": ["a", "b"]})
    with pytest.raises(ValueError, match="duplicate ids"):
        write_logits_dir(tmp_path, {"validation": LOGITS["validation"]}, {"validation": ["v", "v"]})


# ---------------------------------------------------------------------------------------------------
# teachers.ensemble: calibration


def calibrated_source(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Binary logits [0, m] for m on a grid, 400 rows per m with round(400·sigmoid(m)) positives: softmax of the
    logits is the empirical frequency, so the NLL-optimal temperature of ``scale`` × logits is ``scale``."""
    logits, labels = [], []
    for m in np.linspace(-4, 4, 17):
        positives = round(400 / (1 + np.exp(-m)))
        logits += [[0.0, m]] * 400
        labels += [1] * positives + [0] * (400 - positives)
    return scale * np.array(logits), np.array(labels)


def test_fit_temperature_recovers_a_known_scale():
    for scale in (1.0, 3.0, 0.5):
        logits, labels = calibrated_source(scale)
        assert fit_temperature(logits, labels) == pytest.approx(scale, rel=0.05)


def test_nll_and_calibration_error_golden_values():
    assert nll(np.array([[0.0, 0.0], [0.0, np.log(3.0)]]), np.array([0, 1])) == pytest.approx(
        (np.log(2) + np.log(4 / 3)) / 2
    )
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    # bin of 0.9: accuracy 1/2 → gap 0.4; bin of 0.6: accuracy 1 → gap 0.4; each half the rows
    assert calibration_error(probabilities, np.array([0, 1, 1, 1])) == pytest.approx(0.4)
    assert calibration_error(np.array([[0.75, 0.25]] * 4), np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_bad_inputs_are_errors_naming_the_problem():
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        nll(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError, match=r"shape \(n, K\)"):
        fit_temperature(np.zeros(3), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(ValueError, match="pass softmax"):
        calibration_error(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"no temperature for teachers \['b'\]"):
        calibrate({"a": np.zeros((1, 2)), "b": np.zeros((1, 2))}, {"a": 1.0})
    with pytest.raises(ValueError, match="differ in shape"):
        choose_weights({"a": np.zeros((3, 2)), "b": np.zeros((2, 2))}, np.array([0, 1, 0]))


# ---------------------------------------------------------------------------------------------------
# teachers.ensemble: weights, stacking, combine


def noisy_pair(seed: int = 0, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A calibrated informative teacher, a useless random one (independent of the labels), and labels."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 2, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(np.int64)
    informative = np.stack([np.zeros(n), margin], axis=1)
    return informative, rng.normal(0, 1, (n, 2)), labels


def test_a_useless_random_teacher_gets_no_weight():
    informative, useless, labels = noisy_pair()
    weights = choose_weights({"informative": informative, "useless": useless}, labels)
    assert weights["useless"] <= 0.05 and weights["informative"] == pytest.approx(1 - weights["useless"])


def test_identical_teachers_tie_and_the_tie_goes_to_even_weights():
    informative, _, labels = noisy_pair()
    assert choose_weights({"a": informative, "b": informative.copy()}, labels) == {"a": 0.5, "b": 0.5}


def test_simplex_grid_covers_the_simplex():
    grid = simplex_grid(3, 0.25)
    assert len(grid) == 15 and np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    with pytest.raises(ValueError, match="step must divide 1"):
        simplex_grid(2, 0.3)


def test_combine_of_one_teacher_with_weight_one_is_its_log_softmax():
    informative, useless, _ = noisy_pair(n=10)
    combined = combine({"a": informative, "b": useless}, {"a": 1.0, "b": 0.0})
    assert combined.dtype == np.float32 and combined.shape == (10, 2)
    np.testing.assert_allclose(combined, log_softmax(informative, axis=1), rtol=1e-6, atol=1e-6)


def test_combine_is_the_log_of_the_weighted_mixture():
    informative, useless, _ = noisy_pair(n=10)
    combined = combine({"a": informative, "b": useless}, {"a": 0.3, "b": 0.7})
    mixture = 0.3 * softmax(informative, axis=1) + 0.7 * softmax(useless, axis=1)
    np.testing.assert_allclose(np.exp(combined), mixture, rtol=1e-5)


def test_combine_refuses_weights_off_the_simplex_or_for_other_teachers():
    informative, useless, _ = noisy_pair(n=4)
    teachers = {"a": informative, "b": useless}
    with pytest.raises(ValueError, match="sum to 1"):
        combine(teachers, {"a": 0.5, "b": 0.6})
    with pytest.raises(ValueError, match="weights are for"):
        combine(teachers, {"a": 1.0})


@pytest.mark.parametrize("num_labels", [2, 3])
def test_stacker_log_probabilities_match_sklearn(num_labels):
    rng = np.random.default_rng(1)
    teachers = {"a": rng.normal(size=(60, num_labels)), "b": rng.normal(size=(60, num_labels))}
    labels = np.arange(60) % num_labels
    stacker = fit_stacker(teachers, labels)
    features = np.concatenate([log_softmax(v, axis=1) for v in teachers.values()], axis=1)
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).predict_log_proba(features)
    np.testing.assert_allclose(stacker.log_probabilities(teachers), expected, atol=1e-5)


def test_stacking_wins_when_teachers_hold_independent_evidence():
    """Labels follow sigmoid(m1 + m2) with m1, m2 seen by different teachers: a mixture cannot add evidence,
    a logistic regression on log-probabilities can, so its held-out NLL is clearly lower."""
    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(0, 1.5, 3000), rng.normal(0, 1.5, 3000)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-(m1 + m2)))).astype(np.int64)
    teachers = {"a": np.stack([np.zeros(3000), m1], 1), "b": np.stack([np.zeros(3000), m2], 1)}
    choice = choose_combiner(teachers, labels, folds=3)
    assert choice.method == "stacking" and choice.stacking_nll < choice.weight_search_nll - 0.05
    assert len(choice.fold_weights) == 3
    np.testing.assert_allclose(choice.combine(teachers), choice.stacker.log_probabilities(teachers))


def test_weight_search_held_out_nll_is_no_better_than_in_sample():
    informative, useless, labels = noisy_pair()
    teachers = {"informative": informative, "useless": useless}
    choice = choose_combiner(teachers, labels, folds=4)
    in_sample = nll(combine(teachers, choice.weights).astype(np.float64), labels)
    assert choice.weight_search_nll >= in_sample - 1e-9
    assert choice.to_dict()["stacker"]["teachers"] == ["informative", "useless"]


# ---------------------------------------------------------------------------------------------------
# teachers.ensemble: report


def test_teacher_report_scores_each_model_and_pairwise_agreement():
    labels = np.array([0, 1, 1, 0])
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # all right
    b = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # half right
    report = teacher_report({"a": a, "b": b}, labels)
    assert report["models"]["a"]["accuracy"] == 1.0 and report["models"]["b"]["accuracy"] == 0.5
    assert report["models"]["a"]["macro_f1"] == 1.0 and report["models"]["b"]["examples"] == 4
    assert report["models"]["a"]["nll"] == pytest.approx(np.log1p(np.exp(-1.0)))
    assert report["agreement"] == {"a vs b": 0.5}
    assert teacher_report({"a": a, "b": b}, None) == {"agreement": {"a vs b": 0.5}}
