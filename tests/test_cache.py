"""Tests for jaxunc.checkpoints.cache: content keys, hits, corruption detection, bfloat16 round trip."""

from __future__ import annotations

import logging
import os
import pathlib

import ml_dtypes
import numpy as np
import pytest

from jaxunc.checkpoints import cache


def _params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "model.embed_tokens.weight": rng.standard_normal((64, 16)).astype(np.float32),
        "model.norm.weight": rng.standard_normal(16).astype(ml_dtypes.bfloat16),
        "step": np.arange(5, dtype=np.int32),
    }


class Counter:
    """convert() stand-in that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return _params()


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_array_equal(a[name].view(np.uint8), b[name].view(np.uint8), err_msg=name)


def _entry(tmp_path: pathlib.Path, key: str) -> pathlib.Path:
    return tmp_path / "params" / cache.entry_name(key)


def _tensor_file(tmp_path: pathlib.Path, key: str, name: str) -> pathlib.Path:
    import json

    entry = _entry(tmp_path, key)
    return entry / json.loads((entry / "manifest.json").read_text())["files"][name]


def test_hit_skips_conversion_and_round_trips_bfloat16(tmp_path):
    convert = Counter()
    first = cache.cached_params("k1", convert, cache_dir=tmp_path)
    second = cache.cached_params("k1", convert, cache_dir=tmp_path)
    assert convert.calls == 1
    _assert_same(first, _params())
    _assert_same(second, _params())
    assert second["model.norm.weight"].dtype == ml_dtypes.bfloat16
    assert [p.name for p in (tmp_path / "params").iterdir()] == [cache.entry_name("k1")]  # no temp leftovers


def test_other_key_is_a_miss(tmp_path):
    convert = Counter()
    cache.cached_params("k1", convert, cache_dir=tmp_path)
    cache.cached_params("k2", convert, cache_dir=tmp_path)
    assert convert.calls == 2


@pytest.mark.parametrize("damage", ["truncate", "flip_data", "flip_header", "empty", "manifest"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, caplog, damage):
    convert = Counter()
    cache.cached_params("k", convert, cache_dir=tmp_path)
    path = _tensor_file(tmp_path, "k", "model.embed_tokens.weight")
    if damage == "manifest":
        path = _entry(tmp_path, "k") / "manifest.json"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "flip_data":
        data[-10] ^= 0xFF  # inside the tensor's bytes
    elif damage in ("flip_header", "manifest"):
        data[20] ^= 0xFF  # inside the JSON header
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="jaxunc.checkpoints.cache"):
        rebuilt = cache.cached_params("k", convert, cache_dir=tmp_path)
    assert convert.calls == 2
    assert "stale or corrupt" in caplog.text
    _assert_same(rebuilt, _params())
    # The rebuilt entry is good again: the next call is a hit.
    cache.cached_params("k", convert, cache_dir=tmp_path)
    assert convert.calls == 2


@pytest.mark.parametrize("forgery", ["digest recomputed", "manifest recomputed without the key"])
def test_edited_tensor_with_a_recomputed_manifest_is_rebuilt(tmp_path, caplog, forgery):
    """The MAC is keyed by the checkpoint's content key, which the entry does not hold: editing a
    tensor and recomputing whatever the entry itself could tell (a digest, the whole manifest) fails."""
    import json

    from safetensors.numpy import load_file, save_file

    convert = Counter()
    cache.cached_params("k", convert, cache_dir=tmp_path)
    entry = _entry(tmp_path, "k")
    manifest = json.loads((entry / "manifest.json").read_text())
    name = "model.embed_tokens.weight"
    path = entry / manifest["files"][name]
    edited = load_file(str(path))["tensor"] + 1.0
    save_file({"tensor": edited}, str(path))
    if forgery == "manifest recomputed without the key":
        digests = {n: cache._tensor_digest(n, load_file(str(entry / f))["tensor"]) for n, f in manifest["files"].items()}
        manifest["mac"] = cache._mac("a guess at the key", manifest["tensors"], digests)
        (entry / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="jaxunc.checkpoints.cache"):
        rebuilt = cache.cached_params("k", convert, cache_dir=tmp_path)
    assert convert.calls == 2 and "MAC mismatch" in caplog.text
    _assert_same(rebuilt, _params())


def test_the_key_is_not_on_disk(tmp_path):
    cache.cached_params("secret-content-key", Counter(), cache_dir=tmp_path)
    (entry,) = (tmp_path / "params").iterdir()
    assert "secret" not in entry.name
    assert not any(b"secret-content-key" in f.read_bytes() for f in entry.iterdir())


def test_entry_written_under_another_key_is_rejected(tmp_path):
    convert = Counter()
    cache.cached_params("a", convert, cache_dir=tmp_path)
    os.replace(_entry(tmp_path, "a"), _entry(tmp_path, "b"))
    cache.cached_params("b", convert, cache_dir=tmp_path)
    assert convert.calls == 2


def test_a_stream_is_read_and_written_one_tensor_at_a_time(tmp_path):
    """cached_stream yields each converted tensor as it is written, and reads an entry tensor by tensor."""
    seen = []

    def convert():
        for name, array in _params().items():
            seen.append(name)
            yield name, array

    stream = cache.cached_stream("s", convert, cache_dir=tmp_path)
    first_name, _ = next(stream)
    assert seen == [first_name]  # nothing converted ahead of the consumer
    assert dict(stream).keys() == set(_params()) - {first_name}
    assert [n for n, _ in cache.cached_stream("s", convert, cache_dir=tmp_path)] == list(_params())
    assert len(seen) == len(_params())


def test_content_key_follows_content_not_path(tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights v1" * 1000)
    k1 = cache.content_key([src], extra="float32", cache_dir=tmp_path)
    assert k1 == cache.content_key([src], extra="float32", cache_dir=tmp_path)
    assert k1 != cache.content_key([src], extra="bfloat16", cache_dir=tmp_path)
    copy = tmp_path / "copy.bin"
    copy.write_bytes(src.read_bytes())
    assert cache.content_key([copy], extra="float32", cache_dir=tmp_path) == k1
    # Same size, new content and a new mtime: the sidecar entry is stale and the key changes.
    src.write_bytes(b"weights v2" * 1000)
    os.utime(src, ns=(1, 1))
    k2 = cache.content_key([src], extra="float32", cache_dir=tmp_path)
    assert k2 != k1
    assert (tmp_path / "file_hashes.json").is_file()


def test_content_key_uses_sidecar_for_unchanged_files(tmp_path, monkeypatch):
    src = tmp_path / "model.bin"
    src.write_bytes(b"x" * 10_000)
    cache.content_key([src], cache_dir=tmp_path)
    calls = []
    monkeypatch.setattr(cache, "file_sha256", lambda p: calls.append(p) or "0" * 64)
    cache.content_key([src], cache_dir=tmp_path)
    assert calls == []  # (path, size, mtime, ctime, inode) unchanged: not rehashed
    os.chmod(src, 0o600)  # changes ctime only: hashed again (cp -p / rsync -a keep mtime, never ctime)
    cache.content_key([src], cache_dir=tmp_path)
    assert calls == [src]


def test_content_key_matches_sha256_of_contents(tmp_path):
    import hashlib

    src = tmp_path / "f"
    src.write_bytes(os.urandom(3 * (1 << 22) + 5))  # more than one read chunk
    assert cache.file_sha256(src) == hashlib.sha256(src.read_bytes()).hexdigest()


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXUNC_CACHE", str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("JAXUNC_CACHE")
    assert cache.default_cache_dir() == pathlib.Path.home() / ".cache" / "jaxunc"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="key"):
        cache.cached_params("../evil", Counter(), cache_dir=tmp_path)
    with pytest.raises(TypeError, match="dict"):
        cache.cached_params("k", lambda: [1, 2], cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        cache.content_key([tmp_path / "missing.bin"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="empty"):
        cache.content_key([], cache_dir=tmp_path)
