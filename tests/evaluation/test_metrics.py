"""Scoring logged predictions: the same numbers scikit-learn gives."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("n", [40, 3000])
def test_scoring_logged_predictions_equals_scikit_learn(n: int) -> None:
    from sklearn import metrics as m

    from modelcycle.evaluation.metrics import score_predictions

    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    p = np.round(rng.random(n), 2)  # ties in the scores, as real probabilities have
    proba = np.c_[1 - p, p]
    pred = (p > 0.5).astype(int)
    got = score_predictions(y.astype(str), pred, proba, ["0", "1"])  # labels as text meet classes logged as numbers
    expected = {"accuracy": m.accuracy_score(y, pred), "precision": m.precision_score(y, pred), "recall": m.recall_score(y, pred),
                "f1": m.f1_score(y, pred), "roc_auc": m.roc_auc_score(y, p), "log_loss": m.log_loss(y, proba)}
    assert got == pytest.approx(expected, rel=1e-12)
    multi = score_predictions(["a", "b", "c", "a"], ["a", "b", "b", "a"])
    assert multi["accuracy"] == 0.75 and "roc_auc" not in multi
