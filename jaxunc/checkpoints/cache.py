"""On-disk cache of converted parameters, keyed by the content of the source checkpoint files.

Layout under the cache dir ($JAXUNC_CACHE or ~/.cache/jaxunc):
  file_hashes.json          sidecar: resolved path -> {size, mtime_ns, ctime_ns, inode, sha256}, so big
                            files are hashed once (a file whose identity changed is hashed again)
  params/<name>.safetensors converted params, name = entry_name(key); the safetensors metadata holds a
                            JSON manifest (names, shapes, logical dtypes) and `mac`

Verification: `mac` = HMAC-SHA256 over the manifest and every tensor's bytes (in name order), keyed
by the content key, which is recomputed from the checkpoint files at every load and never stored in
the entry (its file name is a one-way hash of it). An entry is used only when its MAC verifies; a
truncated, garbled or edited entry (an edited tensor with a recomputed checksum or manifest
included) is rebuilt from the checkpoint.

What this trusts: the sidecar (a checkpoint file whose path, size, mtime, ctime and inode are
unchanged is taken as unchanged without rehashing) and whoever can write the cache directory and
knows this scheme: the sidecar's file hashes are enough to recompute a content key, so a deliberate
forger with write access to the cache can still produce an entry that verifies. Treat the cache
directory like the code you run; `rm -r` it (or set $JAXUNC_CACHE) to start afresh.

Files are written to a temporary name and renamed with os.replace, so a reader never sees half a file.
Dtypes safetensors may not store (ml_dtypes bfloat16, float8...) are stored as the unsigned-integer
view of the same width; the manifest records the logical dtype.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pathlib
import re
import tempfile
from collections.abc import Callable, Iterable

import ml_dtypes
import numpy as np

log = logging.getLogger(__name__)

CACHE_FORMAT = "jaxunc-params-v2"
_MANIFEST_KEY = "jaxunc_manifest"
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
    """The cache file's name for a content key: a one-way hash, so the key is not on disk."""
    return hashlib.sha256(b"jaxunc-cache-entry\0" + key.encode()).hexdigest()[:40]


def _mac(key: str, manifest: dict, arrays: dict[str, np.ndarray]) -> str:
    """HMAC-SHA256 keyed by the content key over the manifest (without `mac`) and the tensors' bytes."""
    mac = hmac.new(key.encode(), digestmod=hashlib.sha256)
    mac.update(json.dumps({k: v for k, v in manifest.items() if k != "mac"}, sort_keys=True).encode())
    for name in sorted(arrays):
        mac.update(name.encode() + b"\0")
        mac.update(memoryview(np.ascontiguousarray(arrays[name])).cast("B"))
    return mac.hexdigest()


def _manifest(key: str, params: dict[str, np.ndarray], stored: dict[str, np.ndarray]) -> dict:
    manifest = {
        "format": CACHE_FORMAT,
        "tensors": {n: {"shape": list(a.shape), "dtype": a.dtype.name} for n, a in sorted(params.items())},
    }
    return {**manifest, "mac": _mac(key, manifest, stored)}


def _write(path: pathlib.Path, key: str, params: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    stored = {name: _storable(array) for name, array in params.items()}
    manifest = _manifest(key, params, stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(stored, tmp, metadata={_MANIFEST_KEY: json.dumps(manifest)})
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: pathlib.Path, key: str) -> dict[str, np.ndarray]:
    """Load and verify a cache file; raises ValueError saying what is wrong."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="np") as handle:
            manifest = json.loads((handle.metadata() or {})[_MANIFEST_KEY])
        stored = load_file(str(path))
    except Exception as err:  # truncated or garbled file: safetensors / json raise various errors
        raise ValueError(f"unreadable ({type(err).__name__}: {err})") from err
    if manifest.get("format") != CACHE_FORMAT:
        raise ValueError(f"manifest format {manifest.get('format')} is not {CACHE_FORMAT}")
    entries = manifest.get("tensors", {})
    if set(entries) != set(stored):
        raise ValueError(f"manifest lists {len(entries)} tensors, file holds {len(stored)} (names differ)")
    if not hmac.compare_digest(_mac(key, manifest, stored), str(manifest.get("mac"))):
        raise ValueError("MAC mismatch: the entry was not written from this checkpoint, or changed since")
    params = {}
    for name, entry in entries.items():
        array = stored[name]
        dtype = _logical_dtype(entry["dtype"])
        if array.dtype != dtype:
            array = array.view(dtype)
        if list(array.shape) != entry["shape"]:
            raise ValueError(f"tensor {name!r} has shape {list(array.shape)}, manifest says {entry['shape']}")
        params[name] = array
    return params


def cached_params(
    key: str,
    convert: Callable[[], dict[str, np.ndarray]],
    cache_dir: pathlib.Path | None = None,
) -> dict[str, np.ndarray]:
    """Params for `key` from the cache, or `convert()` (then stored) on a miss or a bad cache file."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", key or ""):
        raise ValueError(f"cached_params: key {key!r} must be a non-empty file-name-safe string (see content_key)")
    path = (cache_dir or default_cache_dir()) / "params" / f"{entry_name(key)}.safetensors"
    if path.exists():
        try:
            params = _read(path, key)
            log.info("param cache hit: %s", path)
            return params
        except ValueError as err:
            log.warning("param cache file %s is stale or corrupt (%s); rebuilding", path, err)
            path.unlink(missing_ok=True)
    else:
        log.info("param cache miss: %s", path)
    params = convert()
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in params.items()
    ):
        raise TypeError("cached_params: convert() must return dict[str, np.ndarray]")
    try:
        _write(path, key, params)
    except OSError as err:
        log.warning("could not write the param cache %s: %s (continuing without it)", path, err)
    return params
