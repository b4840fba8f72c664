"""Train the breast-cancer models and export them to ONNX with their model cards.

    uv run python -m tessera_inference.training            # rewrite the packaged models
    uv run python -m tessera_inference.training --out DIR  # write elsewhere (tests do)

scikit-learn, skl2onnx and onnx come from the workspace's `train` dependency
group and are imported inside the functions: the service never imports this
module, so serving images carry none of them.

Deterministic: a fixed stratified split and fixed seeds, so re-running the
script reproduces the committed metrics (a test checks it).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tessera_contracts import v1

from tessera_inference.domain.card import (
    CARD_FILE,
    ONNX_FILE,
    DatasetInfo,
    HeldOutMetrics,
    ModelCard,
    SplitInfo,
    TensorSpec,
    TrainingInfo,
)
from tessera_inference.settings import PACKAGED_MODELS

MODEL_NAME = "breast-cancer"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
# Class indices as in scikit-learn and the v1 contract: 0 = malignant, 1 = benign,
# and class 1 is the "positive" class the v1 confidence_threshold applies to.
LABELS = list(v1.BREAST_CANCER_LABELS)
POSITIVE_LABEL = LABELS[1]
TEST_SIZE = 0.25
SPLIT_SEED = 42
MODEL_SEED = 0
OPSET = {"": 17, "ai.onnx.ml": 3}

Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    x_train: Matrix
    x_test: Matrix
    y_train: Labels
    y_test: Labels
    features: list[str]
    n_samples: int


@dataclass(frozen=True)
class Recipe:
    version: str
    description: str
    estimator: str
    params: dict[str, Any]


RECIPES = {
    "1.0": Recipe(
        version="1.0",
        description="Logistic regression on the 10 'mean' features, standardised in the pipeline.",
        estimator="StandardScaler + LogisticRegression",
        params={"C": 1.0, "max_iter": 1000},
    ),
    "2.0": Recipe(
        version="2.0",
        description="Small neural network (MLP 32-16, ReLU) on the 10 'mean' features, standardised in the pipeline.",
        estimator="StandardScaler + MLPClassifier",
        params={"hidden_layer_sizes": [32, 16], "alpha": 1e-3, "max_iter": 2000},
    ),
}


def load_dataset() -> Dataset:
    """scikit-learn's bundled copy (no download), restricted to the 10 'mean' features."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    columns = [i for i, name in enumerate(bunch.feature_names) if str(name).startswith("mean ")]
    x = np.asarray(bunch.data[:, columns], dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    return Dataset(
        x_train=x_train,
        x_test=x_test,
        y_train=y_train,
        y_test=y_test,
        features=[str(bunch.feature_names[i]) for i in columns],
        n_samples=len(y),
    )


def fit(version: str, data: Dataset) -> Any:
    """Fit the scikit-learn pipeline of one model version."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    recipe = RECIPES[version]
    classifier: Any
    if version == "1.0":
        classifier = LogisticRegression(random_state=MODEL_SEED, **recipe.params)
    else:
        params = {**recipe.params, "hidden_layer_sizes": tuple(recipe.params["hidden_layer_sizes"])}
        classifier = MLPClassifier(random_state=MODEL_SEED, **params)
    return make_pipeline(StandardScaler(), classifier).fit(data.x_train, data.y_train)


def export_onnx(pipeline: Any, n_features: int) -> bytes:
    """Convert to ONNX with a single output: the [N, 2] float probabilities tensor."""
    import onnx
    import onnx.utils
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    converted = to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        # zipmap off: a plain tensor, not a list of {label: probability} maps.
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
        target_opset=OPSET,
    )
    # The converter also emits an int64 "label" output; serving thresholds the
    # probabilities itself, so keep only the probabilities and prune the rest.
    pruned = onnx.utils.Extractor(converted).extract_model([INPUT_NAME], [OUTPUT_NAME])
    pruned.ir_version = converted.ir_version
    pruned.opset_import.clear()
    pruned.opset_import.extend(converted.opset_import)
    pruned.producer_name = "tessera_inference.training"
    pruned.doc_string = "Breast-cancer classifier; output columns: " + ", ".join(LABELS)
    onnx.checker.check_model(pruned, full_check=True)
    serialised: bytes = pruned.SerializeToString()
    return serialised


def onnx_probabilities(onnx_bytes: bytes, x: Matrix) -> npt.NDArray[np.float32]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})
    return np.asarray(probabilities, dtype=np.float32)


def held_out_metrics(probabilities: npt.NDArray[np.float32], y_true: Labels) -> HeldOutMetrics:
    from sklearn import metrics

    positive = probabilities[:, 1].astype(np.float64)
    predicted = (positive >= 0.5).astype(np.int64)

    def r(value: Any) -> float:
        # Rounded so the card diffs cleanly and re-training compares exactly.
        return round(float(value), 4)

    return HeldOutMetrics(
        accuracy=r(metrics.accuracy_score(y_true, predicted)),
        roc_auc=r(metrics.roc_auc_score(y_true, positive)),
        precision=r(metrics.precision_score(y_true, predicted)),
        recall=r(metrics.recall_score(y_true, predicted)),
        f1=r(metrics.f1_score(y_true, predicted)),
        log_loss=r(metrics.log_loss(y_true, np.clip(positive, 1e-7, 1 - 1e-7))),
    )


@dataclass(frozen=True)
class Trained:
    pipeline: Any
    """The fitted scikit-learn pipeline (tests compare the ONNX graph with it)."""
    onnx_bytes: bytes
    card: ModelCard


def build(version: str, data: Dataset) -> Trained:
    """Train, export and evaluate one version."""
    import skl2onnx
    import sklearn

    recipe = RECIPES[version]
    pipeline = fit(version, data)
    onnx_bytes = export_onnx(pipeline, len(data.features))
    card = ModelCard(
        name=MODEL_NAME,
        version=version,
        description=recipe.description,
        inputs=[TensorSpec(name=INPUT_NAME, datatype="FP32", shape=[-1, len(data.features)])],
        outputs=[TensorSpec(name=OUTPUT_NAME, datatype="FP32", shape=[-1, len(LABELS)])],
        labels=LABELS,
        positive_label=POSITIVE_LABEL,
        dataset=DatasetInfo(
            name="Breast Cancer Wisconsin (Diagnostic)",
            source="sklearn.datasets.load_breast_cancer (bundled with scikit-learn)",
            n_samples=data.n_samples,
            features=data.features,
            target="diagnosis: 0 = malignant, 1 = benign",
        ),
        split=SplitInfo(
            method="stratified hold-out (sklearn.model_selection.train_test_split)",
            test_size=TEST_SIZE,
            random_state=SPLIT_SEED,
            n_train=len(data.y_train),
            n_test=len(data.y_test),
        ),
        metrics=held_out_metrics(onnx_probabilities(onnx_bytes, data.x_test), data.y_test),
        training=TrainingInfo(
            estimator=recipe.estimator,
            params=recipe.params,
            random_state=MODEL_SEED,
            sklearn_version=sklearn.__version__,
            skl2onnx_version=skl2onnx.__version__,
            opset=OPSET[""],
        ),
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
    )
    return Trained(pipeline, onnx_bytes, card)


def write(out_dir: Path, trained: Trained) -> Path:
    card = trained.card
    directory = out_dir / card.name / card.version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ONNX_FILE).write_bytes(trained.onnx_bytes)
    (directory / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n")
    return directory


def train_all(out_dir: Path, versions: Sequence[str] = tuple(RECIPES)) -> list[Trained]:
    data = load_dataset()
    trained = [build(version, data) for version in versions]
    for one in trained:
        write(out_dir, one)
    return trained


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_inference.training")
    parser.add_argument("--out", type=Path, default=PACKAGED_MODELS, help="models directory")
    args = parser.parse_args(argv)
    for trained in train_all(args.out):
        card, m = trained.card, trained.card.metrics
        sys.stdout.write(
            f"{card.name}/{card.version}: accuracy {m.accuracy:.4f}, ROC AUC {m.roc_auc:.4f}, "
            f"F1 {m.f1:.4f} on {card.split.n_test} held-out rows -> {args.out}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
