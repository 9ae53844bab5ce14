"""``textdistill search``: the config section, the Pareto front, a tiny search on the toy data, and budgets."""

import json
from pathlib import Path

import optuna
import pytest
from test_pipeline import TINY_DATA

from textdistill.cli import main
from textdistill.config import ConfigError, SearchConfig, load_config
from textdistill.search import (
    BudgetNotMet,
    Candidate,
    budget_violations,
    pareto_front,
    search_stage,
    suggest_candidate,
)
from textdistill.students.hub import Student

TINY_SEARCH = TINY_DATA | {
    "embeddings.vector_size": "16",
    "embeddings.epochs": "1",
    "embeddings.workers": "1",
    "distill.epochs": "2",
    "distill.batch_size": "16",
    "search.trials": "4",
    "search.families": "[cnn, ngram-bag, rnn-attention]",
    "search.embedding_dims": "[8, 16]",
    "search.num_filters": "[4, 8]",
    "search.hidden_sizes": "[4]",
    "search.bigram_buckets": "[0, 64]",
    "search.max_lengths": "[16, 32]",
    "search.vocabulary_min_counts": "[1, 2]",
    "search.screen_fraction": "0.5",
    "search.top_k": "2",
    "search.latency_runs": "3",
}


def tiny_config(root, **more):
    overrides = {**TINY_SEARCH, "out_dir": str(root / "run"), "cache_dir": str(root / "cache"), **more}
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


# ---------------------------------------------------------------------------------------------------
# Config


def test_search_section_defaults_and_overrides():
    config = load_config(None, ["search.max_latency_ms=0.9", "search.max_mb=2", "search.families=[cnn]"])
    assert config.search.max_latency_ms == 0.9
    assert config.search.max_mb == 2.0  # an int where a float is expected
    assert config.search.families == ["cnn"]
    assert load_config(None).search.max_latency_ms is None  # no budget by default


def test_search_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError, match=r"search\.budget.*valid keys here: \['trials', 'sampler'"):
        load_config(None, ["search.budget=1"])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("search.families=[lstm]", "search.families"),
        ("search.sampler=random", "search.sampler"),
        ("search.max_mb=0", "search.max_mb"),
        ("search.max_lengths=[4]", "search.max_lengths"),
        ("search.screen_fraction=1.5", "search.screen_fraction"),
        ("search.num_filters=[]", "search.num_filters"),
    ],
)
def test_search_bad_values_are_config_errors(assignment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [assignment])


# ---------------------------------------------------------------------------------------------------
# Pure pieces


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    points = [
        (0.90, 1.0, 100.0),  # 0: most accurate
        (0.85, 0.5, 100.0),  # 1: faster
        (0.85, 0.6, 100.0),  # 2: dominated by 1 (slower, same accuracy and size)
        (0.80, 2.0, 10.0),  # 3: smallest
        (0.80, 2.0, 20.0),  # 4: dominated by 3
        (0.90, 1.0, 100.0),  # 5: equal to 0: neither dominates the other
        (0.70, 3.0, 200.0),  # 6: dominated by everything
    ]
    assert pareto_front(points) == [0, 1, 3, 5]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0, 1.0)]) == [0]


def test_budget_violations_are_optuna_constraints():
    search = SearchConfig(max_latency_ms=1.0, max_mb=2.0)
    assert budget_violations(0.5, 1.0, search) == [-0.5, -1.0]  # <= 0: met
    assert budget_violations(1.5, 3.0, search) == [0.5, 1.0]
    assert budget_violations(99.0, 99.0, SearchConfig()) == [0.0, 0.0]  # no limits: always met


def test_suggested_candidates_follow_the_family():
    search = SearchConfig(families=["cnn", "rnn-attention", "ngram-bag"], embedding_dims=[8], max_lengths=[16])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {}
    for _ in range(30):
        trial = study.ask()
        candidate = suggest_candidate(trial, search)
        study.tell(trial, [0.0, 0.0])
        seen[candidate.family] = candidate
    assert set(seen) == {"cnn", "rnn-attention", "ngram-bag"}
    assert set(seen["cnn"].arch) == {"embedding_dim", "num_filters"}
    assert seen["rnn-attention"].arch["num_layers"] == 1
    assert "bigram_buckets" in seen["ngram-bag"].arch
    assert all(c.max_length == 16 and c.arch["embedding_dim"] == 8 for c in seen.values())


# ---------------------------------------------------------------------------------------------------
# A tiny search


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("search"), **{"search.max_mb": "0.02"})
    return config, search_stage(config)


