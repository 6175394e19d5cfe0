"""50 concurrent clients against a real server on 127.0.0.1 (bounded), and a soak with malformed
requests mixed in: the benchmark's own code, at a small scale."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import httpx
import pytest

from mabsa.serve import Limits, ServeConfig, create_app
from serve_support import running_server, tiny_checkpoint

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = create_app(
        ServeConfig(
            checkpoints={"tiny": str(tiny_checkpoint(tmp_path_factory))},
            limits=Limits(max_body_bytes=1024 * 1024),
            evidence=None,
        )
    )
    with running_server(app) as base:
        yield base


def test_fifty_concurrent_clients_no_errors(server, bench):
    texts = ["Chuck Bass is everything # MCM", "Great game by Federer at Wimbledon today"]
    report = asyncio.run(bench.run_phase(server, texts, clients=50, requests=150, max_seconds=60))
    assert report["errors"] == 0, report["error_examples"]
    assert report["requests_sent"] == 150 and report["valid_ok"] == 150
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    sizes = httpx.get(f"{server}/v1/stats").json()["models"]["tiny"]["batch_sizes"]
    assert max(int(k) for k in sizes) > 1  # concurrent requests shared model calls


def test_soak_with_malformed_requests_keeps_serving(server, bench, monkeypatch):
    # The server here allows 1 MiB bodies: send 2 MiB as the oversized one.
    build, status = bench.MALFORMED["oversized_body"]
    monkeypatch.setitem(
        bench.MALFORMED,
        "oversized_body",
        (lambda t: {"content": b"x" * (2 * 1024 * 1024), "headers": {"content-type": "application/json"}}, status),
    )
    report = asyncio.run(
        bench.run_phase(
            server,
            ["Obama meets Merkel in Berlin"],
            clients=50,
            requests=200,
            max_seconds=60,
            malformed_ratio=0.4,
            seed=3,
        )
    )
    assert report["errors"] == 0, report["error_examples"]
    malformed = {k: v for k, v in report["outcomes"].items() if k != "valid"}
    assert len(malformed) >= 6 and sum(sum(c.values()) for c in malformed.values()) >= 50
    for kind, counts in malformed.items():
        assert set(counts) == {str(bench.MALFORMED[kind][1])}, (kind, counts)
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.post(f"{server}/v1/predict", json={"text": "still here"}).status_code == 200
