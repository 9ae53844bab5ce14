"""A content-addressed artifact store: every cached artifact is named by a hash of what made it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

logger = logging.getLogger(__name__)


def digest(parts: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable description of an artifact's inputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    """A hash (32 hex digits) of an array's dtype, shape and bytes, for cache keys.

    Unlike a summary such as ``abs(array).sum()`` (the same for ``a`` and ``-a``), different arrays get different
    hashes (barring a blake2b collision); a view hashes like a copy of it.
    """
    array = np.ascontiguousarray(array)
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(f"{array.dtype.str}{array.shape}".encode())
    hasher.update(array.tobytes())
    return hasher.hexdigest()


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents replace ``path`` only if the ``with`` block finishes.

    Writes go to a uniquely named temporary file in the same directory (so the final ``os.replace`` is atomic
    and concurrent writers never share a temporary), which is flushed and fsynced before the rename. Readers see
    the old file or the new one, never a part. The file is created with mode 0o666 less the umask, like ``open``
    (``tempfile.mkstemp`` would give 0o600, unreadable to other users of a shared cache or model). On any error
    the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see ``atomic_open``)."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically (see ``atomic_open``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> None:
    """Replace ``path`` with ``value`` as indented JSON atomically; values JSON lacks (paths) are written as str.

    The value is serialised before the file is touched, so one that cannot be serialised leaves ``path`` as it was.
    """
    atomic_write_text(path, json.dumps(value, indent=2, default=str) + "\n")


class ArtifactCache:
    """Files under ``root/kind/key.suffix``; writes are atomic so an interrupted run never leaves half a file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, parts: dict[str, Any], suffix: str) -> Path:
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{digest(parts)}{suffix}"

    def write_json(self, path: Path, value: Any) -> None:
        atomic_write_json(path, value)
