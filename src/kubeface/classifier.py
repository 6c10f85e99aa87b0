"""A linear SVM over embeddings, stored as arrays and JSON so that loading never runs code.

Training uses scikit-learn's SVC (libsvm) with a linear kernel and Platt-scaled probabilities.
Prediction is re-implemented in NumPy from the stored arrays: the one-against-one decision
values, libsvm's sigmoid per pair and its pairwise coupling (Wu, Lin and Weng, "Probability
Estimates for Multi-class Classification by Pairwise Coupling", JMLR 2004). A test checks the
result against scikit-learn's own predict_proba.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from kubeface.errors import DatasetError, ModelError

CLASSIFIER_FORMAT = 1
ARRAYS_FILE = "classifier.npz"
META_FILE = "classifier.json"
# libsvm clips pairwise probabilities to [MIN_PROB, 1 - MIN_PROB].
MIN_PROB = 1e-7


@dataclasses.dataclass
class LinearSVM:
    """One-against-one linear SVM with pairwise Platt scaling.

    classes: the people, in the classifier's own order (every array follows it).
    coef: P x D weights, one row per pair (i, j) with i < j in class order, oriented so that a
    positive decision value favours class i; intercept: P; prob_a, prob_b: P sigmoid parameters.
    """

    classes: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    prob_a: np.ndarray
    prob_b: np.ndarray
    settings: dict = dataclasses.field(default_factory=dict)

    def decision_pairs(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings.astype(np.float64) @ self.coef.T + self.intercept

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Return N x K class probabilities, columns in the order of self.classes."""
        k = len(self.classes)
        decisions = self.decision_pairs(embeddings)
        fapb = decisions * self.prob_a + self.prob_b
        # 1 / (1 + exp(fApB)) written to avoid overflow on either side.
        pairwise = np.where(fapb >= 0, np.exp(-np.abs(fapb)) / (1 + np.exp(-np.abs(fapb))),
                            1 / (1 + np.exp(-np.abs(fapb))))
        pairwise = np.clip(pairwise, MIN_PROB, 1 - MIN_PROB)
        out = np.empty((len(embeddings), k))
        rows, cols = np.triu_indices(k, 1)
        for n in range(len(embeddings)):
            r = np.zeros((k, k))
            r[rows, cols] = pairwise[n]
            r[cols, rows] = 1 - pairwise[n]
            out[n] = _couple(r)
        return out

    def predict(self, embeddings: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Return the most probable person and its probability for each embedding."""
        proba = self.predict_proba(embeddings)
        best = proba.argmax(axis=1)
        return [self.classes[i] for i in best], proba[np.arange(len(best)), best]

    def save(self, folder: Path) -> list[str]:
        """Write classifier.npz and classifier.json into folder; returns the file names."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / ARRAYS_FILE, coef=self.coef, intercept=self.intercept,
                 prob_a=self.prob_a, prob_b=self.prob_b)
        meta = {"format": CLASSIFIER_FORMAT, "kind": "linear-svm-ovo", "classes": self.classes,
                "settings": self.settings}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        return [ARRAYS_FILE, META_FILE]

    @classmethod
    def load(cls, folder: Path) -> "LinearSVM":
        """Read a classifier written by save; arrays are loaded with allow_pickle=False.

        A classifier written by another scikit-learn version loads: prediction uses only the
        stored arrays. A different format number raises ModelError naming both versions.
        """
        meta_path = folder / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ModelError(f"classifier metadata {meta_path} is missing") from error
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"classifier metadata {meta_path} is not valid JSON: {error}") from error
        if meta.get("format") != CLASSIFIER_FORMAT or meta.get("kind") != "linear-svm-ovo":
            written_by = meta.get("settings", {}).get("sklearn_version", "unknown")
            raise ModelError(
                f"{meta_path} has classifier format {meta.get('format')} ({meta.get('kind')}), written with "
                f"scikit-learn {written_by}; this kubeface {_kubeface_version()} reads format "
                f"{CLASSIFIER_FORMAT} (linear-svm-ovo); retrain the model or install the kubeface version "
                "that wrote it"
            )
        arrays_path = folder / ARRAYS_FILE
        try:
            with np.load(arrays_path, allow_pickle=False) as arrays:
                model = cls(classes=list(meta["classes"]), coef=arrays["coef"], intercept=arrays["intercept"],
                            prob_a=arrays["prob_a"], prob_b=arrays["prob_b"], settings=meta.get("settings", {}))
        except FileNotFoundError as error:
            raise ModelError(f"classifier arrays {arrays_path} are missing") from error
        except ValueError as error:
            # np.load raises ValueError for object arrays, which only a pickle can restore.
            raise ModelError(f"{arrays_path} cannot be read without unpickling, which kubeface never does: "
                             f"{error}") from error
        except (KeyError, OSError, zipfile.BadZipFile) as error:
            raise ModelError(f"{arrays_path} is not a kubeface classifier: {error}") from error
        pairs = len(model.classes) * (len(model.classes) - 1) // 2
        if model.coef.shape[0] != pairs or len(model.intercept) != pairs:
            raise ModelError(f"{folder / ARRAYS_FILE} contains {model.coef.shape[0]} pairs; "
                             f"{len(model.classes)} classes need {pairs}")
        return model


