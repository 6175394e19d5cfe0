import pytest
import torch
from PIL import Image
from skimage import data

from mabsa.encoders.vision import (
    EfficientNetLite0Encoder,
    HFVisionEncoder,
    VisionFeatures,
    build_vision_encoder,
)
from mabsa.errors import MabsaError


@pytest.fixture(scope="module")
def effnet():
    return build_vision_encoder("efficientnet-lite0")


def test_efficientnet_grid_tokens_and_pooled(effnet):
    assert isinstance(effnet, EfficientNetLite0Encoder)
    out = effnet.encode([Image.fromarray(data.coffee()), Image.new("RGB", (1, 1), (9, 9, 9))])
    assert isinstance(out, VisionFeatures)
    assert out.tokens.shape == (2, 49, 1280) and out.pooled.shape == (2, 1280)
    assert out.mask.dtype == torch.bool and out.mask.all()
    assert torch.allclose(out.pooled, out.tokens.mean(1), atol=1e-5)
    assert not torch.allclose(out.pooled[0], out.pooled[1])


def test_efficientnet_is_trainable(effnet):
    x = effnet.preprocess([Image.fromarray(data.chelsea())]).requires_grad_(True)
    effnet.train()
    effnet(x).pooled.sum().backward()
    effnet.eval()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _tiny_vit(tmp_path, with_processor: bool, seed: int = 0):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    model = ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        )
    )
    model.save_pretrained(tmp_path)
    if with_processor:
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("with_processor", [True, False])
def test_hf_vit_from_local_dir(tmp_path, with_processor):
    enc = build_vision_encoder(str(_tiny_vit(tmp_path, with_processor)))
    assert isinstance(enc, HFVisionEncoder) and enc.dim == 32 and enc.spec == f"hf:{tmp_path}"
    out = enc.encode([Image.fromarray(data.astronaut()), Image.new("RGB", (7, 3))])
    assert out.tokens.shape == (2, 1 + 16, 32) and out.pooled.shape == (2, 32) and out.mask.shape == (2, 17)


def test_hf_spec_prefix_and_save_load_roundtrip(tmp_path):
    from transformers import ViTImageProcessor, ViTModel

    path = _tiny_vit(tmp_path, True)
    saved = ViTModel.from_pretrained(path).eval()  # the weights as written by save_pretrained
    pixels = ViTImageProcessor.from_pretrained(path)(images=[data.coffee()], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = saved(pixel_values=pixels).last_hidden_state
    loaded = build_vision_encoder(f"hf:{path}")
    assert loaded.spec == build_vision_encoder(str(path)).spec == f"hf:{path}"
    out = loaded.encode([Image.fromarray(data.coffee())])
    assert torch.allclose(out.tokens, expected, atol=1e-5)
    # a differently initialised model must not match: the check has teeth
    other = _tiny_vit(tmp_path / "other", True, seed=1)
    assert not torch.allclose(
        build_vision_encoder(str(other)).encode([Image.fromarray(data.coffee())]).tokens, expected, atol=1e-3
    )


def test_clip_vision_tower_is_used(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config=dict(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50
        ),
        vision_config=dict(
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=16,
        ),
        projection_dim=8,
    )
    CLIPModel(cfg).save_pretrained(tmp_path)
    enc = build_vision_encoder(str(tmp_path))
    out = enc.encode([Image.new("RGB", (50, 40), (1, 2, 3))])
    assert enc.dim == 24 and out.tokens.shape == (1, 5, 24) and out.pooled.shape == (1, 24)


def test_convnet_feature_map_becomes_tokens(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])).save_pretrained(tmp_path)
    enc = build_vision_encoder(f"hf:{tmp_path}")
    out = enc.encode([Image.new("RGB", (64, 64))])
    assert out.tokens.dim() == 3 and out.tokens.shape[-1] == 16 and out.pooled.shape == (1, 16)


def test_bad_specs_are_user_errors(tmp_path):
    with pytest.raises(MabsaError, match="unknown vision encoder"):
        build_vision_encoder("resnet9000")
    with pytest.raises(MabsaError, match="cannot load"):
        build_vision_encoder(f"hf:{tmp_path}")  # empty dir
