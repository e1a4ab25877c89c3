"""A local server that speaks Jina AI Reader's JSON API, for tests.

`GET /{url}` with `Accept: application/json` answers {"code": 200, "status": 20000, "data":
{"title", "description", "url", "content", "metadata", "links", "usage"}} as r.jina.ai does: by
default it reads the target itself (over HTTP — e.g. from a local SiteServer) and renders it as
Markdown (`# `/`## ` headings, paragraphs, `- ` list items, links as `[text](url)`), with the page's
<meta> tags in `metadata` (`description`, `og:site_name`, `og:title`, `generator` …) and, as with
`X-With-Links-Summary`, `links` as {text: url}. `render(url)` can answer instead. Errors are
Jina's JSON: {"code", "name", "message", "readableMessage"} with the status.

    with JinaServer(faults=[JinaError.rate_limited(retry_after=1)]) as jina:
        Settings(JINA_READER_URL=jina.base_url, …)
    jina.requests  # [(target url, headers), …]

A fault can also be a `JinaReply`: any status/body/content type, a hang before answering, or a
large body (chunked, or with its Content-Length declared). `jina.bytes_sent` counts the body bytes
the server managed to write; `jina.aborted` counts answers the client hung up on midway.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
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
    def server_error(cls, status: int = 500) -> "JinaError":
        return cls(status, "InternalServerError", "Internal server error")

    @classmethod
    def unavailable_for_legal_reasons(cls) -> "JinaError":
        return cls(451, "SecurityCompromiseError", "Domain blocked until further notice")

    def body(self) -> dict:
        return {"data": None, "code": self.status, "name": self.name, "status": self.status * 100 + 3,
                "message": self.message, "readableMessage": f"{self.name}: {self.message}"}


@dataclass
class JinaReply:
    """A raw answer: `hang` seconds of silence first; `stream_bytes` > 0 sends a JSON answer whose
    content is that many bytes of filler — chunked, or with Content-Length when `declare_length`."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    hang: float = 0.0
    stream_bytes: int = 0
    declare_length: bool = False


_BLOCKS = {"p", "li", "address", "blockquote", "dt", "dd", "td", "th", "figcaption", "pre"}
_SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe"}


def _inline(node, base: str) -> str:
    parts = [node.text or ""]
    for child in node:
        if not isinstance(child.tag, str) or child.tag in _SKIP:
            pass
        elif child.tag == "a" and child.get("href"):
            text = re.sub(r"\s+", " ", _inline(child, base)).strip()
            href = child.get("href").strip()
            href = href if href.startswith(("mailto:", "tel:")) else str(httpx.URL(base).join(href))
            parts.append(f"[{text}]({href})" if text else "")
        elif child.tag == "br":
            parts.append("\n")
        else:
            parts.append(_inline(child, base))
        parts.append(child.tail or "")
    return "".join(parts)


def _has_blocks(node) -> bool:
    return any(isinstance(d.tag, str) and (d.tag in _BLOCKS or re.fullmatch(r"h[1-6]", d.tag))
               for d in node.iterdescendants())


def to_markdown(node, base: str) -> str:
    """An HTML element as Jina-style Markdown."""
    out: list[str] = []

    def text(value: str | None) -> None:
        value = re.sub(r"[ \t\r\n]+", " ", value or "").strip()
        if value:
            out.append(value)

    def walk(element) -> None:
        text(element.text)
        for child in element:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag in _SKIP or not tag:
                pass
            elif re.fullmatch(r"h[1-6]", tag):
                out.append("#" * int(tag[1]) + " " + re.sub(r"\s+", " ", _inline(child, base)).strip())
            elif tag in _BLOCKS and not _has_blocks(child):
                line = re.sub(r"[ \t]+", " ", _inline(child, base)).strip()
                if line:
                    out.append(("- " if tag == "li" else "") + line)
            elif _has_blocks(child):
                walk(child)
            else:
                text(_inline(child, base))
            text(child.tail)

    walk(node)
    return "\n\n".join(out)


def default_render(url: str) -> dict:
    response = httpx.get(url, follow_redirects=True, timeout=10)
    if response.status_code >= 400:
        raise RuntimeError(f"target answered {response.status_code}")
    final = str(response.url)
    tree = lxml.html.document_fromstring(response.text)
    links = {}
    for a in tree.xpath("//a[@href]"):
        href = str(httpx.URL(final).join(a.get("href")))
        if href.startswith("http"):
            links[a.text_content().strip() or href] = href
    metadata = {}
    for node in tree.xpath("//meta[@content]"):
        key = (node.get("property") or node.get("name") or "").strip()
        if key:
            metadata.setdefault(key, node.get("content"))
    if tree.get("lang"):
        metadata["lang"] = tree.get("lang")
    body = tree.find("body")
    content = to_markdown(body if body is not None else tree, final)
    return {"title": tree.xpath("string(//title)").strip(),
            "description": metadata.get("description", ""),
            "url": final, "content": content, "metadata": metadata, "links": links}


class JinaServer:
    def __init__(self, render: Callable[[str], dict | JinaError] | None = None, *,
                 faults: list[JinaError | JinaReply] | None = None):
        self.render = render or default_render
        self.faults: list[JinaError | JinaReply] = list(faults or [])
        self.requests: list[tuple[str, dict]] = []
        self.bytes_sent = 0
        self.aborted = 0
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
                if isinstance(fault, JinaReply):
                    try:
                        self._raw(fault)
                    except (BrokenPipeError, ConnectionResetError):
                        with owner._lock:
                            owner.aborted += 1
                        self.close_connection = True
                    return
                if fault is not None:
                    self._send(fault.status, fault.body(), fault.headers)
                    return
                tokens = len(answer.get("content", "").split())
                self._send(200, {"code": 200, "status": 20000,
                                 "data": {**answer, "usage": {"tokens": tokens}}, "meta": {"usage": {"tokens": tokens}}})

            def _raw(self, reply: JinaReply):
                if reply.hang:
                    time.sleep(reply.hang)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                if not reply.stream_bytes:
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self._write(reply.body)
                    return
                head, tail = b'{"code":200,"status":20000,"data":{"title":"Big","url":"","content":"', b'"}}'
                filler = b"x" * 65536
                count = -(-reply.stream_bytes // len(filler))
                if reply.declare_length:
                    self.send_header("content-length", str(len(head) + count * len(filler) + len(tail)))
                    self.end_headers()
                    for part in [head] + [filler] * count + [tail]:
                        self._write(part)
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for part in [head] + [filler] * count + [tail]:
                    self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                    self._count(len(part))
                self.wfile.write(b"0\r\n\r\n")

            def _write(self, data: bytes):
                self.wfile.write(data)
                self._count(len(data))

            def _count(self, size: int):
                with owner._lock:
                    owner.bytes_sent += size

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
