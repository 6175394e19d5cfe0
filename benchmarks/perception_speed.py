"""Images per second of perception on this machine: each embedded component, and the whole
``Perceiver`` in steady state on distinct photos in 1 and 2 worker processes.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/perception_speed.py --out results/perception_speed.json

Components: the three photos scikit-image ships (astronaut 512x512, chelsea 451x300, coffee
600x400), cycled; each component is warmed up once, then timed over ``--repeats`` calls per
image (median per-call time -> images/s). One torch thread (fastest on 2 shared cores). No cache.

Steady state (``--photos N --workers 1 2``): N distinct JPEGs (``mabsa.serve.examples.
distinct_photos``: crops and flips of scikit-image's photos, 400-800 px) perceived by
``Perceiver.perceive`` with the default stages in a pool of spawned worker processes (one thread
each), as ``mabsa perceive --workers`` does; a worker builds its models and perceives one
warm-up image before the clock starts; images/s = N / wall time. *Model load* is the time a
worker takes from constructing the Perceiver to the end of its first perception, less one
steady-state perception time. ``--code DIR`` runs the workers on another checkout's ``src``
(the "before" row: ``git worktree add /tmp/before <commit>`` then ``--code /tmp/before/src``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PIL import Image
from skimage import data

# mabsa is imported inside functions only: the spawned workers re-import this file before their
# initializer may put another checkout first on sys.path (--code)


def timed(fn, inputs, repeats):
    fn(inputs[0])  # warm-up (lazy loads)
    times = []
    for _ in range(repeats):
        for x in inputs:
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"median_s": round(med, 5), "images_per_s": round(1 / med, 2), "calls": len(times)}


def _worker_start(code: str | None, warm_up: bytes) -> None:
    """Pool initializer: build a Perceiver and perceive one photo (timed: the model load)."""
    import sys

    if code:
        sys.path.insert(0, code)  # before mabsa is imported in this process
    from mabsa import perception

    if hasattr(perception, "use_threads"):
        perception.use_threads(1)
    else:  # the "before" checkout: torch only (OpenCV kept its default, every core)
        import torch as worker_torch

        worker_torch.set_num_threads(1)
    Perceiver = perception.Perceiver

    t = time.perf_counter()
    perceiver = Perceiver(cache=None)
    perceiver.perceive(warm_up)
    _WORKER.update(perceiver=perceiver, first_s=time.perf_counter() - t)


_WORKER: dict = {}


def _worker_perceive(photo: bytes) -> float:
    t = time.perf_counter()
    _WORKER["perceiver"].perceive(photo)
    return time.perf_counter() - t


def _worker_first() -> tuple[float, str]:
    import mabsa

    time.sleep(0.5)  # so that each worker gets one of these tasks
    return _WORKER["first_s"], mabsa.__file__


def steady_state(photos: list[bytes], workers: int, code: str | None) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _worker_start, (code, photos[-1])) as pool:
        starts = [pool.submit(_worker_first) for _ in range(workers)]  # starts every worker
        firsts = [f.result() for f in starts]
        t = time.perf_counter()
        per_image = list(pool.map(_worker_perceive, photos[:-1], chunksize=1))
        wall = time.perf_counter() - t
    median = statistics.median(per_image)
    return {
        "workers": workers,
        "photos": len(per_image),
        "images_per_s": round(len(per_image) / wall, 2),
        "median_s_per_image": round(median, 4),
        "model_load_s": round(max(first for first, _ in firsts) - median, 2),
        "code": firsts[0][1],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/perception_speed.json")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--photos", type=int, default=60, help="distinct photos for the steady-state rows")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--code", help="run the steady-state workers on this checkout's src folder")
    ap.add_argument("--steady-only", action="store_true", help="skip the per-component rows")
    args = ap.parse_args()
    from mabsa.perception import use_threads
    from mabsa.serve.examples import distinct_photos

    use_threads(1)

    photos = distinct_photos(args.photos + 1, seed=0)  # the last one warms the workers up
    steady = {f"workers_{w}": steady_state(photos, w, args.code) for w in args.workers}
    for name, row in steady.items():
        print(f"steady state {name}: {row}")
    if args.steady_only:
        write(args, {}, steady)
        return

    from mabsa.encoders.vision import build_vision_encoder
    from mabsa.perception.captions import LabelCaptioner
    from mabsa.perception.faces import AgeGenderEstimator, ExpressionClassifier, FaceAnalyzer, build_face_detector
    from mabsa.perception.interpret import LabelRegionInterpreter
    from mabsa.perception.llm import build_chat_backend, user_message
    from mabsa.perception.perceiver import Perceiver, PerceptionConfig
    from mabsa.perception.regions import ClassicalSegmenter, select_regions
    from mabsa.processing.images import load_image

    arrays = [data.astronaut(), data.chelsea(), data.coffee()]
    pils = [Image.fromarray(a) for a in arrays]
    jpegs = []
    for p in pils:
        buf = io.BytesIO()
        p.save(buf, "JPEG", quality=92)
        jpegs.append(buf.getvalue())
    face_box = [(179, 83, 88, 88)]  # the astronaut's face, for the per-face attribute models
    astronaut = arrays[0]

    results = {}
    r = args.repeats
    results["image_load_jpeg"] = timed(lambda b: load_image(b), jpegs, r)
    enc = build_vision_encoder("efficientnet-lite0")
    results["efficientnet_lite0_features"] = timed(lambda im: enc.encode([im]), pils, r)
    cap = LabelCaptioner()
    results["label_caption"] = timed(cap.caption, pils, r)
    for spec in ("dlib", "opencv"):
        det = build_face_detector(spec)
        results[f"face_detect_{spec}"] = timed(det.detect, arrays, r)
    expr = ExpressionClassifier()
    results["expression_fer_per_face"] = timed(lambda a: expr.predict(a, face_box), [astronaut], 3 * r)
    ag = AgeGenderEstimator()
    results["age_gender_per_face"] = timed(lambda a: ag.predict(a, face_box), [astronaut], 3 * r)
    faces = FaceAnalyzer()
    results["faces_full_pipeline"] = timed(faces.analyze, arrays, r)
    seg = ClassicalSegmenter()
    results["regions_classical_segment+select"] = timed(lambda a: select_regions(seg.propose(a), a), arrays, r)
    interp = LabelRegionInterpreter()
    selected = [select_regions(seg.propose(a), a) for a in arrays]
    pairs = list(zip(pils, selected))
    results["region_interpret_labels"] = timed(lambda p: interp.interpret(p[0], p[1]), pairs, r)
    results["region_interpret_labels"]["regions_per_image"] = round(sum(len(s) for s in selected) / 3, 2)
    perceiver = Perceiver(PerceptionConfig(), cache=None)
    results["perceive_all_uncached"] = timed(perceiver.perceive, jpegs, max(1, r // 2))
    if not args.skip_llm:
        llm = build_chat_backend("smollm2")
        msg = [
            [
                user_message(
                    "A region of a photo shows a tabby cat on a window sill. In one sentence, "
                    "say what feeling it conveys."
                )
            ]
        ]
        results["smollm2_chat_30_tokens"] = timed(lambda m: llm.chat(m, max_tokens=30), msg, 3)
        results["smollm2_chat_30_tokens"]["note"] = "calls/s (one chat turn of <= 30 new tokens), not images/s"

    for k, v in results.items():
        print(f"{k:36s} {v['images_per_s']:8.2f} /s   (median {v['median_s'] * 1000:.1f} ms)")
    write(args, results, steady)


def write(args, components: dict, steady: dict) -> None:
    import sys

    from mabsa.engine.reports import machine

    report = {
        "machine": machine(note="cores shared with other jobs: a load average above 2 slows every number"),
        "inputs": {
            "components": "skimage astronaut 512x512, chelsea 451x300, coffee 600x400 (cycled)",
            "steady_state": f"{args.photos} distinct photos (mabsa.serve.examples.distinct_photos, seed 0)",
        },
        "command": "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/perception_speed.py " + " ".join(sys.argv[1:]),
        "components": components,
        "steady_state": steady,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
