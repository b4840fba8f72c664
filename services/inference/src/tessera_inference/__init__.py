"""Tessera inference service: ONNX models over HTTP (v1, Open Inference Protocol v2) and NATS."""

from importlib.metadata import version

__version__ = version("tessera-inference")
