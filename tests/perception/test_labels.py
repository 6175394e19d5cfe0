import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from mabsa.encoders.vision import EfficientNetLite0Encoder
from mabsa.perception import labels as labels_module
from mabsa.perception.labels import GRAPH_NAME, ImageNetLabeler, shared_labeler


@pytest.fixture(scope="module")
def photos():
    return [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee()), Image.fromarray(data.astronaut())]


def test_labels_on_real_photos(photos):
    chelsea, coffee, _ = shared_labeler().top_labels(photos, k=5)
    assert any("cat" in name or name == "tabby" for name, _ in chelsea)
    assert coffee[0][0] == "espresso" and coffee[0][1] > 0.8
    assert all(p1 >= p2 for (_, p1), (_, p2) in zip(chelsea, chelsea[1:]))


def test_onnx_graph_computes_what_the_pytorch_encoder_computes(photos):
    encoder = EfficientNetLite0Encoder().eval()
    with torch.no_grad():
        expected = encoder.classify(encoder.preprocess(photos)).numpy()
    got = shared_labeler().logits(photos)
    assert got.shape == (3, 1000)
    assert np.abs(got - expected).max() < 1e-3
    assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_batches_are_split_and_order_is_kept(photos, monkeypatch):
    labeler = shared_labeler()
    one_by_one = np.concatenate([labeler.logits([p]) for p in photos])
    monkeypatch.setattr(labels_module, "MAX_BATCH", 2)  # 3 images -> calls of 2 and 1
    assert np.allclose(labeler.logits(photos), one_by_one, atol=1e-4)
    assert labeler.logits([]).shape == (0, 1000)


def test_graph_is_exported_once_into_the_models_folder(tmp_path, monkeypatch, photos):
    monkeypatch.setenv("MABSA_MODELS_DIR", str(tmp_path))
    first = ImageNetLabeler(threads=1)
    graph = tmp_path / GRAPH_NAME
    assert graph.exists() and [p.name for p in tmp_path.iterdir()] == [GRAPH_NAME]  # no temporary left
    stamp = graph.stat().st_mtime_ns
    second = ImageNetLabeler(threads=1)
    assert graph.stat().st_mtime_ns == stamp  # reused, not exported again
    assert np.allclose(first.logits(photos[:1]), second.logits(photos[:1]))


def test_read_only_models_folder_exports_for_the_process(tmp_path, monkeypatch, photos):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("MABSA_MODELS_DIR", str(blocked / "models"))  # mkdir fails: OSError
    labeler = ImageNetLabeler(threads=1)
    assert labeler.top_labels(photos[1:2], k=1)[0][0][0] == "espresso"
