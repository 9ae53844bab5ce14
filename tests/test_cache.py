"""cache: content hashes for cache keys, and atomic writes (all or nothing, no temporary left, normal file mode)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from textdistill import cache
from textdistill.cache import ArtifactCache, array_digest, atomic_open, atomic_write_bytes, atomic_write_json, digest


def test_digest_is_stable_and_ignores_key_order():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_array_digest_depends_on_values_dtype_and_shape():
    values = np.arange(6, dtype=np.float32)
    assert array_digest(values) == array_digest(values.copy())
    assert array_digest(values) != array_digest(values.astype(np.float64))
    assert array_digest(values) != array_digest(values.reshape(2, 3))
    changed = values.copy()
    changed[3] = np.nextafter(changed[3], np.float32(10))  # one ulp
    assert array_digest(values) != array_digest(changed)


def test_array_digest_of_a_view_equals_that_of_a_copy():
    matrix = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert array_digest(matrix[:, 1]) == array_digest(np.array([1, 5, 9]))


def test_array_digest_separates_arrays_the_old_abs_sum_key_confused():
    """Student keys used ``abs(logits).sum()``: a teacher whose logits swap sign (or move between rows) kept it."""
    logits = np.array([[1.5, -0.5], [-2.0, 3.0]], dtype=np.float32)
    flipped = -logits  # every prediction reversed
    assert float(np.abs(logits).sum()) == float(np.abs(flipped).sum())
    assert array_digest(logits) != array_digest(flipped)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "value.json"
    atomic_write_json(path, {"old": 1})
    atomic_write_json(path, {"new": tmp_path})  # paths are written as text
    assert json.loads(path.read_text()) == {"new": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["value.json"]


def test_a_value_that_cannot_be_serialised_keeps_the_old_file(tmp_path):
    path = tmp_path / "value.json"
    atomic_write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {("tuple", "key"): 1})  # JSON keys must be strings
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["value.json"]


def test_a_failure_midway_through_writing_keeps_the_old_file(tmp_path):
    path = tmp_path / "arrays.npz"
    atomic_write_bytes(path, b"old contents")
    with pytest.raises(RuntimeError, match="disk gone"), atomic_open(path) as handle:
        handle.write(b"half of the new ")
        raise RuntimeError("disk gone")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]


def test_a_failed_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    atomic_write_bytes(path, b"old weights")

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"new weights")
    assert path.read_bytes() == b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_atomic_write_gives_a_normal_file_mode(tmp_path):
    """0o644 under umask 022, like ``open``; a ``tempfile.mkstemp`` temporary would leave 0o600."""
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.bin").stat().st_mode & 0o777 == 0o644


def test_artifact_cache_names_files_by_content_and_writes_json(tmp_path):
    store = ArtifactCache(tmp_path)
    path = store.path("logits", {"split": "test"}, ".json")
    assert path == tmp_path / "logits" / f"{digest({'split': 'test'})}.json"
    store.write_json(path, {"n": 3})
    assert json.loads(path.read_text()) == {"n": 3}
