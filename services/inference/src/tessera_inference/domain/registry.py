"""Every model under `model_dir`, loaded once at startup and served side by side.

Layout: `<model_dir>/<name>/<version>/{model.onnx, model.json}`. Adding a model
is dropping a directory in; a directory that fails its checks is refused with
one log line naming it and the reason, and the others still serve.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tessera_inference.domain.card import VERSION_PATTERN
from tessera_inference.domain.engine import ModelRefused, OnnxModel
from tessera_inference.errors import ModelNotFound, ModelVersionNotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    directory: Path
    reason: str


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def version_aliases(version: str) -> list[str]:
    """The spellings that name `version`: "1.0", "v1.0", and for minor 0 also "1", "v1".

    The v1 API speaks "v1.0", Open Inference Protocol clients "1.0" or "1".
    """
    major, minor = version.split(".")
    aliases = [version, f"v{version}"]
    if minor == "0":
        aliases += [major, f"v{major}"]
    return aliases


class ModelRegistry:
    def __init__(self, models: dict[str, dict[str, OnnxModel]], refused: list[Refusal]) -> None:
        # Versions sorted ascending, so the last one is the latest.
        self._models = {
            name: dict(sorted(versions.items(), key=lambda kv: version_key(kv[0])))
            for name, versions in sorted(models.items())
        }
        self._aliases = {
            name: {alias: v for v in versions for alias in version_aliases(v)}
            for name, versions in self._models.items()
        }
        self.refused = refused

    @classmethod
    def load(
        cls, root: Path, *, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> ModelRegistry:
        models: dict[str, dict[str, OnnxModel]] = {}
        refused: list[Refusal] = []
        for directory in _candidates(root, refused):
            try:
                model = OnnxModel.load(
                    directory,
                    intra_op_threads=intra_op_threads,
                    inter_op_threads=inter_op_threads,
                )
            except ModelRefused as error:
                refused.append(Refusal(directory, str(error)))
                continue
            models.setdefault(model.card.name, {})[model.card.version] = model
        for refusal in refused:
            logger.error(
                "model refused: %s: %s",
                refusal.directory,
                refusal.reason,
                extra={"model_dir": str(refusal.directory), "reason": refusal.reason},
            )
        registry = cls(models, refused)
        for model in registry:
            logger.info("model loaded: %s", model.key, extra={"model": model.key})
        return registry

    def __iter__(self) -> Iterator[OnnxModel]:
        for versions in self._models.values():
            yield from versions.values()

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._models.values())

    def names(self) -> list[str]:
        return list(self._models)

    def versions(self, name: str) -> list[str]:
        """Versions of `name`, oldest first; raises `ModelNotFound`."""
        try:
            return list(self._models[name])
        except KeyError:
            raise ModelNotFound(name) from None

    def get(self, name: str, version: str | None = None) -> OnnxModel:
        """The model `name` at `version` (any alias), or its latest version when None.

        Raises:
            ModelNotFound: no model called `name`.
            ModelVersionNotFound: `name` exists but not at `version`.
        """
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        if version is None:
            return next(reversed(versions.values()))
        canonical = self._aliases[name].get(version.strip())
        if canonical is None:
            raise ModelVersionNotFound(name, version, list(versions))
        return versions[canonical]


def _candidates(root: Path, refused: list[Refusal]) -> Iterator[Path]:
    if not root.is_dir():
        refused.append(Refusal(root, "model directory does not exist"))
        return
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        version_dirs = sorted(
            p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not version_dirs:
            refused.append(Refusal(name_dir, "no version directories (expected <name>/<version>/)"))
        for version_dir in version_dirs:
            if not VERSION_PATTERN.match(version_dir.name):
                refused.append(Refusal(version_dir, "version directory must be named like '1.0'"))
                continue
            yield version_dir
