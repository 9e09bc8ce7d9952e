"""The prediction endpoints' direct path: body bytes -> msgspec -> model -> response bytes.

Litestar's handler pipeline (signature model, dependency injection, response object) costs
more than scoring one lead does. So each POST prediction route carries a route middleware
that answers a well-formed request itself: it decodes the body with msgspec exactly as
Litestar would (``strict=False``, the same request types), calls the same answer function
as the handler, and encodes the same response types with msgspec.

Only the plain case is answered here. Anything else goes on to the Litestar handler
untouched, with the body already read handed back to it: a body that does not decode or
validate, a batch that is empty or over the limit, a body over the size limit, a model not
loaded yet, a missing or wrong API key. Every error answer, the auth guard and the OpenAPI
document therefore come from one place, the handler. The app-level metrics middleware
times both paths alike.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# (scope, items) -> the response bodies, or None when the model is not loaded
Answer = Callable[[Scope, Sequence[Any]], Awaitable[list[Any] | None]]

_JSON_HEADERS = (b"content-type", b"application/json")


class DirectRoute:
    """Route middleware factory: ``middleware=[DirectRoute(...)]`` on a POST handler whose
    body is ``item | list[item]``."""

    def __init__(self, item: type, answer: Answer, *, max_batch: int, max_body: int,
                 api_key: str | None, inline_rows: int,
                 accept: Callable[[Any], bool] | None = None):
        self.decoder = msgspec.json.Decoder(item | list[item], strict=False)
        # an item this rejects (e.g. one setting no feature) goes to the handler
        self.accept = accept
        self.encoder = msgspec.json.Encoder()
        self.answer = answer
        self.max_batch = max_batch
        self.max_body = max_body
        self.api_key = api_key.encode() if api_key else None
        self.inline_rows = inline_rows
        self.answered = 0  # requests this path answered itself (the rest went to the handler)

    def __deepcopy__(self, memo: dict[int, Any]) -> DirectRoute:
        # Litestar copies a route's options when it registers the route; this object holds
        # no per-route state (and msgspec's codecs cannot be copied), so it is shared.
        return self

    def __call__(self, app: ASGIApp) -> ASGIApp:
        async def direct(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("method") != "POST" or not self._authorised(scope):
                await app(scope, receive, send)
                return
            read: list[Message] = []
            body = await self._read_body(scope, receive, read)
            data = self._decode(body) if body is not None else None
            items: Sequence[Any] | None = None
            if data is not None:
                items = data if isinstance(data, list) else [data]
                if not items or len(items) > min(self.max_batch, self.inline_rows):
                    items = None  # empty, over the limit, or big enough for a worker thread
                elif self.accept is not None and not all(map(self.accept, items)):
                    items = None
            out = await self.answer(scope, items) if items is not None else None
            if out is None:
                await app(scope, _replay(read, receive), send)
                return
            self.answered += 1
            payload = self.encoder.encode(out if isinstance(data, list) else out[0])
            await send({"type": "http.response.start", "status": 200,
                        "headers": [_JSON_HEADERS,
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

        return direct

    def _authorised(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                return hmac.compare_digest(value, self.api_key)
        return False

    async def _read_body(self, scope: Scope, receive: Receive, read: list[Message]
                         ) -> bytes | None:
        """The whole body, or None (after reading what it had to) when it is over the limit
        or the client went away; every message taken from ``receive`` is kept in ``read``."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    return None
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _decode(self, body: bytes) -> Any:
        try:
            return self.decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None


def _replay(read: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
