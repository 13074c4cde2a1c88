"""Signed URLs: image and mask routes a browser or another server loads without an API key.

A signed URL carries `exp` (Unix seconds) and `sig`, the HMAC-SHA256 of the path, the
expiry and the other query parameters (sorted), keyed by a server secret. Only the routes
that take LeanKeyOrSigned accept one (image bytes, mask, confidence), and only for GET of
exactly that path and query: a signature is a read capability for one resource until it
expires. An `Authorization` header, when present, is used instead, as without signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from app.errors import ApiError
from app.settings import Settings

SIG, EXP = "sig", "exp"
KEY_FILE = "url-signing.key"


class InvalidSignature(ApiError):
    """403: a signed URL whose signature does not match, or whose time is up."""

    code, status = "invalid_signature", 403


def _file_secret(data_dir: Path) -> bytes:
    """The secret kept in the data dir, made on first use (O_EXCL: one writer wins a race)."""
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex())
    return secret


def _canonical(path: str, exp: int, params: Iterable[tuple[str, str]]) -> bytes:
    rest = sorted((k, v) for k, v in params if k not in (SIG, EXP))
    return f"GET\n{path}\n{exp}\n{urlencode(rest)}".encode()


@dataclass(frozen=True)
class UrlSigner:
    """Makes and checks signed URLs; `base` ("" or the public URL) prefixes the ones it makes."""

    secret: bytes
    ttl_s: int
    base: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner:
        given = settings.url_signing_secret
        secret = given.get_secret_value().encode() if given else _file_secret(settings.data_dir)
        return cls(secret, settings.signed_url_ttl_s, settings.public_url or "")

    def _digest(self, path: str, exp: int, params: Iterable[tuple[str, str]]) -> str:
        mac = hmac.new(self.secret, _canonical(path, exp, params), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def expiry(self, now: float | None = None) -> int:
        return int(now if now is not None else time.time()) + self.ttl_s

    def sign(self, path: str, params: Mapping[str, str] | None = None, *, exp: int) -> str:
        """`base + path?params&exp=..&sig=..`."""
        items = list((params or {}).items())
        query = urlencode([*items, (EXP, str(exp)), (SIG, self._digest(path, exp, items))])
        return f"{self.base}{path}?{query}"

    def image_file(self, image_id: int, *, exp: int) -> str:
        return self.sign(f"/v1/images/{image_id}/file", exp=exp)

    def mask_png(self, image_id: int, source: str, *, exp: int) -> str:
        return self.sign(f"/v1/images/{image_id}/mask", {"source": source}, exp=exp)

    def verify(
        self,
        path: str,
        params: Iterable[tuple[str, str]],
        *,
        now: float | None = None,
        check_expiry: bool = True,
    ) -> None:
        """Raise InvalidSignature unless `params` hold a valid, unexpired signature of `path`."""
        items = list(params)
        values = dict(items)
        try:
            exp = int(values.get(EXP, ""))
        except ValueError:
            raise InvalidSignature(
                "The signed URL has no valid 'exp'.", {"reason": "malformed"}
            ) from None
        sig = values.get(SIG, "")
        if not hmac.compare_digest(sig.encode(), self._digest(path, exp, items).encode()):
            raise InvalidSignature(
                "The URL's signature does not match; ask for a new URL.",
                {"reason": "bad_signature"},
            )
        now = now if now is not None else time.time()
        if check_expiry and now > exp:
            raise InvalidSignature(
                "The signed URL has expired; ask for a new one (or send an API key).",
                {"reason": "expired", "expired_at": iso(exp)},
            )


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
