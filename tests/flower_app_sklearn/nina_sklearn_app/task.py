"""What both sides share: the data (a fixed synthetic classification task, each SuperNode's partition of it) and a
logistic-regression model whose parameters travel as two arrays."""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier

FEATURES = 8


def dataset() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=1200, n_features=FEATURES, n_informative=5, n_redundant=1, class_sep=1.5, random_state=42)


def partition(partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = dataset()
    return x[partition_id::num_partitions], y[partition_id::num_partitions]


def model(arrays: list[np.ndarray], seed: int = 0) -> SGDClassifier:
    """A classifier holding these parameters (coefficients, intercept), ready to train or score."""
    clf = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.01, random_state=seed)
    clf.partial_fit(np.zeros((2, FEATURES)), np.array([0, 1]), classes=np.array([0, 1]))
    clf.coef_ = arrays[0].reshape(1, FEATURES).copy()
    clf.intercept_ = arrays[1].reshape(1).copy()
    return clf


def parameters(clf: SGDClassifier) -> list[np.ndarray]:
    return [clf.coef_.reshape(FEATURES).copy(), clf.intercept_.reshape(1).copy()]
