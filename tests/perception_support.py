"""Shared helpers for the perception tests: a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """Replies per ``behaviour(request_index, body) -> (status, bytes, delay_s)``; records requests."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    index = len(server.requests)
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, delay = server.behaviour(index, body)
                    time.sleep(delay)
                finally:
                    # Count the request done *before* answering: once the client has the answer it
                    # may send its next request before this thread runs again.
                    with server._lock:
                        server.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def echo_last_text(index, body):
    """A reply naming how many images the last user message carried."""
    content = body["messages"][-1]["content"]
    images = sum(p.get("type") == "image_url" for p in content) if isinstance(content, list) else 0
    return 200, reply(f"reply {index} with {images} images"), 0.0


@contextmanager
def fake_chat_server(behaviour=echo_last_text):
    with FakeChatServer(behaviour) as s:
        yield s
