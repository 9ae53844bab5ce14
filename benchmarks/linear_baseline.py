"""The bar a student must clear: TF-IDF uni+bigram logistic regression on the same split.

Trained on textdistill's 20,000-review train split, C chosen on the 5,000-review validation split,
scored once on the 25,000 test reviews and on the robustness checks (from validation, and the domain checks of
``--config``'s ``report.domain_checks``). Writes benchmarks/results/linear_baseline.json.

    TEXTDISTILL_EMOTION=../shared/data/emotion TEXTDISTILL_GO_EMOTIONS=../shared/data/go_emotions \
        python benchmarks/linear_baseline.py --data ../shared/data/imdb
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import machine, write_result
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from textdistill import robustness
from textdistill.config import DataConfig, load_config
from textdistill.data import load_dataset
from textdistill.metrics import classification_metrics
from textdistill.pipeline import domain_checks
from textdistill.tokens import normalise_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--config", default="configs/imdb-cpu-whole-review.yaml", help="its report: settings")
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_dataset(DataConfig(path=args.data, use_unlabelled=False, seed=args.seed))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True)
    train = vectorizer.fit_transform([normalise_text(t) for t in data.train.texts])
    val = vectorizer.transform([normalise_text(t) for t in data.validation.texts])
    test = vectorizer.transform([normalise_text(t) for t in data.test.texts])
    by_c = {}
    for c in (1.0, 4.0, 16.0, 64.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train, data.train.labels)
        by_c[c] = (classification_metrics(data.validation.labels, model.predict(val), 2)["accuracy"], model)
    best_c = max(by_c, key=lambda c: by_c[c][0])
    best = by_c[best_c][1]
    test_metrics = classification_metrics(data.test.labels, best.predict(test), 2)
    report = load_config(args.config).report
    settings = robustness.CheckSettings(report.robustness_seed, report.robustness_max_per_check)
    positive = robustness.positive_label(data.label_names)
    if positive is None:
        raise SystemExit(f"the robustness checks need a positive label; labels: {data.label_names}")
    checks = robustness.build_checks(data.validation.texts, data.validation.labels, positive, settings)
    checks += domain_checks(report, data, positive)

    def predict(texts: list[str]) -> np.ndarray:
        return best.predict(vectorizer.transform([normalise_text(t) for t in texts]))

    scores = robustness.score_model(checks, predict)
    result = {
        "system": "TF-IDF uni+bigram logistic regression (scikit-learn)",
        "validation_accuracy_by_C": {str(c): v[0] for c, v in by_c.items()},
        "chosen_C": best_c,
        "test_accuracy": test_metrics["accuracy"],
        "test_macro_f1": test_metrics["macro_f1"],
        "features": train.shape[1],
        "robustness": [score.to_dict() for score in scores],
        "wall_seconds": time.perf_counter() - started,
        "seed": args.seed,
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
    }
    print(write_result("linear_baseline.json", result))


if __name__ == "__main__":
    main()
