"""Tessera inference service: ONNX models over HTTP (v1, Open Inference Protocol v2) and NATS."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tessera-inference")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
