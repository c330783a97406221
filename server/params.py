"""Reading requests: content types, Accept negotiation, and the predict and explain parameters.

`model_type`, `top_k` and `preview` arrive as strings (multipart form fields or query
parameters) for POST /predict, and as JSON values for POST /predict/base64. Both end in the same
checks, and every failure is a 422 APIError naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request

from scratchnet.mnist.explain import CLASSES, ENCODINGS
from server.errors import APIError
from server.inference import DEFAULT_MODEL

TOP_K_MIN = 1
TOP_K_MAX = 10
DEFAULT_TOP_K = 3

_INT_TEXT = re.compile(r"^\s*[+-]?\d{1,6}\s*$")
_TRUE_WORDS = {"true", "1", "yes", "on"}
_FALSE_WORDS = {"false", "0", "no", "off"}
_BASE64_WHITESPACE = re.compile(r"\s+")
JSON_MEDIA_TYPES = ("application/json",)
# The options /explain adds to /predict's: their words and defaults.
EXPLAIN_CHOICES = {"classes": (CLASSES, "predicted"), "encoding": (ENCODINGS, "base64")}


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters: 'multipart/form-data', ... or ''."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json_media_type(content_type: str) -> bool:
    """application/json, or a JSON-based type such as application/vnd.api+json."""
    return content_type in JSON_MEDIA_TYPES or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _accept_quality(accept: str) -> dict[str, float]:
    """'text/html,*/*;q=0.8' -> {'text/html': 1.0, '*/*': 0.8} (malformed q counts as 0)."""
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[media.lower()] = max(quality, qualities.get(media.lower(), 0.0))
    return qualities


def wants_html(accept: str | None) -> bool:
    """True only when the client names text/html and prefers it to JSON.

    A browser sends 'text/html,...,*/*;q=0.8'. API clients send application/json, */* or no
    Accept at all, and keep getting the health JSON that GET / has always returned. A tie
    between text/html and application/json goes to JSON.
    """
    if not accept:
        return False
    qualities = _accept_quality(accept)
    html = qualities.get("text/html", 0.0)
    json_q = qualities.get("application/json", qualities.get("application/*", 0.0))
    return html > 0 and html > json_q


def invalid(name: str, detail: str, **extra: Any) -> APIError:
    return APIError(422, "validation_error", f"{name}: {detail}", parameter=name, **extra)


def check_top_k(value: int) -> int:
    if not TOP_K_MIN <= value <= TOP_K_MAX:
        raise invalid("top_k", f"must be between {TOP_K_MIN} and {TOP_K_MAX}, got {value}")
    return value


def top_k_from_text(text: str) -> int:
    if not _INT_TEXT.match(text):
        raise invalid("top_k", f"must be an integer between {TOP_K_MIN} and {TOP_K_MAX}")
    return check_top_k(int(text))


def top_k_from_json(value: Any) -> int:
    # bool is an int in Python, but `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("top_k", f"must be an integer between {TOP_K_MIN} and {TOP_K_MAX}")
    return check_top_k(value)


def bool_from_text(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise invalid(name, "must be true or false")


def bool_from_json(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(name, "must be a JSON boolean (true or false)")
    return value


def model_type_from_json(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid("model_type", "must be a string such as 'cnn' or 'linear'")
    return value


def decode_base64_image(value: Any) -> bytes:
    """The bytes of a base64 string, with or without a `data:image/...;base64,` prefix."""
    if not isinstance(value, str):
        raise invalid("image", "must be a base64 string (optionally a data: URL)")
    text = value.strip()
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise APIError(
                400,
                "invalid_base64",
                "image: a data URL must look like 'data:image/png;base64,<data>'",
            )
    text = _BASE64_WHITESPACE.sub("", text)
    if not text:
        raise invalid("image", "is empty")
    # Accept data whose '=' padding was stripped (common in URL-safe transports).
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "invalid_base64", "image: not valid base64 data") from None


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """A form field or JSON value that must be one of a few words (classes, encoding)."""
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, f"must be one of {', '.join(choices)}")
    return value


def json_parameters(payload: dict[str, Any], explain: bool = False) -> dict[str, Any]:
    """model_type, top_k and preview of POST /predict/base64 (and classes, encoding of
    /explain/base64), in the order ModelRegistry.predict and .explain take them."""
    values = {
        "model_type": model_type_from_json(payload.get("model_type", DEFAULT_MODEL)),
        "top_k": top_k_from_json(payload.get("top_k", DEFAULT_TOP_K)),
        "preview": bool_from_json("preview", payload.get("preview", False)),
    }
    if explain:
        for name, (choices, default) in EXPLAIN_CHOICES.items():
            values[name] = choice(name, payload.get(name, default), choices)
    return values


def form_parameters(form: FormData, query: QueryParams, explain: bool = False) -> dict[str, Any]:
    """model_type, top_k and preview of POST /predict (and classes, encoding of /explain), in
    the order ModelRegistry.predict and .explain take them: a form field wins over a query
    parameter.

    Both are validated even when the form overrides the query, so that a bad value is never
    silently ignored.
    """
    parsers: dict[str, Callable[[str], Any]] = {
        "model_type": str,
        "top_k": top_k_from_text,
        "preview": lambda text: bool_from_text("preview", text),
    }
    values: dict[str, Any] = {"model_type": DEFAULT_MODEL, "top_k": DEFAULT_TOP_K, "preview": False}
    if explain:
        for name, (choices, default) in EXPLAIN_CHOICES.items():
            parsers[name] = functools.partial(choice, name, choices=choices)
            values[name] = default
    for name, parse in parsers.items():
        for value in (query.get(name), form.get(name)):
            if value is None:
                continue
            if not isinstance(value, str):
                raise invalid(name, "must be a plain form field, not a file")
            values[name] = parse(value)
    return values
