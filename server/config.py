"""Server settings: defaults, then SCRATCHNET_* environment variables, then command-line flags.

    setting            env var                          flag                default
    host               SCRATCHNET_HOST                  --host              127.0.0.1
    port               SCRATCHNET_PORT                  --port              8000
    workers            SCRATCHNET_WORKERS               --workers           1
    model_dir          SCRATCHNET_MODEL_DIR             --model-dir         the bundled models
    max_upload_bytes   SCRATCHNET_MAX_UPLOAD_BYTES      --max-upload-bytes  2 MiB
    cors_origins       SCRATCHNET_CORS_ORIGINS          --cors-origins      none (CORS off)
    frontend_dir       SCRATCHNET_FRONTEND_DIR          --frontend-dir      <repo>/frontend
    max_image_pixels   SCRATCHNET_MAX_IMAGE_PIXELS      --max-image-pixels  16 megapixels
    inference_mode     SCRATCHNET_INFERENCE_MODE        --inference-mode    auto
    numba_threads      SCRATCHNET_NUMBA_THREADS         --numba-threads     1 (0: all cores)
    max_decode_bytes   SCRATCHNET_MAX_DECODE_BYTES      --max-decode-bytes  64 MiB decoded
    decode_concurrency SCRATCHNET_DECODE_CONCURRENCY    --decode-concurrency  half the cores
    header_timeout     SCRATCHNET_HEADER_TIMEOUT        --header-timeout    10 s
    body_timeout       SCRATCHNET_BODY_TIMEOUT          --body-timeout      30 s
    keep_alive_timeout SCRATCHNET_KEEP_ALIVE_TIMEOUT    --keep-alive-timeout  5 s
    max_connections    SCRATCHNET_MAX_CONNECTIONS       --max-connections   256
    max_header_bytes   SCRATCHNET_MAX_HEADER_BYTES      --max-header-bytes  16 KiB
    http_parser        SCRATCHNET_HTTP_PARSER           --http              auto

The environment is also how `python -m server --workers N` hands the flags to its worker
processes: uvicorn starts each worker from the import string `server.app:create_app`, and each
worker reads the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRONTEND_DIR = REPO_ROOT / "frontend"
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 16_000_000
DEFAULT_MAX_DECODE_BYTES = 64 * 1024 * 1024
# Large decodes at once: half the cores (one on the 2-core machine), so that a flood of large
# images leaves the other half to everything else. See server/resources.py.
DEFAULT_DECODE_CONCURRENCY = max(1, (os.cpu_count() or 2) // 2)
# auto: small images inline on the event loop, large ones in the thread pool (server/app.py)
INFERENCE_MODES = ("auto", "threadpool", "inline")
# auto: httptools when it is installed, else h11 (server/protocol.py)
HTTP_PARSERS = ("auto", "httptools", "h11")
ENV_PREFIX = "SCRATCHNET_"


class ConfigError(ValueError):
    """A setting that cannot be parsed or is out of range."""


def _default_model_dir() -> Path:
    # Imported here so that reading the config does not import the model code.
    from scratchnet.mnist.models import PRETRAINED_DIR

    return PRETRAINED_DIR


def parse_origins(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'https://a.example, https://b.example' -> ('https://a.example', 'https://b.example')."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    model_dir: Path = field(default_factory=_default_model_dir)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    cors_origins: tuple[str, ...] = ()
    frontend_dir: Path = DEFAULT_FRONTEND_DIR
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    inference_mode: str = "auto"
    # Threads for Numba's parallel kernels in one prediction (0: every core). One is fastest
    # for a single 28x28 image: see server/inference.py.
    numba_threads: int = 1
    # Run one prediction per model at start-up, so that Numba compiles (or loads its cache)
    # before the first request instead of during it.
    warmup: bool = True
    # Decoding memory: the largest decoded image (width x height x bytes per pixel, from the
    # header), and how many large images decode at once.
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    decode_concurrency: int = DEFAULT_DECODE_CONCURRENCY
    # Slow clients (seconds): the request line and headers must arrive within header_timeout
    # of the connection opening (or of the previous response), the body within body_timeout
    # of the headers; an idle keep-alive connection is closed after keep_alive_timeout.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    # uvicorn's limit_concurrency (connections beyond it are answered 503), and the largest
    # request line plus headers (server/protocol.py, for either parser).
    max_connections: int = 256
    max_header_bytes: int = 16 * 1024
    http_parser: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        object.__setattr__(self, "frontend_dir", Path(self.frontend_dir))
        object.__setattr__(self, "cors_origins", parse_origins(self.cors_origins))
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.max_upload_bytes < 1:
            raise ConfigError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if self.max_image_pixels < 28 * 28:
            raise ConfigError(f"max_image_pixels must be at least 784, got {self.max_image_pixels}")
        if self.numba_threads < 0:
            raise ConfigError(
                f"numba_threads must be 0 (all cores) or more, got {self.numba_threads}"
            )
        for name in ("max_decode_bytes", "decode_concurrency", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_header_bytes < 1024:
            raise ConfigError(
                f"max_header_bytes must be at least 1024, got {self.max_header_bytes}"
            )
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ConfigError(
                    f"{name} must be a positive number of seconds, got {getattr(self, name)}"
                )
        for name, allowed in (
            ("inference_mode", INFERENCE_MODES),
            ("http_parser", HTTP_PARSERS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerConfig:
        """Defaults, replaced by SCRATCHNET_* variables, replaced by non-None overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw.strip() != "":
                values[f.name] = _convert(f.name, raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The SCRATCHNET_* variables that reproduce this config in another process."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "1" if value else "0"
            else:
                text = str(value)
            env[ENV_PREFIX + f.name.upper()] = text
        return env


_INT_FIELDS = {"port", "workers", "max_upload_bytes", "max_image_pixels", "numba_threads"}
_INT_FIELDS |= {"max_decode_bytes", "decode_concurrency", "max_connections", "max_header_bytes"}
_FLOAT_FIELDS = {"header_timeout", "body_timeout", "keep_alive_timeout"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_WORDS |= {"0": False, "false": False, "no": False, "off": False}


def _convert(name: str, raw: str) -> Any:
    for names, parse, expected in (
        (_INT_FIELDS, int, "an integer"),
        (_FLOAT_FIELDS, float, "a number of seconds"),
    ):
        if name in names:
            try:
                return parse(raw)
            except ValueError:
                variable = ENV_PREFIX + name.upper()
                raise ConfigError(f"{variable} must be {expected}, got {raw!r}") from None
    if name == "warmup":
        if raw.lower() not in _BOOL_WORDS:
            raise ConfigError(f"{ENV_PREFIX}WARMUP must be true or false, got {raw!r}")
        return _BOOL_WORDS[raw.lower()]
    return raw
