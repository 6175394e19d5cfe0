import socket
import time

import pytest
from PIL import Image

from mabsa.perception.errors import BackendSpecError, EndpointError
from mabsa.perception.llm import OpenAIChatClient, build_chat_backend, image_data_url, user_message
from perception_support import fake_chat_server, reply


def client(url, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    return OpenAIChatClient(url, "test-model", api_key="k", **kw)


def test_request_shape_and_images_as_data_urls():
    with fake_chat_server() as server:
        out = client(server.url).chat([user_message("what is this?", [Image.new("RGB", (2000, 10))])], max_tokens=7)
    assert out == "reply 0 with 1 images"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer k"
    body = req["body"]
    assert body["model"] == "test-model" and body["max_tokens"] == 7 and body["temperature"] == 0.0
    text, image = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "what is this?"}
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_data_url_is_downscaled():
    import base64
    import io

    url = image_data_url(Image.new("RGB", (3000, 1500)), max_side=300)
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (300, 150)


def test_retries_with_backoff_then_succeeds():
    def flaky(i, body):
        return (503, b'{"error": "busy"}', 0) if i < 2 else (200, reply("ok"), 0)

    with fake_chat_server(flaky) as server:
        t = time.monotonic()
        assert client(server.url, retries=3, backoff=0.05).chat([user_message("hi")]) == "ok"
        assert time.monotonic() - t >= 0.05 + 0.1  # 0.05 then 0.1 s of backoff
    assert len(server.requests) == 3


def test_gives_up_with_a_clear_error():
    with fake_chat_server(lambda i, b: (500, b"internal", 0)) as server:
        with pytest.raises(EndpointError, match=r"failed after 3 attempts: HTTP 500: internal"):
            client(server.url, retries=2).chat([user_message("hi")])
        assert len(server.requests) == 3


def test_client_errors_are_not_retried():
    with fake_chat_server(lambda i, b: (401, b'{"error": "bad key"}', 0)) as server:
        with pytest.raises(EndpointError, match="refused the request.*401"):
            client(server.url, retries=3).chat([user_message("hi")])
        assert len(server.requests) == 1


def test_slow_endpoint_times_out():
    with fake_chat_server(lambda i, b: (200, reply("late"), 1.0)) as server:
        with pytest.raises(EndpointError, match="timed out after 0.2 s"):
            client(server.url, timeout=0.2, retries=1).chat([user_message("hi")])


@pytest.mark.parametrize("payload", [b"not json", b'{"choices": []}', b'{"choices": [{"message": {"content": null}}]}'])
def test_malformed_replies(payload):
    with fake_chat_server(lambda i, b: (200, payload, 0)) as server:
        with pytest.raises(EndpointError, match="malformed|not text"):
            client(server.url).chat([user_message("hi")])


def test_endpoint_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(
        EndpointError, match=rf"127.0.0.1:{port}/v1/chat/completions failed after 2 attempts: unreachable"
    ):
        client(f"http://127.0.0.1:{port}/v1", retries=1).chat([user_message("hi")])


def test_bounded_concurrency_keeps_order():
    with fake_chat_server(lambda i, b: (200, reply(b["messages"][0]["content"]), 0.1)) as server:
        convs = [[user_message(f"q{i}")] for i in range(8)]
        out = client(server.url, max_concurrency=2).chat_many(convs)
    assert out == [f"q{i}" for i in range(8)]
    assert server.max_in_flight == 2


def test_spec_strings():
    c = build_chat_backend("openai:http://127.0.0.1:9/v1#some/model")
    assert isinstance(c, OpenAIChatClient) and c.model == "some/model" and c.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(BackendSpecError, match="openai:<base url>#<model name>"):
        build_chat_backend("openai:http://127.0.0.1:9/v1")
    with pytest.raises(BackendSpecError, match="unknown chat backend"):
        build_chat_backend("gpt-9")


@pytest.fixture(scope="module")
def smollm():
    return build_chat_backend("smollm2")


@pytest.mark.slow
def test_embedded_smollm2_answers_offline(smollm):
    out = smollm.chat(
        [
            user_message(
                'Is the sentiment toward "pizza" positive or negative in: '
                '"I love this pizza, best ever!"? Answer in one word.'
            )
        ],
        max_tokens=20,
    )
    assert "positive" in out.lower()
    with pytest.raises(BackendSpecError, match="text-only"):
        smollm.chat([user_message("look", [Image.new("RGB", (4, 4))])])
