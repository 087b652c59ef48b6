"""Classification metrics beyond accuracy."""

import numpy as np


def macro_f1(truth: np.ndarray, predicted: np.ndarray, num_labels: int) -> float:
    """Mean over labels of F1 (a label that never occurs and is never predicted is left out)."""
    scores = []
    for label in range(num_labels):
        tp = np.sum((predicted == label) & (truth == label))
        fp = np.sum((predicted == label) & (truth != label))
        fn = np.sum((predicted != label) & (truth == label))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0
