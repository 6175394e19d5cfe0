"""Images per second of each embedded perception component on this machine.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/perception_speed.py --out results/perception_speed.json

Inputs: the three photos scikit-image ships (astronaut 512x512, chelsea 451x300, coffee 600x400),
cycled. Each component is warmed up once, then timed over ``--repeats`` calls per image (median
per-call time -> images/s). One torch thread (fastest on 2 shared cores). No cache.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from PIL import Image
from skimage import data

from mabsa.engine.reports import machine


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/perception_speed.json")
    ap.add_argument("--skip-llm", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

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

    report = {
        "machine": machine(note="cores shared with other jobs: a load average above 2 slows every number"),
        "inputs": "skimage astronaut 512x512, chelsea 451x300, coffee 600x400 (cycled)",
        "command": "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/perception_speed.py",
        "components": results,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    for k, v in results.items():
        print(f"{k:36s} {v['images_per_s']:8.2f} /s   (median {v['median_s'] * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
