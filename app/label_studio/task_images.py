"""Which image a Label Studio task shows: one of ours by its signed URL, or bytes to fetch.

A task imported from our export names the image by our signed URL: the signature (expired
or not: the caller is already authenticated) proves the path, and the path names the
image. Any other URL is fetched: a relative one (`/data/upload/…`) and one on Label
Studio's own host with Label Studio's access token (`Authorization: Token …`), anything
else without it, and only to addresses webhooks may reach too (app/webhook_targets.py).
The bytes then find our image by their sha256, or are a new image.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urljoin, urlsplit

import anyio.to_thread
import httpx

from app.errors import ApiError
from app.signing import SIG, InvalidSignature, UrlSigner
from app.webhook_targets import RefusedAddress, TargetPolicy

log = logging.getLogger(__name__)

_OUR_IMAGE = re.compile(r"^/v1/images/(\d+)/file$")


class TaskImageUnavailable(ApiError):
    """422: the task's image URL could not be loaded (or is not one)."""

    code, status = "task_image_unavailable", 422


@dataclass(frozen=True)
class LabelStudioLink:
    """Where Label Studio is and a token it accepts (from its /setup call, or settings)."""

    hostname: str | None
    token: str | None

    def owns(self, url: str) -> bool:
        if not self.hostname:
            return False
        ours, theirs = urlsplit(self.hostname), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


@dataclass(frozen=True)
class TaskImage:
    """Our image id when the URL is our signed URL, else the fetched bytes and their sha."""

    url: str
    image_id: int | None = None
    data: bytes | None = None
    sha256: str | None = None


def our_image_id(url: str, signer: UrlSigner) -> int | None:
    """The image id of one of our signed image URLs (expired ones too), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    match = _OUR_IMAGE.match(parts.path)
    params = parse_qsl(parts.query)
    if match is None or SIG not in dict(params):
        return None
    try:
        signer.verify(parts.path, params, check_expiry=False)
    except InvalidSignature:
        return None
    return int(match.group(1))


def absolute_url(url: str, link: LabelStudioLink) -> str:
    if url.startswith(("http://", "https://")):
        return url
    if url.startswith("/") and link.hostname:
        return urljoin(link.hostname + "/", url.lstrip("/"))
    raise TaskImageUnavailable(
        f"The task's image URL {url[:200]!r} is relative and Label Studio's address is "
        "unknown: connect the ML backend again (its /setup tells us) or set "
        "TAG2MASK_LABEL_STUDIO_URL.",
        {"url": url[:200]},
    )


async def fetch_image(
    url: str,
    link: LabelStudioLink,
    policy: TargetPolicy,
    *,
    max_bytes: int,
    timeout_s: float,
) -> bytes:
    """The bytes at a task's image URL; TaskImageUnavailable with the reason otherwise."""
    target = absolute_url(url, link)
    try:
        parts = urlsplit(target)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise TaskImageUnavailable(f"The task's image URL is not valid: {e}.") from e
    headers = {}
    if link.owns(target):
        if link.token:
            headers["Authorization"] = f"Token {link.token}"
    else:
        try:
            await anyio.to_thread.run_sync(policy.addresses, parts.hostname or "", port)
        except (RefusedAddress, OSError, UnicodeError) as e:
            raise TaskImageUnavailable(
                f"The task's image host may not be fetched from: {e}", {"url": url[:200]}
            ) from e
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as c,
            c.stream("GET", target, headers=headers) as r,
        ):
            if r.status_code != 200:
                raise TaskImageUnavailable(
                    f"Fetching the task's image answered HTTP {r.status_code}.",
                    {"url": url[:200], "status": r.status_code},
                )
            chunks, size = [], 0
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TaskImageUnavailable(
                        f"The task's image is over {max_bytes} bytes.", {"url": url[:200]}
                    )
                chunks.append(chunk)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as e:  # ValueError: a bad URL
        raise TaskImageUnavailable(
            f"The task's image could not be fetched: {type(e).__name__}.", {"url": url[:200]}
        ) from e
    return b"".join(chunks)


async def resolve_task_image(
    url: str,
    signer: UrlSigner,
    link: LabelStudioLink,
    policy: TargetPolicy,
    *,
    max_bytes: int,
    timeout_s: float,
) -> TaskImage:
    image_id = our_image_id(url, signer)
    if image_id is not None:
        return TaskImage(url, image_id=image_id)
    data = await fetch_image(url, link, policy, max_bytes=max_bytes, timeout_s=timeout_s)
    return TaskImage(url, data=data, sha256=hashlib.sha256(data).hexdigest())


def image_url_of(task: object, key: str = "image") -> str:
    """`task["data"][key]` as a non-empty string, or TaskImageUnavailable."""
    data = task.get("data") if isinstance(task, dict) else None
    url = data.get(key) if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise TaskImageUnavailable(f"The task has no data.{key} URL.", {"task": _task_id(task)})
    return url.strip()


def _task_id(task: object) -> object:
    return task.get("id") if isinstance(task, dict) else None
