"""A content-addressed artifact store: every cached artifact is named by a hash of what made it."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def digest(parts: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable description of an artifact's inputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ArtifactCache:
    """Files under ``root/kind/key.suffix``; writes are atomic so an interrupted run never leaves half a file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, parts: dict[str, Any], suffix: str) -> Path:
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{digest(parts)}{suffix}"

    def write_json(self, path: Path, value: Any) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