def _couple(r: np.ndarray, max_iter_floor: int = 100) -> np.ndarray:
    """Solve libsvm's pairwise coupling for one sample; r[i, j] = P(i | i or j)."""
    k = len(r)
    q = -r.T * r
    np.fill_diagonal(q, 0.0)
    np.fill_diagonal(q, (r.T**2).sum(axis=1) - np.diag(r) ** 2)
    p = np.full(k, 1.0 / k)
    eps = 0.005 / k
    for _ in range(max(max_iter_floor, k)):
        qp = q @ p
        pqp = p @ qp
        if np.max(np.abs(qp - pqp)) < eps:
            break
        for t in range(k):
            diff = (-qp[t] + pqp) / q[t, t]
            p[t] += diff
            pqp = (pqp + diff * (diff * q[t, t] + 2 * qp[t])) / (1 + diff) / (1 + diff)
            qp = (qp + diff * q[t]) / (1 + diff)
            p /= 1 + diff
    return p


def train_svm(embeddings: np.ndarray, labels: list[str], c: float = 1.0, seed: int = 0) -> LinearSVM:
    """Fit a linear SVC with probabilities and convert it to a LinearSVM."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError(f"training needs at least 2 people; found {len(classes)}: {classes}")
    svc = reference_svc(embeddings, labels, c, seed)
    if list(svc.classes_) != classes:
        raise ModelError(f"SVC class order {list(svc.classes_)} differs from sorted labels")
    coef = np.asarray(svc.coef_, dtype=np.float64)
    intercept = np.asarray(svc.intercept_, dtype=np.float64)
    if len(classes) == 2:
        # scikit-learn negates the binary decision function relative to libsvm's.
        coef, intercept = -coef, -intercept
    return LinearSVM(
        classes=classes, coef=coef, intercept=intercept,
        prob_a=_platt(svc, "probA_"), prob_b=_platt(svc, "probB_"),
        settings={"C": c, "seed": seed, "kernel": "linear", "sklearn_version": _sklearn_version()},
    )


def _platt(svc, attribute: str) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        return np.asarray(getattr(svc, attribute), dtype=np.float64)


def _kubeface_version() -> str:
    from kubeface import __version__

    return __version__


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def reference_svc(embeddings: np.ndarray, labels: list[str], c: float = 1.0, seed: int = 0):
    """Fit the scikit-learn SVC that train_svm converts; tests compare the two."""
    import warnings

    from sklearn.svm import SVC

    svc = SVC(kernel="linear", C=c, probability=True, random_state=seed)
    with warnings.catch_warnings():
        # TODO: SVC(probability=True) and probA_/probB_ are deprecated in scikit-learn 1.9 and
        # removed in 1.11; scikit-learn is pinned to 1.9.1 until training moves to
        # CalibratedClassifierCV with the stored arrays kept as they are.
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        svc.fit(embeddings.astype(np.float64), np.asarray(labels))
    return svc
