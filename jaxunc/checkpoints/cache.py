"""On-disk cache of converted parameters, keyed by the content of the source checkpoint files.

Layout under the cache dir ($JAXUNC_CACHE or ~/.cache/jaxunc):
  file_hashes.json          sidecar: resolved path -> {size, mtime_ns, ctime_ns, inode, sha256}, so big
                            files are hashed once (a file whose identity changed is hashed again)
  params/<name>/            one entry, name = entry_name(key): manifest.json (names, shapes, logical
                            dtypes, file of each tensor, `mac`) and one safetensors file per tensor,
                            written and read one tensor at a time

Verification: `mac` = HMAC-SHA256 over the manifest and every tensor's sha256 (in name order), keyed
by the content key, which is recomputed from the checkpoint files at every load and never stored in
the entry (its name is a one-way hash of it). An entry is used only when its MAC verifies; a
truncated, garbled or edited entry (an edited tensor with a recomputed checksum or manifest
included) is rebuilt from the checkpoint.

What this trusts: the sidecar (a checkpoint file whose path, size, mtime, ctime and inode are
unchanged is taken as unchanged without rehashing) and whoever can write the cache directory and
knows this scheme: the sidecar's file hashes are enough to recompute a content key, so a deliberate
forger with write access to the cache can still produce an entry that verifies. Treat the cache
directory like the code you run; `rm -r` it (or set $JAXUNC_CACHE) to start afresh.

An entry is written into a temporary folder renamed with os.replace when complete, so a reader never
sees half an entry.
Dtypes safetensors may not store (ml_dtypes bfloat16, float8...) are stored as the unsigned-integer
view of the same width; the manifest records the logical dtype.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator

import ml_dtypes
import numpy as np

log = logging.getLogger(__name__)

CACHE_FORMAT = "jaxunc-params-v2"
_CHUNK = 1 << 22
_NATIVE_KINDS = "biuf"  # bool, int, uint, float: stored as-is by safetensors.numpy


def default_cache_dir() -> pathlib.Path:
    """$JAXUNC_CACHE if set, else ~/.cache/jaxunc."""
    return pathlib.Path(os.environ.get("JAXUNC_CACHE") or "~/.cache/jaxunc").expanduser()


def _atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: pathlib.Path) -> str:
    """sha256 hex digest of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _load_sidecar(sidecar: pathlib.Path) -> dict:
    try:
        data = json.loads(sidecar.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def content_key(paths: Iterable[str | os.PathLike], extra: str = "", cache_dir: pathlib.Path | None = None) -> str:
    """sha256 over (format, sha256 of each file's content in the given order, extra).

    Paths do not enter the key (a moved file keeps its key); `extra` should name everything else the
    conversion depends on (dtype, key-map version). Per-file hashes are remembered in a sidecar keyed
    by the resolved path and checked against (size, mtime_ns, ctime_ns, inode).
    """
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise ValueError("content_key: `paths` is empty; give the checkpoint files the params come from")
    sidecar = (cache_dir or default_cache_dir()) / "file_hashes.json"
    known = _load_sidecar(sidecar)
    changed = False
    key = hashlib.sha256(CACHE_FORMAT.encode())
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"content_key: {path} is not a file")
        stat = path.stat()
        ident = str(path.resolve())
        identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
                    "inode": stat.st_ino}
        entry = known.get(ident)
        if not (isinstance(entry, dict) and all(entry.get(k) == v for k, v in identity.items())):
            entry = {**identity, "sha256": file_sha256(path)}
            known[ident] = entry
            changed = True
        key.update(b"\0file\0" + entry["sha256"].encode())
    key.update(b"\0extra\0" + extra.encode())
    if changed:
        try:
            _atomic_write_bytes(sidecar, json.dumps(known, indent=0, sort_keys=True).encode())
        except OSError as err:
            log.warning("could not update the file-hash sidecar %s: %s", sidecar, err)
    return key.hexdigest()


def _storable(array: np.ndarray) -> np.ndarray:
    """The array safetensors.numpy stores: itself, or its unsigned-integer view for ml_dtypes types."""
    array = np.ascontiguousarray(array)
    if array.dtype.kind in _NATIVE_KINDS:
        return array
    return array.view(np.dtype(f"uint{8 * array.dtype.itemsize}"))


def _logical_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)


def entry_name(key: str) -> str:
    """The cache entry's name for a content key: a one-way hash, so the key is not on disk."""
    return hashlib.sha256(b"jaxunc-cache-entry\0" + key.encode()).hexdigest()[:40]


def _tensor_digest(name: str, stored: np.ndarray) -> str:
    return hashlib.sha256(name.encode() + b"\0" + memoryview(np.ascontiguousarray(stored)).cast("B")).hexdigest()


def _mac(key: str, tensors: dict[str, dict], digests: dict[str, str]) -> str:
    """HMAC-SHA256 keyed by the content key over the format, the tensors' names, shapes and dtypes,
    and each tensor's sha256 (in name order)."""
    mac = hmac.new(key.encode(), digestmod=hashlib.sha256)
    mac.update(json.dumps({"format": CACHE_FORMAT, "tensors": tensors}, sort_keys=True).encode())
    for name in sorted(digests):
        mac.update(name.encode() + b"\0" + digests[name].encode())
    return mac.hexdigest()


