"""ImageNet labels of images and region crops: EfficientNet-Lite0 run by ONNX Runtime.

The embedded captioner, the region interpreter and the perceiver's ``labels`` all name what
EfficientNet-Lite0 sees. Eager PyTorch runs it at ~60-120 ms per 224 px image on one CPU
thread (its depthwise convolutions take a slow path, batch norm is not folded); ONNX Runtime
runs the same graph, exported from the installed weights, in ~20 ms (benchmarks/perception_speed.py).
The graph is exported once per environment, next to the other installed models
(:func:`mabsa.embedded.models_dir`), when ``mabsa models install efficientnet-lite0`` runs or else
on first use; where that folder is read-only, it is exported for the process alone.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mabsa.embedded import models_dir
from mabsa.encoders.vision import EfficientNetLite0Encoder, efficientnet_pixels, imagenet_label

#: The exported graph's file name: opset and input size are part of what it is.
GRAPH_NAME = "efficientnet-lite0-imagenet-224-opset17.onnx"
#: Crops per ONNX Runtime call (bounds the memory of a large batch of regions).
MAX_BATCH = 32


def export_graph(path: Path) -> None:
    """Write EfficientNet-Lite0's ImageNet logits ``[B, 1000]`` for pixels ``[B, 3, 224, 224]``
    as an ONNX graph to ``path``."""
    encoder = EfficientNetLite0Encoder().eval()

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.encoder.classify(pixels)

    example = torch.zeros(1, 3, encoder.image_size, encoder.image_size)
    with warnings.catch_warnings():  # the exporter's notes on constant folding are not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Classifier().eval(),
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed
        )


def install_graph() -> Path:
    """Export the graph into the models folder unless it is there (atomic: a killed export
    leaves no partial file; two processes exporting at once write the same bytes)."""
    target = models_dir() / GRAPH_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".onnx-", dir=target.parent)
        os.close(fd)
        try:
            export_graph(Path(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


class ImageNetLabeler:
    """Top-k ImageNet labels (first WordNet synonym) with softmax probabilities, per image."""

    id = "efficientnet-lite0"

    def __init__(self, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # as many threads as torch is allowed (the CLI and the pool workers set that number)
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            graph = install_graph().read_bytes()
        except OSError:  # a read-only environment: export for this process only
            with tempfile.TemporaryDirectory() as tmp:
                export_graph(Path(tmp) / GRAPH_NAME)
                graph = (Path(tmp) / GRAPH_NAME).read_bytes()
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = [
            self.session.run(None, {"pixels": efficientnet_pixels(images[i : i + MAX_BATCH])})[0]
            for i in range(0, len(images), MAX_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, 1000), np.float32)

    def top_labels(self, images: Sequence[Image.Image], k: int = 5) -> list[list[tuple[str, float]]]:
        logits = self.logits(images).astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return [[(imagenet_label(int(i)), float(row[i])) for i in ids] for row, ids in zip(probs, top)]


@lru_cache(maxsize=1)
def shared_labeler() -> ImageNetLabeler:
    """One labeler per process (captions, region interpretations, the perceiver's labels)."""
    return ImageNetLabeler()
