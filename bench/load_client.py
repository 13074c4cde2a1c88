"""The load generator of bench/load.py, run as its own process: N concurrent clients.

python bench/load_client.py URL KEY SPEC_JSON  → prints one JSON result on stdout

Each client is one keep-alive HTTP/1.1 connection on raw asyncio streams (uvloop when
installed) that sends a request, reads the whole response and sends the next. The client
shares the machine's cores with the server, so it is kept cheap: a full HTTP client such
as httpx spent about a millisecond of CPU per request here, a third of what the server
spent, which capped the throughput we measured and inflated its latencies.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image


def jpeg_pool(n: int, size: int = 320, seed: int = 0) -> list[bytes]:
    """Distinct 320 px JPEGs, so every upload is a new image (no dedup shortcut)."""
    base = _jpeg(size, seed)
    return [unique_jpeg(base, f"load-{seed}-{i}") for i in range(n)]


def _jpeg(size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def unique_jpeg(base: bytes, comment: str) -> bytes:
    """`base` with a JPEG comment segment after SOI: other bytes, the same picture."""
    text = comment.encode()
    return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


class HttpError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response: Content-Length or chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts)
    if status in (204, 304) or length is None:
        return status, b""
    return status, await reader.readexactly(length)


def request_bytes(
    method: str, path: str, host: str, key: str, body: bytes = b"", content_type: str = ""
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
    if body or method == "POST":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str) -> bytes:
    """multipart/form-data of (name, filename or None, value) parts."""
    out = []
    for name, filename, value in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        ctype = "Content-Type: image/jpeg\r\n" if filename else ""
        out.append(
            f"--{boundary}\r\nContent-Disposition: {disp}\r\n{ctype}\r\n".encode() + value + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


async def run(url: str, key: str, spec: dict[str, Any]) -> dict[str, Any]:
    route, clients, seconds = spec["route"], spec["clients"], spec["seconds"]
    image_ids: list[int] = spec["image_ids"]
    pid = spec["project_id"]
    list_queries: list[str] = spec.get("list_queries") or ["limit=50"]
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    netloc = split.netloc
    # list_upload: the list clients, plus one more client uploading all the while, so
    # every upload changes the project's list version and cached pages go stale.
    uploading = route in ("upload", "list_upload")
    base_jpeg = _jpeg(320, spec.get("seed", 0)) if uploading else b""
    boundary = "tag2maskloadboundary"
    counter = 0

    def next_request(kind: str) -> bytes:
        nonlocal counter
        i = counter
        counter += 1
        iid = image_ids[i % len(image_ids)]
        if kind == "mask_png":
            return request_bytes("GET", f"/v1/images/{iid}/mask", netloc, key)
        if kind == "mask_rle":
            return request_bytes("GET", f"/v1/images/{iid}/mask?format=rle", netloc, key)
        if kind == "list":
            query = list_queries[i % len(list_queries)]
            return request_bytes("GET", f"/v1/projects/{pid}/images?{query}", netloc, key)
        if kind == "upload":
            # Every upload is new bytes (a unique JPEG comment): no dedup shortcut.
            data = unique_jpeg(base_jpeg, f"load-{spec.get('seed', 0)}-{i}")
            body = multipart([("file", f"u{i}.jpg", data), ("tags", None, b"cat,dog")], boundary)
            return request_bytes(
                "POST",
                f"/v1/projects/{pid}/images",
                netloc,
                key,
                body,
                f"multipart/form-data; boundary={boundary}",
            )
        raise ValueError(kind)

    latencies: list[float] = []
    background: list[float] = []  # the list_upload uploader's, reported apart
    errors: dict[str, int] = {}
    deadline = 0.0

    async def worker(kind: str, out: list[float]) -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            req = next_request(kind)
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(req)
                status, _ = await asyncio.wait_for(read_response(reader), 30)
                ok, code = status < 300, str(status)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                ok, code = False, type(e).__name__
                if writer is not None:
                    writer.close()
                reader = writer = None
            out.append(time.perf_counter() - t0)
            if not ok:
                errors[code] = errors.get(code, 0) + 1
        if writer is not None:
            writer.close()

    kind = "list" if route == "list_upload" else route
    workers = [worker(kind, latencies) for _ in range(clients)]
    if route == "list_upload":
        workers.append(worker("upload", background))
    start = time.perf_counter()
    deadline = start + seconds
    cpu0 = time.process_time()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    lat = np.array(latencies) * 1000
    return {
        "route": route,
        "clients": clients,
        "seconds": elapsed,
        "requests": len(lat),
        "rps": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": sum(errors.values()),
        "error_codes": errors,
        # CPU the client itself used per request: what it took from the server's cores.
        "client_cpu_ms_per_request": 1000 * cpu / max(len(lat) + len(background), 1),
        "background_uploads_per_s": len(background) / elapsed,
    }


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
