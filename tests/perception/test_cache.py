import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mabsa.perception.cache import DiskCache, cache_key


def test_key_is_stable_and_sensitive():
    assert cache_key("abc", "faces:dlib", {"a": 1, "b": 2}) == cache_key("abc", "faces:dlib", {"b": 2, "a": 1})
    assert cache_key("abc", "faces:dlib", {"a": 1}) != cache_key("abc", "faces:opencv", {"a": 1})
    assert cache_key("abc", "x", {"prompt": "p"}) != cache_key("abd", "x", {"prompt": "p"})


def test_hit_miss_and_layout(tmp_path):
    cache = DiskCache(tmp_path)
    key = cache_key("img", "backend")
    calls = []
    compute = lambda: calls.append(1) or {"caption": "a cat"}
    assert cache.get_or_compute("caption", key, compute) == {"caption": "a cat"}
    assert cache.get_or_compute("caption", key, compute) == {"caption": "a cat"}
    assert calls == [1] and (cache.hits, cache.misses) == (1, 1)
    assert cache.path("caption", key) == tmp_path / "caption" / key[:2] / f"{key}.json"
    assert json.loads(cache.path("caption", key).read_text()) == {"caption": "a cat"}


def test_arrays_roundtrip_and_corrupt_entries_are_misses(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put_arrays("features", "k1", {"tokens": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert cache.get_arrays("features", "k1")["tokens"].tolist() == [[0, 1, 2], [3, 4, 5]]
    cache.path("features", "k1", ".npz").write_bytes(b"PK\x03\x04 broken")
    cache.path("faces", "k2").parent.mkdir(parents=True)
    cache.path("faces", "k2").write_text('{"half": ')
    assert cache.get_arrays("features", "k1") is None and cache.get("faces", "k2") is None
    assert not cache.path("faces", "k2").exists()  # dropped, will be recomputed


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from mabsa.perception.cache import DiskCache
    def stall(fd):  # the data is written but not yet renamed into place
        print("writing", flush=True)
        time.sleep(60)
    os.fsync = stall
    DiskCache(sys.argv[1]).put("faces", "k", {"value": "new" * 100000})
""")


def test_a_kill_during_a_write_never_leaves_a_corrupt_entry(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put("faces", "k", {"value": "old"})
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert cache.get("faces", "k") == {"value": "old"}  # old entry intact, no half-new one
    assert cache.clean() == 1 and cache.clean() == 0  # the temporary is swept
    cache.put("faces", "k", {"value": "new"})
    assert cache.get("faces", "k") == {"value": "new"}


def test_kill_before_first_write_leaves_a_miss(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.kill()
    child.wait(timeout=30)
    assert DiskCache(tmp_path).get("faces", "k") is None


def test_failed_write_cleans_its_temporary(tmp_path, monkeypatch):
    import os

    cache = DiskCache(tmp_path)

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cache.put("faces", "k", {"v": 1})
    assert list((tmp_path / "faces").rglob("*")) == [tmp_path / "faces" / "k"]  # only the folder
