"""A local server that speaks OpenAI's HTTP API (chat completions and embeddings) for tests.

It is the network boundary only: the product's real clients (langchain-openai, openai) talk to
it over real HTTP. Tests decide what it answers:

    with OpenAIServer(chat=lambda request: {"content": "hello"}) as server:
        ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-4o")

`chat(request)` gets a `ChatRequest` and returns a reply: {"content": str} for text (and
json_schema structured output), {"tool_call": {"name": …, "arguments": {…}}} for function
calling, or an `HTTPError(status, body, headers)` to fail that call. `faults` is a queue of
HTTPErrors answered before normal replies (e.g. a 500 then success); `latency` delays every
answer. `requests` records every request body, in order.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class HTTPError:
    status: int
    body: dict = field(default_factory=lambda: {"error": {"message": "scripted failure", "type": "server_error"}})
    headers: dict = field(default_factory=dict)


@dataclass
class ChatRequest:
    body: dict

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    @property
    def text(self) -> str:
        """All message contents joined, for matching on prompts."""
        parts = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, list):
                parts += [c.get("text", "") for c in content if isinstance(c, dict)]
            elif content:
                parts.append(str(content))
        return "\n".join(parts)

    @property
    def json_schema(self) -> dict | None:
        fmt = self.body.get("response_format") or {}
        return fmt.get("json_schema", {}).get("schema") if fmt.get("type") == "json_schema" else None

    @property
    def tools(self) -> list[dict]:
        return self.body.get("tools") or []


def hashed_embedding(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector from the text's words: similar texts get similar vectors."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for word in text.lower().split():
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        vector += np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    norm = float(np.linalg.norm(vector)) or 1.0
    return (vector / norm).tolist()


class OpenAIServer:
    def __init__(self, chat: Callable[[ChatRequest], Any] | None = None, *, dimensions: int = 1536,
                 latency: float = 0.0, faults: list[HTTPError] | None = None):
        self.chat = chat or (lambda request: {"content": "ok"})
        self.dimensions = dimensions
        self.latency = latency
        self.faults = list(faults or [])
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> "OpenAIServer":
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload, headers = server._answer(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, str(value))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def count(self, path_suffix: str) -> int:
        return sum(1 for path, _ in self.requests if path.endswith(path_suffix))

    # --- answers ----------------------------------------------------------------------------------
    def _answer(self, path: str, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append((path, body))
            fault = self.faults.pop(0) if self.faults else None
        if self.latency:
            time.sleep(self.latency)
        if fault:
            return fault.status, fault.body, fault.headers
        if path.endswith("/embeddings"):
            return 200, self._embeddings(body), {}
        if path.endswith("/chat/completions"):
            reply = self.chat(ChatRequest(body))
            if isinstance(reply, HTTPError):
                return reply.status, reply.body, reply.headers
            return 200, self._completion(body, reply), {}
        return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}, {}

    def _embeddings(self, body: dict) -> dict:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or self.dimensions
        data = []
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))  # token ids
            vector = hashed_embedding(text, dims)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(str(x).split()) for x in inputs)
        return {"object": "list", "data": data, "model": body.get("model", "fake"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _completion(self, body: dict, reply: dict) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if "tool_call" in reply:
            call = reply["tool_call"]
            arguments = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"])
            message["tool_calls"] = [{"id": f"call_{len(self.requests)}", "type": "function",
                                      "function": {"name": call["name"], "arguments": arguments}}]
            finish = "tool_calls"
        else:
            content = reply.get("content", "")
            message["content"] = content if isinstance(content, str) else json.dumps(content)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(str(message.get("content") or "").split()) + 1
        return {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
