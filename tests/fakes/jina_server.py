"""A local server that speaks Jina AI Reader's JSON API, for tests.

`GET /{url}` with `Accept: application/json` answers {"code": 200, "status": 20000, "data":
{"title", "description", "url", "content", "links", "usage"}}: by default it reads the target
itself (over HTTP — e.g. from a local SiteServer) and turns it into text; `render(url)` can answer
instead. Errors are Jina's JSON: {"code", "name", "message", "readableMessage"} with the status.

    with JinaServer(faults=[JinaError.rate_limited(retry_after=1)]) as jina:
        Settings(JINA_READER_URL=jina.base_url, …)
    jina.requests  # [(target url, headers), …]
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Callable

import httpx
import lxml.html


@dataclass
class JinaError:
    status: int
    name: str
    message: str
    headers: dict = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> "JinaError":
        return cls(429, "RateLimitTriggeredError", "Per IP rate limit exceeded", {"Retry-After": str(retry_after)})

    @classmethod
    def insufficient_balance(cls) -> "JinaError":
        return cls(402, "InsufficientBalanceError", "Account balance not enough to run this query, please recharge.")

    @classmethod
    def server_error(cls) -> "JinaError":
        return cls(500, "InternalServerError", "Internal server error")

    @classmethod
    def unavailable_for_legal_reasons(cls) -> "JinaError":
        return cls(451, "SecurityCompromiseError", "Domain blocked until further notice")

    def body(self) -> dict:
        return {"data": None, "code": self.status, "name": self.name, "status": self.status * 100 + 3,
                "message": self.message, "readableMessage": f"{self.name}: {self.message}"}


def default_render(url: str) -> dict:
    response = httpx.get(url, follow_redirects=True, timeout=10)
    if response.status_code >= 400:
        raise RuntimeError(f"target answered {response.status_code}")
    tree = lxml.html.document_fromstring(response.text)
    links = {}
    for a in tree.xpath("//a[@href]"):
        href = str(httpx.URL(str(response.url)).join(a.get("href")))
        if href.startswith("http"):
            links[a.text_content().strip() or href] = href
    for bad in tree.xpath("//script|//style"):
        bad.drop_tree()
    text = re.sub(r"[ \t]+", " ", tree.text_content())
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    return {"title": tree.xpath("string(//title)").strip(),
            "description": tree.xpath("string(//meta[@name='description']/@content)"),
            "url": str(response.url), "content": text, "links": links}


class JinaServer:
    def __init__(self, render: Callable[[str], dict | JinaError] | None = None, *,
                 faults: list[JinaError] | None = None):
        self.render = render or default_render
        self.faults = list(faults or [])
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> "JinaServer":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                target = self.path[1:]
                with owner._lock:
                    owner.requests.append((target, dict(self.headers)))
                    fault = owner.faults.pop(0) if owner.faults else None
                if fault is None:
                    try:
                        answer = owner.render(target)
                    except Exception as exc:  # noqa: BLE001 - the target failed: Jina says 422
                        answer = JinaError(422, "AssertionFailureError", f"Failed to goto {target}: {exc}")
                    fault = answer if isinstance(answer, JinaError) else None
                if fault is not None:
                    self._send(fault.status, fault.body(), fault.headers)
                    return
                tokens = len(answer.get("content", "").split())
                self._send(200, {"code": 200, "status": 20000,
                                 "data": {**answer, "usage": {"tokens": tokens}}, "meta": {"usage": {"tokens": tokens}}})

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
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
        return f"http://127.0.0.1:{self._server.server_port}"
