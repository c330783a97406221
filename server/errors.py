"""Every error leaves the server as JSON: {"error": short_code, "detail": human message}.

Three layers make sure of that:

- `APIError` is raised by the endpoints for the cases they recognise (bad parameters, a bad
  image, ...) and turned into JSON by `api_error_handler`.
- Starlette's own `HTTPException` (unknown route 404, wrong method 405, a multipart body it
  cannot parse 400) goes through `http_exception_handler`, which gives it the same shape.
- `CatchAllMiddleware` turns anything else into a 500 JSON without a traceback and logs the
  traceback server-side, so one bad request never takes the server down.
- `JSONCORSMiddleware` is Starlette's CORSMiddleware with its preflight refusal (a 400 in plain
  text there) in the same JSON shape.

`BodyLimitMiddleware` answers 413 before the body is read when Content-Length is over the
limit, and counts the bytes of the body as they arrive for chunked uploads that carry no
Content-Length (or lie about it). It also gives the body a deadline: uvicorn has no body
timeout, and a client that declares 1000 bytes and sends 10, or a chunk size line of
`ffffffffffffffffffff` and nothing after it, would otherwise hold its request for ever. Past
the deadline the request is answered 408 and its connection closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("server.errors")

INTERNAL_ERROR_DETAIL = "the server failed to handle this request"

# The short codes for statuses that Starlette raises by itself.
STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error with its HTTP status, short code and message, raised inside an endpoint."""

    def __init__(
        self,
        status_code: int,
        error: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra


class BodyError(HTTPException):
    """Raised from receive() when the body breaks a limit: the rest of it is never read, so the
    connection cannot be reused."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail, headers={"Connection": "close"})


class BodyTooLargeError(BodyError):
    """Raised from receive() once the body has grown past the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))


class BodyTimeoutError(BodyError):
    """Raised from receive() once the body has taken longer than the deadline."""

    def __init__(self, timeout: float) -> None:
        super().__init__(408, f"the request body did not arrive within the limit of {timeout:g} s")


def too_large_detail(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


def error_body(error: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **extra}


def error_response(
    status_code: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(error, detail, **extra), status_code, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc.status_code, exc.error, exc.detail, exc.headers, **exc.extra)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status in (204, 304):  # no body allowed
        return Response(status_code=status, headers=exc.headers)
    error = STATUS_CODES.get(status) or _phrase_code(status)
    detail = exc.detail
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no route for {request.method} {request.url.path}"
    elif status == 405 and detail == HTTPStatus.METHOD_NOT_ALLOWED.phrase:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return error_response(status, error, str(detail), exc.headers)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort, installed in Starlette's ServerErrorMiddleware: no traceback to the client."""
    return error_response(500, "internal_error", INTERNAL_ERROR_DETAIL)


def _phrase_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _TrackedSend:
    """An ASGI send that records whether the response has started: past that, an error can no
    longer be answered with a JSON body."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class BodyLimitMiddleware:
    """Reject request bodies over `max_bytes` with 413, whether declared or streamed, and
    bodies still incomplete `timeout` seconds after the request's headers with 408."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await _send_json(send, 400, error_body("bad_request", "invalid Content-Length"))
                return
            if too_large:
                detail = too_large_detail(self.max_bytes)
                await _send_json(send, 413, error_body("payload_too_large", detail))
                return

        tracked = _TrackedSend(send)
        deadline = asyncio.get_running_loop().time() + self.timeout
        received = 0
        body_complete = False

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                return await receive()  # only http.disconnect is left to come: no deadline
            try:
                # A deadline on this task, not wait_for's new task per message.
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
                body_complete = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except BodyError as exc:
            # Normally the endpoint's exception handler already answered; this is for a body
            # read outside an endpoint.
            if tracked.started:
                raise
            code = STATUS_CODES[exc.status_code]
            await _send_json(send, exc.status_code, error_body(code, exc.detail))


class CatchAllMiddleware:
    """Turn any exception that escaped the app into a 500 JSON response, and log it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            # The client went away mid-request: nobody is left to answer.
            logger.info("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if tracked.started:
                # Half a response has gone out: all that is left is to drop the connection,
                # which the server does when the exception reaches it.
                raise
            await _send_json(send, 500, error_body("internal_error", INTERNAL_ERROR_DETAIL))


class JSONCORSMiddleware(CORSMiddleware):
    """CORSMiddleware whose refused preflight is JSON like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette says "Disallowed CORS origin, method": keep its list of what failed.
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {
            key: value
            for key, value in response.headers.items()
            if key not in ("content-length", "content-type")
        }
        return error_response(
            response.status_code,
            "cors_refused",
            f"CORS preflight refused: this {refused} is not allowed",
            headers,
        )
