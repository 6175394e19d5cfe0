"""Wait for a server's ``/readyz`` (used by the benchmark and the tests)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request


def wait_ready(base: str, timeout: float = 120.0, process: subprocess.Popen | None = None) -> None:
    """Return once ``GET {base}/readyz`` answers 200; fail after ``timeout`` seconds or as soon
    as ``process`` (the server, if we started it) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} was not ready within {timeout:g} s")