class CacheInvalid(ValueError):
    """A cache entry that is truncated, garbled, edited, or not written from this checkpoint."""


class CacheEntry:
    """params/<entry_name(key)>/: manifest.json plus one safetensors file per tensor, so that an entry
    is written and read one tensor at a time (host memory holds one tensor, never the model)."""

    def __init__(self, key: str, cache_dir: pathlib.Path | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", key or ""):
            raise ValueError(f"cache key {key!r} must be a non-empty file-name-safe string (see content_key)")
        self.key = key
        self.path = (cache_dir or default_cache_dir()) / "params" / entry_name(key)

    @property
    def exists(self) -> bool:
        return (self.path / "manifest.json").is_file()

    def read(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (name, array) in the manifest's order; CacheInvalid when any check fails, at the
        latest after the last tensor (the MAC covers them all)."""
        from safetensors.numpy import load_file

        try:
            manifest = json.loads((self.path / "manifest.json").read_text())
            tensors, files = manifest["tensors"], manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CacheInvalid(f"manifest unreadable ({type(err).__name__}: {err})") from None
        if manifest.get("format") != CACHE_FORMAT or set(files) != set(tensors):
            raise CacheInvalid(f"manifest format {manifest.get('format')} is not {CACHE_FORMAT}, or lists other files")
        digests = {}
        for name in files:
            try:
                stored = load_file(str(self.path / files[name]))["tensor"]
            except Exception as err:  # truncated or garbled file: safetensors raises its own errors
                raise CacheInvalid(f"tensor {name!r} unreadable ({type(err).__name__}: {err})") from None
            digests[name] = _tensor_digest(name, stored)
            entry, dtype = tensors[name], _logical_dtype(tensors[name]["dtype"])
            array = stored.view(dtype) if stored.dtype != dtype else stored
            if list(array.shape) != entry["shape"]:
                raise CacheInvalid(f"tensor {name!r} has shape {list(array.shape)}, manifest says {entry['shape']}")
            yield name, array
        if not hmac.compare_digest(_mac(self.key, tensors, digests), str(manifest.get("mac"))):
            raise CacheInvalid("MAC mismatch: the entry was not written from this checkpoint, or changed since")

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    @contextlib.contextmanager
    def writer(self):
        """Context manager yielding `add(name, array)`; the entry appears (atomically) only if the block
        completes; on any error nothing is left behind."""
        from safetensors.numpy import save_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
        tensors, files, digests = {}, {}, {}

        def add(name: str, array: np.ndarray) -> None:
            stored = _storable(array)
            files[name] = f"t{len(files):05d}.safetensors"
            save_file({"tensor": stored}, str(tmp / files[name]))
            tensors[name] = {"shape": list(array.shape), "dtype": array.dtype.name}
            digests[name] = _tensor_digest(name, stored)

        try:
            yield add
            manifest = {"format": CACHE_FORMAT, "tensors": tensors, "files": files,
                        "mac": _mac(self.key, tensors, digests)}
            (tmp / "manifest.json").write_text(json.dumps(manifest))
            self.discard()
            os.replace(tmp, self.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def cached_stream(key: str, convert: Callable[[], Iterable[tuple[str, np.ndarray]]],
                  cache_dir: pathlib.Path | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) pairs for `key`: from a valid cache entry, else from `convert()` while writing the
    entry. An entry found invalid part-way (CacheInvalid) is discarded and re-raised: the caller
    starts again, and the second pass converts."""
    entry = CacheEntry(key, cache_dir)
    if entry.exists:
        log.info("param cache hit: %s", entry.path)
        try:
            yield from entry.read()
            return
        except CacheInvalid as err:
            log.warning("param cache entry %s is stale or corrupt (%s); rebuilding", entry.path, err)
            entry.discard()
            raise
    log.info("param cache miss: %s", entry.path)
    try:
        with entry.writer() as add:
            for name, array in convert():
                if not isinstance(name, str) or not isinstance(array, np.ndarray):
                    raise TypeError("convert() must yield (str, np.ndarray) pairs")
                add(name, array)
                yield name, array
    except OSError as err:  # a cache that cannot be written is not an error of the run
        log.warning("could not write the param cache %s: %s (continuing without it)", entry.path, err)


def cached_params(
    key: str,
    convert: Callable[[], dict[str, np.ndarray]],
    cache_dir: pathlib.Path | None = None,
) -> dict[str, np.ndarray]:
    """Params for `key` from the cache, or `convert()` (then stored) on a miss or a bad cache entry."""
    def pairs():
        params = convert()
        if not isinstance(params, dict):
            raise TypeError("cached_params: convert() must return dict[str, np.ndarray]")
        return params.items()

    try:
        return dict(cached_stream(key, pairs, cache_dir))
    except CacheInvalid:
        return dict(cached_stream(key, pairs, cache_dir))
