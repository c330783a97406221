"""uvicorn's HTTP protocols with a deadline for the request line and headers, and a size limit.

uvicorn closes idle keep-alive connections (timeout_keep_alive), but that timer stops at the
first byte received: a client that sends half a request line, or one header byte every few
seconds, holds its connection for ever (2,000 such connections were all still open after
15 s). The app cannot help, since it sees a request only once its headers are complete. So
each connection here gets `header_timeout` seconds, from the moment it opens or its previous
response was sent, to deliver a complete request head; then it is closed. The body has its own
deadline in the app (server/errors.py, BodyLimitMiddleware), where a 408 can be answered.

Two parsers, chosen by `protocol_class` (`--http`, server/config.py):

- httptools (llhttp, in C), the default when it is installed: parsing a request and writing
  its answer costs about a third of what h11 costs (benchmarks/profile_server.py, part
  `protocol`). uvicorn gives it no limit on the size of a request head, so
  HttpToolsProtocolWithLimits adds h11's;
- h11 (pure Python), uvicorn's fallback, with its own limit (max_incomplete_event_size).

Either way a request head that grows past `max_header_bytes` before it is complete gets
uvicorn's 400 "Invalid HTTP request received." and its connection is closed. (A complete head
that came in one read is parsed whatever its size: one read is at most 256 KiB.)
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.config import ConfigError

INVALID_REQUEST = "Invalid HTTP request received."  # uvicorn's words for both parsers


class _HeaderDeadline:
    """The header deadline, shared by both protocols. They call `_arm_header_deadline` when a
    connection opens and after each response, and `_disarm_header_deadline` once a request's
    head is complete."""

    header_timeout: float
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: Any
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.logger.debug("closed a connection: no request head in %g s", self.header_timeout)
            self.transport.close()


class H11ProtocolWithHeaderTimeout(_HeaderDeadline, H11Protocol):
    """For uvicorn: `http=functools.partial(H11ProtocolWithHeaderTimeout, header_timeout=s,
    max_header_bytes=n)`."""

    def __init__(
        self, *args: Any, header_timeout: float, max_header_bytes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        # h11 bounds the head itself (its max_incomplete_event_size), in the connection that
        # every request on it reuses; none has been parsed yet.
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        # h11 leaves IDLE once a whole request head has been parsed.
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_header_deadline()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def httptools_installed() -> bool:
    return importlib.util.find_spec("httptools") is not None


if httptools_installed():
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsProtocolWithLimits(_HeaderDeadline, HttpToolsProtocol):
        """For uvicorn: `http=functools.partial(HttpToolsProtocolWithLimits, header_timeout=s,
        max_header_bytes=n)`.

        The head's limit is h11's: the reads of a request that leave its head incomplete may
        add up to max_header_bytes, and a head that outgrows it while incomplete is refused.
        """

        def __init__(
            self, *args: Any, header_timeout: float, max_header_bytes: int, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.header_timeout = header_timeout
            self.max_header_bytes = max_header_bytes
            self._in_head = False  # a request has begun and its head is not complete yet
            self._head_bytes = 0  # the bytes of its reads so far

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > self.max_header_bytes:
                    self.logger.warning("%s (request head too large)", INVALID_REQUEST)
                    self.send_400_response(INVALID_REQUEST)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm_header_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_deadline()  # the next request on this keep-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)


def protocol_class(parser: str) -> type:
    """The protocol class for --http: auto is httptools when it is installed, else h11.

    Raises ConfigError for httptools when it is not installed.
    """
    if parser == "auto":
        parser = "httptools" if httptools_installed() else "h11"
    if parser == "h11":
        return H11ProtocolWithHeaderTimeout
    if not httptools_installed():
        raise ConfigError("--http httptools: httptools is not installed (pip install httptools)")
    return HttpToolsProtocolWithLimits
