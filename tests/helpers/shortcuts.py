"""File-level shortcuts of an image set: can a classifier tell the classes from the files alone?

Features per JPEG: byte size, width, height and which quantisation tables it carries (its quality
setting); classes are the folder names above the files. Used by the image-sample tests and by
``bench/image_datasets.py``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier


def quantisation_tables(data: bytes) -> bytes:
    """The DQT segments of a JPEG file, concatenated (what its quality setting decides)."""
    out, i = b"", 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDB:
            out += data[i + 4:i + 2 + length]
        if marker == 0xDA:   # start of scan: the headers are over
            break
        i += 2 + length
    return out


def file_features(root: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(features, labels, class names, groups): byte size, width, height and a quantisation-table id."""
    rows, labels, groups, tables = [], [], [], {}
    for path in sorted(root.rglob("*.jpg")):
        data = path.read_bytes()
        h, w = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
        table = tables.setdefault(quantisation_tables(data), len(tables))
        rows.append([len(data), w, h, table])
        labels.append(path.relative_to(root).parts[-2])   # the class (or source) folder
        groups.append(path.stem.split("_")[0])
    names = sorted(set(labels))
    return np.asarray(rows, float), np.asarray([names.index(c) for c in labels]), names, groups


def shortcut_auc(root: Path, boosting: bool = True) -> dict:
    """Macro one-vs-rest AUC of classifiers that see only file size, dimensions and quantisation tables
    (5-fold cross-validation grouped by person): logistic regression, a decision tree and (``boosting``)
    gradient-boosted trees."""
    x, y, names, groups = file_features(root)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    out = {"classes": names, "n": len(y), "distinct_tables": int(len(set(x[:, 3]))),
           "distinct_sizes": int(len({(a, b) for a, b in x[:, 1:3]}))}
    models = [("logistic", LogisticRegression(max_iter=1000)),
              ("tree", DecisionTreeClassifier(max_depth=4, min_samples_leaf=10, random_state=0))]
    if boosting:
        models.append(("boosting", HistGradientBoostingClassifier(max_depth=3, max_iter=100)))
    for name, clf in models:
        p = cross_val_predict(clf, x, y, groups=groups, cv=StratifiedGroupKFold(5, shuffle=True, random_state=0),
                              method="predict_proba")
        out[name] = float(roc_auc_score(y, p, multi_class="ovr") if len(names) > 2 else roc_auc_score(y, p[:, 1]))
    return out
