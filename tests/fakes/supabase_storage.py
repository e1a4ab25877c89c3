"""A local server that speaks the Supabase Storage routes the `supabase` client calls:
buckets (get, create), objects (upload with x-upsert, download, remove). Requests must carry the
service key as `apikey` and `Authorization: Bearer`, as the client sends them.

    with StorageServer(service_key="…") as storage:
        storage.url          # SUPABASE_URL
        storage.objects      # {(bucket, path): (bytes, content_type)}
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": str(status), "error": error, "message": message}, status_code=status)


class StorageServer:
    def __init__(self, service_key: str):
        self.service_key = service_key
        self.buckets: dict[str, dict] = {}
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(routes=[
            Route("/storage/v1/bucket", self.create_bucket, methods=["POST"]),
            Route("/storage/v1/bucket/{bucket}", self.get_bucket, methods=["GET"]),
            Route("/storage/v1/object/{bucket}/{path:path}", self.upload, methods=["POST", "PUT"]),
            Route("/storage/v1/object/{bucket}/{path:path}", self.download, methods=["GET"]),
            Route("/storage/v1/object/{bucket}", self.remove, methods=["DELETE"]),
        ])

    def _authorised(self, request: Request) -> bool:
        self.requests.append((request.method, request.url.path))
        return (request.headers.get("apikey") == self.service_key
                and request.headers.get("authorization") == f"Bearer {self.service_key}")

    async def get_bucket(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(403, "Unauthorized", "invalid signature")
        bucket = self.buckets.get(request.path_params["bucket"])
        if bucket is None:
            return _error(404, "Bucket not found", "Bucket not found")
        return JSONResponse(bucket)

    async def create_bucket(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(403, "Unauthorized", "invalid signature")
        body = await request.json()
        now = datetime.now(timezone.utc).isoformat()
        self.buckets[body["id"]] = {"id": body["id"], "name": body.get("name") or body["id"], "owner": "",
                                    "public": bool(body.get("public")), "created_at": now, "updated_at": now,
                                    "file_size_limit": None, "allowed_mime_types": None}
        return JSONResponse({"name": body["id"]})

    async def upload(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(403, "Unauthorized", "invalid signature")
        bucket, path = request.path_params["bucket"], request.path_params["path"]
        if bucket not in self.buckets:
            return _error(404, "Bucket not found", "Bucket not found")
        upsert = request.headers.get("x-upsert") == "true" or request.method == "PUT"
        if (bucket, path) in self.objects and not upsert:
            return _error(409, "Duplicate", "The resource already exists")
        form = await request.form()
        upload = form["file"]
        self.objects[(bucket, path)] = (await upload.read(), upload.content_type or "application/octet-stream")
        return JSONResponse({"Key": f"{bucket}/{path}", "Id": f"{bucket}-{len(self.objects)}"})

    async def download(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(403, "Unauthorized", "invalid signature")
        found = self.objects.get((request.path_params["bucket"], request.path_params["path"]))
        if found is None:
            return _error(404, "not_found", "Object not found")
        return Response(found[0], media_type=found[1])

    async def remove(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error(403, "Unauthorized", "invalid signature")
        bucket = request.path_params["bucket"]
        removed = []
        for prefix in (await request.json()).get("prefixes", []):
            if self.objects.pop((bucket, prefix), None) is not None:
                removed.append({"name": prefix, "bucket_id": bucket})
        return JSONResponse(removed)

    def __enter__(self) -> "StorageServer":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the storage server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
