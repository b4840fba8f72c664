"""The committed models are what the training script produces, and they are good."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tessera_inference import training
from tessera_inference.domain.card import CARD_FILE, ModelCard
from tessera_inference.domain.engine import OnnxModel
from tessera_inference.settings import PACKAGED_MODELS

VERSIONS = list(training.RECIPES)


@pytest.fixture(scope="module")
def data() -> training.Dataset:
    return training.load_dataset()


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, training.Trained]:
    out = tmp_path_factory.mktemp("models")
    return {t.card.version: t for t in training.train_all(out)}


def committed(version: str) -> OnnxModel:
    return OnnxModel.load(PACKAGED_MODELS / training.MODEL_NAME / version)


def committed_card(version: str) -> ModelCard:
    path = PACKAGED_MODELS / training.MODEL_NAME / version / CARD_FILE
    return ModelCard.model_validate_json(path.read_bytes())


@pytest.mark.parametrize("version", VERSIONS)
class TestCommittedModels:
    def test_retraining_reproduces_the_committed_metrics_and_split(
        self, version: str, retrained: dict[str, training.Trained]
    ) -> None:
        card = committed_card(version)
        again = retrained[version].card

        assert again.metrics == card.metrics
        assert again.split == card.split
        assert again.dataset == card.dataset
        assert (again.inputs, again.outputs, again.labels) == (
            card.inputs,
            card.outputs,
            card.labels,
        )

    def test_retrained_onnx_gives_the_committed_outputs(
        self, version: str, retrained: dict[str, training.Trained], data: training.Dataset
    ) -> None:
        x = data.x_test.astype(np.float32)

        again = training.onnx_probabilities(retrained[version].onnx_bytes, data.x_test)

        np.testing.assert_allclose(again, committed(version).run(x), atol=1e-6)

    def test_onnx_matches_scikit_learn_on_the_held_out_split(
        self, version: str, retrained: dict[str, training.Trained], data: training.Dataset
    ) -> None:
        expected = retrained[version].pipeline.predict_proba(data.x_test)

        actual = committed(version).run(data.x_test.astype(np.float32))

        np.testing.assert_allclose(actual, expected, atol=1e-4)
        assert (actual.argmax(1) == expected.argmax(1)).all()

    def test_held_out_accuracy_is_at_least_0_9(self, version: str, data: training.Dataset) -> None:
        probabilities = committed(version).run(data.x_test.astype(np.float32))
        accuracy = float((probabilities.argmax(1) == data.y_test).mean())

        assert accuracy >= 0.9
        assert accuracy == pytest.approx(committed_card(version).metrics.accuracy, abs=1e-4)


def test_the_cli_writes_a_model_directory_per_version(tmp_path: Path) -> None:
    assert training.main(["--out", str(tmp_path)]) == 0

    for version in VERSIONS:
        directory = tmp_path / training.MODEL_NAME / version
        card = ModelCard.model_validate_json((directory / CARD_FILE).read_bytes())
        assert card.version == version
        assert OnnxModel.load(directory).card == card


def test_class_order_follows_the_v1_contract() -> None:
    from tessera_contracts import v1

    for version in VERSIONS:
        card = committed_card(version)
        assert tuple(card.labels) == v1.BREAST_CANCER_LABELS
        assert card.positive_index == 1
