"""Deployment artefacts (Kubernetes manifests) and the tests that prove them offline."""