def test_search_writes_the_front_the_plot_and_the_chosen_model(finished_search):
    config, result = finished_search
    out = Path(config.out_dir) / "search"
    stored = json.loads((out / "search.json").read_text())
    assert stored == json.loads(json.dumps(result))
    assert len(stored["trials"]) + len(stored["repeated_trials"]) == 4
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "pareto.md").read_text()
    assert table.count("| screen |") == len(stored["trials"])
    assert "**Chosen**" in table
    # every trial was screened cheaply: half the training rows, search.screen_epochs epochs
    full_rows = max(t["full"]["training"]["train_examples"] for t in stored["trials"] if "full" in t)
    for trial in stored["trials"]:
        assert trial["screen"]["training"]["epochs_run"] == 1
        assert trial["screen"]["training"]["train_examples"] == pytest.approx(full_rows / 2, abs=1)
    # at most top_k were trained fully, all from the screened front
    retrained = [t["trial"] for t in stored["trials"] if "full" in t]
    assert 1 <= len(retrained) <= 2 and set(retrained) <= set(stored["screen_front"])


def test_the_chosen_model_meets_the_budget_and_is_the_best_on_validation(finished_search):
    config, result = finished_search
    chosen = result["chosen"]
    assert chosen["bytes"] <= 0.02 * 1e6
    full = [t["full"] for t in result["trials"] if "full" in t and t["full"]["bytes"] <= 0.02 * 1e6]
    assert chosen["validation_accuracy"] == max(f["validation_accuracy"] for f in full)
    assert set(chosen["test"]) >= {"accuracy", "macro_f1", "agreement"}
    student = Student.from_pretrained(chosen["directory"])  # a saved deployable
    assert (student.model.embedding.weight.shape[0]) < len(student.tokenizer)  # vocabulary-pruned
    assert len(student.predict(["a great film", "a dull film"])) == 2
    assert (Path(chosen["directory"]) / chosen["model_file"]).stat().st_size == chosen["bytes"]


def test_an_interrupted_search_resumes_and_a_larger_one_screens_only_the_new_trials(tmp_path, monkeypatch):
    from textdistill import search

    screened: list[int] = []
    train = search.train_candidate

    def counting(context, candidate, directory, *, screen):
        if screen:
            screened.append(int(directory.name))
        return train(context, candidate, directory, screen=screen)

    monkeypatch.setattr(search, "train_candidate", counting)
    first = search_stage(tiny_config(tmp_path, **{"search.trials": "2", "search.top_k": "1"}))
    done = len(first["trials"])
    assert len(screened) == done  # repeated proposals are not trained again
    screened.clear()
    second = search_stage(tiny_config(tmp_path, **{"search.trials": "3", "search.top_k": "1"}))
    assert len(screened) <= 1 and all(number >= 2 for number in screened)  # only the third trial is new
    assert [t["trial"] for t in second["trials"]][:done] == [t["trial"] for t in first["trials"]]
    assert second["trials"][0]["screen"] == first["trials"][0]["screen"]  # read back from the study, not redone
    screened.clear()
    search_stage(tiny_config(tmp_path, **{"search.trials": "3", "search.top_k": "1", "search.num_filters": "[5]"}))
    assert len(screened) >= 1 and min(screened) == 0  # other settings: a new study from trial 0


def test_a_budget_nothing_meets_is_a_clear_error_with_the_files_written(tmp_path, caplog):
    config = tiny_config(tmp_path, **{"search.max_mb": "0.000001", "search.trials": "2"})
    with pytest.raises(BudgetNotMet, match=r"no candidate meets the budget \(latency <= none, size <= 1e-06 MB\)"):
        search_stage(config)
    out = tmp_path / "run" / "search"
    stored = json.loads((out / "search.json").read_text())
    assert stored["chosen"] is None and stored["screen_front"] == []
    assert not any("full" in trial for trial in stored["trials"])  # nothing over budget is trained fully
    assert "**No model chosen**" in (out / "pareto.md").read_text()
    assert (out / "pareto.png").is_file() and not (out / "chosen").exists()
    assert "no screened candidate meets the budget" in caplog.text


def test_cli_search_reports_a_budget_error_with_exit_code_2(tmp_path, capsys):
    overrides = {**TINY_SEARCH, "out_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    args = [f"--set={k}={v}" for k, v in overrides.items()]
    assert main(["search", *args, "--max-latency-ms", "0.000001", "--trials", "1"]) == 2
    stored = json.loads((tmp_path / "run" / "search" / "search.json").read_text())
    assert stored["budget"]["max_latency_ms"] == 0.000001 and len(stored["trials"]) == 1


def test_cli_rejects_a_bad_budget(tmp_path):
    assert main(["search", f"--set=out_dir={tmp_path}", "--max-mb", "-1"]) == 2


def test_candidate_label_is_readable():
    candidate = Candidate("cnn", {"embedding_dim": 32, "num_filters": 64, "dropout": 0.5}, 256, 3)
    assert candidate.label() == "cnn embedding_dim=32 num_filters=64 L=256 min_count=3"
