"""Any origin may read what a signed URL returns (`Access-Control-Allow-Origin: *`).

Label Studio's editor and task list load images with `crossOrigin="anonymous"` (the brush
tools paint on a canvas over them), so a browser drops an image whose answer does not
allow Label Studio's origin. A signed URL is itself the permission to read that one
resource, sent without credentials, so allowing every origin gives nothing away; key-
authenticated requests keep TAG2MASK_CORS_ORIGINS.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SIGNED_PATHS = re.compile(r"^/v1/images/\d+/(file|mask|confidence)$")
ALLOW_ORIGIN = b"access-control-allow-origin"


class SignedUrlCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        signed = (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and b"sig=" in scope.get("query_string", b"")
            and SIGNED_PATHS.match(scope.get("path", "")) is not None
        )
        if not signed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == ALLOW_ORIGIN for k, _ in headers):
                    headers.append((ALLOW_ORIGIN, b"*"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)
