import numpy as np
import pytest
from PIL import Image
from skimage import data

from mabsa.data.records import Face
from mabsa.perception.errors import BackendSpecError
from mabsa.perception.interpret import (
    ChatRegionInterpreter,
    LabelRegionInterpreter,
    RationaleGenerator,
    faces_in_region,
)
from mabsa.perception.llm import OpenAIChatClient
from mabsa.perception.records import Region
from mabsa.perception.regions import (
    ClassicalSegmenter,
    RegionConfig,
    SamSegmenter,
    build_segmenter,
    laplacian_variance,
    mask_nms,
    select_regions,
)
from perception_support import fake_chat_server

H, W = 100, 120


def textured(h=H, w=W, seed=0):
    """Sharp random texture: Laplacian variance far above 100 everywhere."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def box_region(x, y, w, h, score):
    mask = np.zeros((H, W), bool)
    mask[y : y + h, x : x + w] = True
    return Region((x, y, w, h), score, int(mask.sum()), mask=mask)


def test_selection_filters_ranks_deoverlaps_and_adds_background():
    rgb = textured()
    rgb[:, 90:] = 128  # a flat (blurry) strip on the right
    proposals = [
        box_region(0, 0, 40, 40, 0.80),
        box_region(20, 20, 40, 40, 0.95),  # best; overlaps the first
        box_region(0, 60, 24, 30, 0.99),  # too small: min(w, h) = 24 < 25
        box_region(50, 60, 30, 30, 0.60),  # score < 0.7
        box_region(92, 10, 26, 50, 0.99),  # flat: Laplacian variance 0 < 100
        box_region(60, 0, 28, 28, 0.75),
        box_region(40, 70, 40, 28, 0.72),  # 4th by score: dropped by L - 1 = 3
    ]
    out = select_regions(proposals, rgb, RegionConfig(max_regions=4))
    assert [r.score for r in out] == [0.95, 0.80, 0.75, 0.0] and out[-1].is_background
    best, second = out[0], out[1]
    assert best.area == 1600 and best.box == (20, 20, 40, 40)
    assert second.area == 1600 - 400 and second.box == (0, 0, 40, 40)  # overlap went to the better one
    masks = np.stack([r.mask for r in out])
    assert (masks.sum(0) == 1).all()  # a partition of the image
    assert out[-1].area == H * W - 1600 - 1200 - 28 * 28
    assert all(r.sharpness >= 100 for r in out[:-1])


def test_thresholds_are_configurable():
    rgb = textured()
    proposals = [box_region(0, 60, 24, 30, 0.5)]
    assert len(select_regions(proposals, rgb)) == 1  # background only
    loose = RegionConfig(min_side=10, min_score=0.4, min_laplacian=0)
    assert [r.is_background for r in select_regions(proposals, rgb, loose)] == [False, True]


def test_laplacian_variance_and_nms():
    assert laplacian_variance(np.full((30, 30), 7, np.uint8)) == 0.0
    assert laplacian_variance(textured()[..., 0]) > 1000
    a = box_region(0, 0, 40, 40, 0.9).mask
    b = box_region(2, 2, 40, 40, 0.8).mask  # IoU ~0.82
    c = box_region(60, 60, 20, 20, 0.7).mask
    assert mask_nms([a, b, c], [0.9, 0.8, 0.7], 0.7) == [0, 2]
    assert mask_nms([a, b, c], [0.9, 0.8, 0.7], 0.9) == [0, 1, 2]


def test_classical_segmenter_finds_a_salient_square():
    rgb = np.zeros((160, 200, 3), np.uint8)
    rgb[:] = (30, 90, 200)
    rgb[40:120, 60:140] = textured(80, 80) // 4 + (180, 120, 0)  # orange textured square
    regions = ClassicalSegmenter().propose(rgb)
    assert all(0 <= r.score <= 1 for r in regions)
    best = max(regions, key=lambda r: r.score * (r.area > 1000))
    x, y, w, h = best.box
    assert abs(x - 60) <= 4 and abs(y - 40) <= 4 and abs(w - 80) <= 8 and abs(h - 80) <= 8
    selected = select_regions(regions, rgb)
    assert selected[0].box == best.box and selected[-1].is_background


def test_classical_segmenter_on_tiny_and_flat_images():
    for rgb in (np.zeros((1, 1, 3), np.uint8), np.full((40, 40, 3), 9, np.uint8)):
        out = select_regions(ClassicalSegmenter().propose(rgb), rgb)
        assert len(out) == 1 and out[0].is_background and out[0].area == rgb.shape[0] * rgb.shape[1]


@pytest.fixture(scope="module")
def tiny_sam_dir(tmp_path_factory):
    import torch
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(0)
    cfg = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            output_channels=16,
            mlp_dim=64,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=8,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16
        ),
    )
    path = tmp_path_factory.mktemp("tiny-sam")
    SamModel(cfg).save_pretrained(path)
    processor = SamProcessor(
        image_processor=SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    )
    processor.save_pretrained(path)
    return path


def test_sam_backend_with_a_tiny_random_model(tiny_sam_dir):
    seg = build_segmenter(f"sam:{tiny_sam_dir}", points_per_side=3, batch=4)
    assert isinstance(seg, SamSegmenter) and seg.id.startswith(f"sam:{tiny_sam_dir}")
    rgb = np.asarray(Image.fromarray(data.coffee()).resize((120, 80)))
    regions = seg.propose(rgb)
    assert 1 <= len(regions) <= 9
    for r in regions:
        assert r.mask.shape == (80, 120) and r.mask.any() and 0 <= r.score <= 1
        x, y, w, h = r.box
        assert r.mask[y : y + h, x : x + w].sum() == r.area == r.mask.sum()
    out = select_regions(regions, rgb, RegionConfig(min_score=0, min_side=1, min_laplacian=0))
    assert out[-1].is_background or sum(r.area for r in out) == 80 * 120


def test_bad_segmenter_specs(tmp_path):
    with pytest.raises(BackendSpecError, match="unknown segmenter"):
        build_segmenter("watershed")
    with pytest.raises(BackendSpecError, match="cannot load a SamModel"):
        build_segmenter(f"sam:{tmp_path}")


# -- interpretations ---------------------------------------------------------------------------
def test_faces_in_region_uses_the_mask():
    region = box_region(0, 0, 40, 40, 0.9)
    inside, outside = Face(box=(10, 10, 10, 10), emotion="happy"), Face(box=(50, 50, 10, 10), emotion="sad")
    assert faces_in_region(region, [inside, outside, Face()]) == [inside]


def test_label_interpreter_on_the_astronaut():
    img = data.astronaut()
    face_box = (179, 83, 88, 88)
    face_region = Region((150, 50, 150, 150), 0.9, 150 * 150)
    background = Region((0, 0, 512, 512), 0.0, 512 * 512, is_background=True)
    texts = LabelRegionInterpreter().interpret(
        Image.fromarray(img), [face_region, background], [Face(box=face_box, emotion="happy")]
    )
    # no ImageNet class fits a face or a space suit: the crops' best guesses (a puck, a football
    # helmet) are under the label floor, so nothing is named; the face's expression still is
    assert texts[0] == "This region is unclear. A person in it has a happy expression."
    assert texts[1] == "The background is unclear. A person in it has a happy expression."


def test_chat_interpreters_and_rationales_through_an_endpoint():
    img = Image.fromarray(data.coffee())
    regions = [Region((0, 0, 100, 100), 0.9, 10000), Region((0, 0, 600, 400), 0.0, 240000, is_background=True)]
    with fake_chat_server() as server:
        client = OpenAIChatClient(server.url, "vlm", backoff=0.01)
        assert ChatRegionInterpreter(client).interpret(img, regions) in (
            ["reply 0 with 1 images", "reply 1 with 1 images"],
            ["reply 1 with 1 images", "reply 0 with 1 images"],
        )
        r = RationaleGenerator(client).rationale("Coffee with $T$ today", "Anna", image=img)
    assert r.description.endswith("with 1 images") and r.reason.endswith("with 0 images")
    assert r.source == client.id
    prompt = server.requests[-1]["body"]["messages"][0]["content"]
    assert '"Anna"' in prompt and r.description in prompt


class TextOnly:
    id, supports_images = "text-only", False

    def __init__(self):
        self.prompts = []

    def chat(self, messages, max_tokens=128, temperature=0.0):
        self.prompts.append(messages[0]["content"])
        return f"answer {len(self.prompts)}"

    def chat_many(self, convs, max_tokens=128, temperature=0.0):
        return [self.chat(m) for m in convs]


def test_text_only_backends_get_the_embedded_evidence():
    backend = TextOnly()
    img = Image.fromarray(data.chelsea())
    out = ChatRegionInterpreter(backend).interpret(img, [Region((0, 0, 451, 300), 0.0, 1, is_background=True)])
    assert out == ["answer 1"] and "The background shows" in backend.prompts[0]
    r = RationaleGenerator(backend).rationale("my $T$", "cat", image=img, image_text="A cat on a mat.")
    assert r.description == "A cat on a mat." and "A cat on a mat." in backend.prompts[-1]
