import pytest
import torch
from PIL import Image
from skimage import data

from mabsa.data.records import Face
from mabsa.perception.captions import (
    UNCLEAR,
    EndpointCaptioner,
    HFCaptioner,
    build_captioner,
    describe_image,
    phrase_labels,
)
from mabsa.perception.errors import BackendSpecError
from mabsa.perception.llm import OpenAIChatClient
from perception_support import fake_chat_server


def test_label_caption_on_real_photos_is_marked_label_derived():
    cap = build_captioner("labels")
    c = cap.caption(Image.fromarray(data.chelsea()))
    assert c.label_derived and c.source.startswith("imagenet-labels")
    assert "cat" in c.text and c.text.startswith("An image of ")
    assert cap.caption(Image.fromarray(data.coffee())).text == "An image of an espresso."


def test_phrase_labels_names_only_labels_above_the_floor():
    assert (
        phrase_labels([("tiger cat", 0.4), ("Egyptian cat", 0.35), ("tabby", 0.17)])
        == "An image of a tiger cat or an Egyptian cat."
    )
    assert phrase_labels([("espresso", 0.95), ("cup", 0.01)]) == "An image of an espresso."
    # the astronaut photo's best guesses: none is named
    assert phrase_labels([("football helmet", 0.16), ("bobsled", 0.11)]) == f"An image of {UNCLEAR}."


def test_describe_image_names_the_people_first():
    woman = Face(box=(1, 1, 5, 5), age=33.2, gender="Woman", emotion="happy", emotion_scores={"happy": 0.9})
    man = Face(box=(9, 9, 5, 5), age=50, gender="Man", emotion="sad", emotion_scores={"sad": 0.3})  # unsure
    assert describe_image([woman], [("football helmet", 0.16)]) == (
        "An image of a 33-year-old woman with a happy expression."
    )
    assert describe_image([woman, man], [("tripod", 0.9)]) == (
        "An image of 2 people: a 33-year-old woman with a happy expression and a 50-year-old man; "
        "it also shows a tripod."
    )
    assert describe_image([], [("bobsled", 0.1)]) == f"An image of {UNCLEAR}."
    assert describe_image(None, [("tiger cat", 0.39)]) == "An image of a tiger cat."


@pytest.fixture(scope="module")
def tiny_captioner_dir(tmp_path_factory):
    """A random-init ViT encoder + GPT-2 decoder with a word-level tokenizer and image processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    path = tmp_path_factory.mktemp("tiny-captioner")
    words = ["<pad>", "<s>", "</s>", "<unk>", "a", "cat", "photo", "of", "the", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=16,
        ),
        GPT2Config(
            vocab_size=len(words),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=64,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
    )
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 2
    model = VisionEncoderDecoderModel(cfg)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.save_pretrained(path)
    fast.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_hf_captioner_from_local_dir(tiny_captioner_dir):
    cap = build_captioner(f"hf:{tiny_captioner_dir}", max_new_tokens=5)
    assert isinstance(cap, HFCaptioner) and cap.id == f"hf:{tiny_captioner_dir}"
    c1 = cap.caption(Image.fromarray(data.astronaut()))
    c2 = cap.caption(Image.fromarray(data.astronaut()))
    assert not c1.label_derived and c1.text == c2.text  # greedy: deterministic
    words = c1.text.split()
    assert 1 <= len(words) <= 5 and set(words) <= {"a", "cat", "photo", "of", "the", "dog", "<unk>"}


def test_endpoint_captioner_sends_the_image():
    with fake_chat_server() as server:
        cap = EndpointCaptioner(OpenAIChatClient(server.url, "vlm", backoff=0.01))
        c = cap.caption(Image.fromarray(data.coffee()))
    assert c.text == "reply 0 with 1 images" and c.source == f"openai:{server.url}#vlm" and not c.label_derived
    assert "Describe this image" in server.requests[0]["body"]["messages"][0]["content"][0]["text"]


def test_bad_captioner_specs(tmp_path):
    with pytest.raises(BackendSpecError, match="unknown captioner"):
        build_captioner("blip")
    with pytest.raises(BackendSpecError, match="not a loadable image-to-text model"):
        build_captioner(f"hf:{tmp_path}")
