"""Load benchmark of ``mabsa serve``: concurrent clients on 127.0.0.1, then a soak with malformed
requests mixed in. Bounded in request count and in time.

    python benchmarks/serve_load.py --checkpoint checkpoints/text-crf_twitter2015_jmasa \
        --clients 50 --requests 2000 --soak-requests 1000 --output results/serve_load.json
    python benchmarks/serve_load.py --checkpoint checkpoints/text-crf_twitter2015_jmasa --images \
        --clients 10 50 --requests 300 --soak-requests 200 --output results/serve_load_images.json

With ``--images`` every valid post carries its own photo (``mabsa.serve.examples.distinct_photos``:
no two requests share an image, so no perception is answered from a cache) and the server runs
with image evidence (faces, caption, regions, alignment; ``--perception-workers`` processes).

Starts ``python -m mabsa.serve`` as its own process (or uses ``--url``), waits for ``/readyz``,
runs the phases, stops the server. Reports latency p50/p95/p99, throughput, the error count
(a valid request not answered 200, or a malformed one not answered its 4xx) and the model's
micro-batch sizes. Post texts are the twitter2015 test posts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from mabsa.engine.reports import machine
from mabsa.serve.probe import wait_ready

#: name -> (request kwargs builder, expected status). Each is a mistake a client can make.
MALFORMED = {
    "no_text": (lambda t: {"json": {"image_base64": None}}, 422),
    "blank_text": (lambda t: {"json": {"text": "   "}}, 422),
    "bad_json": (lambda t: {"content": b'{"text": ', "headers": {"content-type": "application/json"}}, 400),
    "bad_image": (lambda t: {"json": {"text": t, "image_base64": base64.b64encode(b"not an image").decode()}}, 422),
    "bad_base64": (lambda t: {"json": {"text": t, "image_base64": "%%%"}}, 422),
    "text_too_long": (lambda t: {"json": {"text": "word " * 1000}}, 422),
    "unknown_model": (lambda t: {"json": {"text": t, "model": "no-such-model"}}, 404),
    "wrong_media_type": (lambda t: {"content": t.encode(), "headers": {"content-type": "text/plain"}}, 415),
    "oversized_body": (
        lambda t: {"content": b"x" * (9 * 1024 * 1024), "headers": {"content-type": "application/json"}},
        413,
    ),
}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_phase(
    base: str,
    texts: list[str],
    clients: int,
    requests: int,
    max_seconds: float,
    malformed_ratio: float = 0.0,
    seed: int = 0,
    photos: list[str] | None = None,
) -> dict[str, Any]:
    """``clients`` concurrent loops share ``requests`` posts; stops early after ``max_seconds``.
    With ``photos`` (base64 JPEGs), valid post i carries photo i."""
    rng = random.Random(seed)
    plan = []
    for i in range(requests):
        text = texts[i % len(texts)]
        if rng.random() < malformed_ratio:
            kind = rng.choice(sorted(MALFORMED))
            build, expected = MALFORMED[kind]
            plan.append((kind, build, text, expected))
        elif photos:
            photo = photos[i % len(photos)]
            plan.append(("valid", lambda t, photo=photo: {"json": {"text": t, "image_base64": photo}}, text, 200))
        else:
            plan.append(("valid", lambda t: {"json": {"text": t}}, text, 200))
    next_index = 0
    latencies: list[float] = []
    outcomes: dict[str, dict[str, int]] = {}
    failures: list[str] = []
    deadline = time.monotonic() + max_seconds
    # Idle connections expire on the client (1 s) well before the server drops them (uvicorn's
    # timeout_keep_alive, 5 s): with equal timeouts a request can go out on a connection the server
    # is closing at that moment and fail with ReadError, which is a client-side race, not an error.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=1.0)

    async def client_loop(client: httpx.AsyncClient):
        nonlocal next_index
        while next_index < len(plan) and time.monotonic() < deadline:
            kind, build, text, expected = plan[next_index]
            next_index += 1
            kwargs = build(text)  # built when sent: an oversized body lives only this long
            t0 = time.perf_counter()
            try:
                r = await client.post(f"{base}/v1/predict", **kwargs)
                status = r.status_code
                ok = status == expected and (status == 200 or r.json()["error"]["code"])
            except (httpx.HTTPError, ValueError, KeyError) as e:
                status, ok = type(e).__name__, False
            elapsed = (time.perf_counter() - t0) * 1000
            if kind == "valid" and status == 200:
                latencies.append(elapsed)
            counts = outcomes.setdefault(kind, {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            if not ok:
                failures.append(f"{kind}: got {status}, expected {expected}")

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    wall = time.perf_counter() - started
    sent = sum(sum(c.values()) for c in outcomes.values())
    return {
        "clients": clients,
        "requests_planned": requests,
        "requests_sent": sent,
        "stopped_by_time_limit": sent < requests,
        "wall_s": round(wall, 2),
        "throughput_rps": round(sent / wall, 1) if wall else None,
        "valid_ok": len(latencies),
        "latency_ms": {
            name: None if v is None else round(v, 1)
            for name, v in (
                ("p50", percentile(latencies, 0.50)),
                ("p95", percentile(latencies, 0.95)),
                ("p99", percentile(latencies, 0.99)),
                ("max", max(latencies) if latencies else None),
                ("mean", statistics.fmean(latencies) if latencies else None),
            )
        },
        "errors": len(failures),
        "error_examples": failures[:10],
        "outcomes": outcomes,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_texts(limit: int = 500) -> list[str]:
    from mabsa.data import load_dataset

    return [p.text for p in load_dataset("twitter2015", "test", image_texts=False)[:limit]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="served by a server this script starts")
    ap.add_argument("--url", help="an already running server instead")
    ap.add_argument("--clients", type=int, nargs="+", default=[50], help="one load phase per value")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--soak-requests", type=int, default=1000)
    ap.add_argument("--malformed", type=float, default=0.25, help="share of malformed requests in the soak")
    ap.add_argument("--max-seconds", type=float, default=180, help="time limit of each phase")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--images", action="store_true", help="a distinct photo per valid post, image evidence on")
    ap.add_argument("--perception-workers", type=int, default=2)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    if bool(args.checkpoint) == bool(args.url):
        ap.error("give --checkpoint or --url")

    process = None
    base = args.url
    if args.checkpoint:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "mabsa.serve",
            "--checkpoint",
            args.checkpoint,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            *(["--perception-workers", str(args.perception_workers)] if args.images else ["--no-evidence"]),
            "--max-batch",
            str(args.max_batch),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        texts = post_texts()
        # the photos of the warm-up, of each load phase and of the soak (None: text only)
        warm, phases, photos = None, [None] * len(args.clients), None
        if args.images:  # made while the server loads; seed 1 for the warm-up, 2 onwards per phase
            from mabsa.serve.examples import distinct_photos

            def encoded(n: int, seed: int) -> list[str]:
                return [base64.b64encode(p).decode() for p in distinct_photos(n, seed)]

            warm = encoded(8, 1)
            phases = [encoded(args.requests, 2 + i) for i in range(len(args.clients))]
            photos = encoded(args.soak_requests, 2 + len(args.clients))
        wait_ready(base, 300, process)
        asyncio.run(run_phase(base, texts, 4, 8 if args.images else 40, 60, photos=warm))
        load = [
            asyncio.run(run_phase(base, texts, n, args.requests, args.max_seconds, photos=phase))
            for n, phase in zip(args.clients, phases)
        ]
        soak = asyncio.run(
            run_phase(
                base,
                texts,
                args.clients[-1],
                args.soak_requests,
                args.max_seconds,
                malformed_ratio=args.malformed,
                seed=1,
                photos=photos,
            )
        )
        after = httpx.post(f"{base}/v1/predict", json={"text": texts[0]}, timeout=30)
        stats = httpx.get(f"{base}/v1/stats", timeout=10).json()
        models = httpx.get(f"{base}/v1/models", timeout=10).json()
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    sizes = next(iter(stats["models"].values()))["batch_sizes"]
    n_batches = sum(sizes.values())
    report = {
        "command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "server": {
            "url": base,
            "models": models["models"],
            "evidence": models["evidence"],
            "max_batch": args.max_batch,
            "torch_threads": 1,
            "images": "a distinct photo per valid post" if args.images else None,
        },
        "machine": machine(),
        "load": load if len(load) > 1 else load[0],
        "soak": soak,
        "serving_after_soak": after.status_code == 200,
        "micro_batches": {
            "count": n_batches,
            "mean_size": round(sum(int(k) * v for k, v in sizes.items()) / n_batches, 2) if n_batches else None,
            "sizes": sizes,
        },
        "perception_batches": stats.get("perception"),
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
