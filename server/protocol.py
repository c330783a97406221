"""uvicorn's h11 protocol with a deadline for the request line and headers.

uvicorn closes idle keep-alive connections (timeout_keep_alive), but that timer stops at the
first byte received: a client that sends half a request line, or one header byte every few
seconds, holds its connection for ever (2,000 such connections were all still open after
15 s). The app cannot help, since it sees a request only once its headers are complete. So
each connection here gets `header_timeout` seconds, from the moment it opens or its previous
response was sent, to deliver a complete request head; then it is closed. The body has its own
deadline in the app (server/errors.py, BodyLimitMiddleware), where a 408 can be answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class H11ProtocolWithHeaderTimeout(H11Protocol):
    """For uvicorn: `http=functools.partial(H11ProtocolWithHeaderTimeout, header_timeout=s)`."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

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
