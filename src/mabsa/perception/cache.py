"""On-disk cache for everything expensive: keyed by image-bytes hash + backend id + config.

Layout: ``<root>/<kind>/<key[:2]>/<key>.json`` (or ``.npz`` for arrays), where ``kind`` is the
output type (``faces``, ``caption``, ``regions``, ``features``, ``chat`` ...) and ``key`` is the
sha256 of the JSON list ``[image digest, backend id, config]``. Writes go to a temporary file in
the same folder, are fsync'ed and then renamed over the target (atomic on POSIX), so a killed
process leaves either the old entry or none, never a half-written one; stray temporaries are
ignored by readers and swept by :meth:`DiskCache.clean`. A run that is stopped resumes by
skipping every entry already present.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_TMP_SUFFIX = ".tmp"


def cache_key(*parts: Any) -> str:
    """Stable key of JSON-able parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class DiskCache:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str, suffix: str = ".json") -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    # -- JSON values ------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.misses += 1
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):  # written by something else: drop it
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, kind: str, key: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self._write_atomic(self.path(kind, key), data)

    def get_or_compute(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        value = self.get(kind, key)
        if value is None:
            value = compute()
            self.put(kind, key, value)
        return value

    # -- arrays -----------------------------------------------------------------------------
    def get_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(kind, key, ".npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def put_arrays(self, kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
        self._write_atomic(self.path(kind, key, ".npz"), buf.getvalue())

    def contains(self, kind: str, key: str, suffix: str = ".json") -> bool:
        return self.path(kind, key, suffix).is_file()

    # -- housekeeping -----------------------------------------------------------------------
    def _write_atomic(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clean(self) -> int:
        """Remove temporaries that a killed writer left behind; returns how many."""
        stale = list(self.root.rglob(f".*{_TMP_SUFFIX}")) if self.root.is_dir() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)
