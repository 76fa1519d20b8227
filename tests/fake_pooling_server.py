"""A fake OpenAI-compatible pooling server for tests: `/v1/embeddings` and vLLM's `/classify`.

No model behind it: the test gives the vectors (embeddings, by text) and the scores (classify, by
the assistant turn's text), so what the client does with the replies can be checked exactly.
Every request body is recorded, and `fail_first` makes the first requests answer with the given
HTTP statuses (a 500 or 429 the client should retry).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakePoolingServer:
    def __init__(self, vectors: Mapping[str, Sequence[float]] | None = None,
                 scores: Callable[[dict[str, Any]], float] | None = None, fail_first: Sequence[int] = (),
                 api_key: str | None = None, shuffle: bool = False):
        self.vectors = dict(vectors or {})
        self.scores = scores
        self.fail_first = list(fail_first)
        self.api_key = api_key
        self.shuffle = shuffle  # answer embeddings in reverse order (their `index` still says which is which)
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def __enter__(self) -> FakePoolingServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with owner._lock:
                    owner.calls.append({"path": self.path, "body": body,
                                        "authorization": self.headers.get("Authorization")})
                    status = owner.fail_first.pop(0) if owner.fail_first else 200
                if status != 200:
                    return self._send(status, {"error": {"message": f"injected {status}", "type": "server_error"}})
                if owner.api_key and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
                    return self._send(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                if self.path == "/v1/embeddings":
                    return self._embeddings(body)
                if self.path == "/classify":
                    return self._classify(body)
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _embeddings(self, body):
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                missing = [t for t in texts if t not in owner.vectors]
                if missing:
                    return self._send(400, {"error": {"message": f"no vector for {missing[0]!r}"}})
                data = [{"object": "embedding", "index": i, "embedding": list(owner.vectors[t])}
                        for i, t in enumerate(texts)]
                if owner.shuffle:
                    data.reverse()
                self._send(200, {"object": "list", "data": data, "model": body.get("model"),
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})

            def _classify(self, body):
                score = owner.scores(body)
                self._send(200, {"id": "classify-1", "object": "list", "created": 0, "model": body.get("model"),
                                 "data": [{"index": 0, "label": "LABEL_0", "probs": [score], "num_classes": 1}],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
