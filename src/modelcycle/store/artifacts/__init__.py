"""Content-addressed artifact storage: blobs named by their sha256, verified on every read."""

from __future__ import annotations

from modelcycle.store.artifacts.base import ArtifactStore, ContentStore, safe_artifact_path

__all__ = ["ArtifactStore", "ContentStore", "safe_artifact_path"]
