"""Loading model directories: good ones serve side by side, broken ones are refused."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest
from tessera_inference.domain.card import CARD_FILE, ONNX_FILE
from tessera_inference.domain.registry import ModelRegistry
from tessera_inference.errors import ModelNotFound, ModelVersionNotFound
from tessera_inference.settings import PACKAGED_MODELS, Settings

Serve = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


class TestPackagedModels:
    def test_both_versions_load_oldest_first(self) -> None:
        registry = ModelRegistry.load(PACKAGED_MODELS)

        assert registry.names() == ["breast-cancer"]
        assert registry.versions("breast-cancer") == ["1.0", "2.0"]
        assert registry.refused == []

    def test_no_version_means_the_latest(self) -> None:
        registry = ModelRegistry.load(PACKAGED_MODELS)

        assert registry.get("breast-cancer").card.version == "2.0"

    @pytest.mark.parametrize("alias", ["1.0", "v1.0", "1", "v1", " 1.0 "])
    def test_v1_and_oip_spellings_name_the_same_version(self, alias: str) -> None:
        registry = ModelRegistry.load(PACKAGED_MODELS)

        assert registry.get("breast-cancer", alias).card.version == "1.0"

    @pytest.mark.parametrize("version", ["1.5", "v3.0", "3", "", "latest"])
    def test_unknown_version_is_refused(self, version: str) -> None:
        registry = ModelRegistry.load(PACKAGED_MODELS)

        with pytest.raises(ModelVersionNotFound, match="available: 1.0, 2.0"):
            registry.get("breast-cancer", version)

    def test_unknown_model_is_refused(self) -> None:
        registry = ModelRegistry.load(PACKAGED_MODELS)

        with pytest.raises(ModelNotFound):
            registry.get("iris")
        with pytest.raises(ModelNotFound):
            registry.versions("iris")


def _card(directory: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((directory / CARD_FILE).read_text())
    return card


def _write_card(directory: Path, card: dict[str, Any]) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card))


def _edit_card(**changes: Any) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        _write_card(directory, {**_card(directory), **changes})

    return edit


def _write_onnx(directory: Path, data: bytes) -> None:
    """Replace the graph and re-sign the card, so only the graph itself is wrong."""
    (directory / ONNX_FILE).write_bytes(data)
    _write_card(directory, {**_card(directory), "onnx_sha256": hashlib.sha256(data).hexdigest()})


def _remove_card(directory: Path) -> None:
    (directory / CARD_FILE).unlink()


def _card_not_json(directory: Path) -> None:
    (directory / CARD_FILE).write_text("{")


def _tampered_onnx(directory: Path) -> None:
    with (directory / ONNX_FILE).open("ab") as f:
        f.write(b"\0")


def _not_onnx(directory: Path) -> None:
    _write_onnx(directory, b"this is not an ONNX graph")


def _extra_graph_output(directory: Path) -> None:
    graph = onnx.load(directory / ONNX_FILE)
    graph.graph.node.append(onnx.helper.make_node("Identity", ["probabilities"], ["copy"]))
    graph.graph.output.append(
        onnx.helper.make_tensor_value_info("copy", onnx.TensorProto.FLOAT, [None, 2])
    )
    _write_onnx(directory, graph.SerializeToString())


def _three_labels(directory: Path) -> None:
    card = _card(directory)
    card["labels"] = ["malignant", "benign", "unsure"]
    card["outputs"][0]["shape"] = [-1, 3]
    _write_card(directory, card)


def _input_renamed(directory: Path) -> None:
    card = _card(directory)
    card["inputs"][0]["name"] = "x"
    _write_card(directory, card)


def _input_wider(directory: Path) -> None:
    card = _card(directory)
    card["inputs"][0]["shape"] = [-1, 11]
    _write_card(directory, card)


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "card missing": (_remove_card, "cannot read model.json"),
    "card not JSON": (_card_not_json, "invalid model.json"),
    "unknown card field": (_edit_card(colour="red"), "colour: Extra inputs"),
    "card names another model": (_edit_card(name="other"), "card says other/3.0"),
    "onnx changed after the card": (_tampered_onnx, "sha256"),
    "not an ONNX graph": (_not_onnx, "ONNX Runtime cannot load"),
    "graph has an output the card lacks": (_extra_graph_output, "the ONNX graph has 2"),
    "card has more labels than the graph": (_three_labels, "output 'probabilities' has shape"),
    "card input name differs": (_input_renamed, "input 'x' of the card is named 'features'"),
    "card input shape differs": (_input_wider, "card says [-1, 11]"),
}


@pytest.fixture(params=list(BREAKAGES), ids=list(BREAKAGES))
def broken(request: pytest.FixtureRequest, model_dir: Path) -> tuple[Path, str]:
    """`model_dir` with breast-cancer/3.0: a copy of 1.0 broken one way; and what to expect."""
    break_it, reason = BREAKAGES[request.param]
    directory = model_dir / "breast-cancer" / "3.0"
    shutil.copytree(model_dir / "breast-cancer" / "1.0", directory)
    _write_card(directory, {**_card(directory), "version": "3.0"})
    break_it(directory)
    return directory, reason


class TestBrokenModels:
    def test_refused_with_a_log_line_naming_it_and_the_reason(
        self, broken: tuple[Path, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        directory, reason = broken

        with caplog.at_level(logging.ERROR, logger="tessera_inference.domain.registry"):
            registry = ModelRegistry.load(directory.parent.parent)

        assert [r.directory for r in registry.refused] == [directory]
        assert reason in registry.refused[0].reason
        (record,) = caplog.records
        assert str(directory) in record.getMessage()
        assert reason in record.getMessage()

    def test_the_others_still_serve(self, broken: tuple[Path, str]) -> None:
        directory, _ = broken

        registry = ModelRegistry.load(directory.parent.parent)

        assert registry.versions("breast-cancer") == ["1.0", "2.0"]
        with pytest.raises(ModelVersionNotFound):
            registry.get("breast-cancer", "3.0")

    async def test_the_app_starts_and_serves_the_others(
        self, broken: tuple[Path, str], serve: Serve, malignant: list[float]
    ) -> None:
        directory, _ = broken
        settings = Settings(nats_enabled=False, model_dir=directory.parent.parent)

        async with serve(settings) as client:
            ready = await client.get("/readyz")
            served = await client.post(
                "/v1/predict", json={"features": malignant, "model_version": "v2.0"}
            )
            refused = await client.get("/v2/models/breast-cancer/versions/3.0")

        assert ready.status_code == 200
        assert served.status_code == 200
        assert refused.status_code == 404


class TestModelDirectoryLayout:
    def test_a_version_directory_not_named_like_a_version_is_refused(self, model_dir: Path) -> None:
        shutil.copytree(model_dir / "breast-cancer" / "1.0", model_dir / "breast-cancer" / "latest")

        registry = ModelRegistry.load(model_dir)

        assert "must be named like '1.0'" in registry.refused[0].reason
        assert registry.versions("breast-cancer") == ["1.0", "2.0"]

    def test_a_second_model_is_served_by_dropping_its_directory_in(self, model_dir: Path) -> None:
        other = model_dir / "tumour-screen" / "1.0"
        shutil.copytree(model_dir / "breast-cancer" / "2.0", other)
        _write_card(other, {**_card(other), "name": "tumour-screen", "version": "1.0"})

        registry = ModelRegistry.load(model_dir)

        assert registry.names() == ["breast-cancer", "tumour-screen"]
        assert registry.get("tumour-screen").key == "tumour-screen/1.0"
        assert len(registry) == 3

    def test_a_missing_model_dir_loads_nothing_and_says_so(self, tmp_path: Path) -> None:
        registry = ModelRegistry.load(tmp_path / "nowhere")

        assert len(registry) == 0
        assert registry.refused[0].reason == "model directory does not exist"

    async def test_without_the_default_model_the_service_is_not_ready(
        self, tmp_path: Path, serve: Serve
    ) -> None:
        async with serve(Settings(nats_enabled=False, model_dir=tmp_path)) as client:
            response = await client.get("/readyz")

        assert response.status_code == 503
        assert "breast-cancer" in response.json()["checks"]["models"]
