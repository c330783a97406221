"""`python -m server`: run the API with uvicorn.

    python -m server --host 127.0.0.1 --port 8000 [--workers N] [--model-dir DIR]
                     [--max-upload-bytes N] [--cors-origins https://a.example,https://b.example]
                     [--header-timeout S] [--body-timeout S] [--max-connections N]
                     [--http auto|httptools|h11] ...

Every flag can also be set by its SCRATCHNET_* environment variable (see server/config.py); a
flag wins over the variable. The chosen settings are written back to the environment so that
uvicorn's worker processes (with --workers N) build the same app through
`server.app:create_app`.
"""

from __future__ import annotations

import os

# One BLAS thread per process, set before NumPy loads OpenBLAS. A prediction multiplies small
# matrices (one 28x28 image), and handing them to a team of BLAS threads costs far more than
# it saves: on the 2-core machine, under load, a request took 26 ms of CPU with OpenBLAS's
# default threads against 3.8 ms with one. Requests in flight, or --workers, use the cores.
# An explicit OPENBLAS_NUM_THREADS (or MKL_NUM_THREADS) in the environment still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import functools
import sys

from server.config import HTTP_PARSERS, INFERENCE_MODES, ConfigError, ServerConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Serve scratchnet's MNIST classifiers over HTTP.",
    )
    parser.add_argument("--host", help="interface to bind (SCRATCHNET_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (SCRATCHNET_PORT, 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (SCRATCHNET_WORKERS, 1)")
    parser.add_argument(
        "--model-dir", help="folder with cnn.npz/linear.npz (SCRATCHNET_MODEL_DIR, bundled)"
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int,
        help="largest request body accepted (SCRATCHNET_MAX_UPLOAD_BYTES, 2 MiB)",
    )
    parser.add_argument(
        "--cors-origins",
        help="comma-separated origins allowed by CORS (SCRATCHNET_CORS_ORIGINS, CORS off)",
    )
    parser.add_argument("--frontend-dir", help="drawing page folder (SCRATCHNET_FRONTEND_DIR)")
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        help="largest image (width x height) decoded (SCRATCHNET_MAX_IMAGE_PIXELS, 16M)",
    )
    parser.add_argument(
        "--inference-mode",
        choices=INFERENCE_MODES,
        help="run predictions inline when the image is small, in the thread pool when it is "
        "large (auto), always in the thread pool, or always inline (SCRATCHNET_INFERENCE_MODE)",
    )
    parser.add_argument(
        "--numba-threads",
        type=int,
        help="Numba threads per prediction, 0 = all cores (SCRATCHNET_NUMBA_THREADS, 1)",
    )
    parser.add_argument(
        "--max-decode-bytes",
        type=int,
        help="largest decoded image, width x height x bytes per pixel "
        "(SCRATCHNET_MAX_DECODE_BYTES, 64 MiB)",
    )
    parser.add_argument(
        "--decode-concurrency",
        type=int,
        help="large images decoded at once (SCRATCHNET_DECODE_CONCURRENCY, half the cores)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        help="seconds for a request line and headers (SCRATCHNET_HEADER_TIMEOUT, 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        help="seconds for a request body, after its headers (SCRATCHNET_BODY_TIMEOUT, 30)",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=float,
        help="seconds an idle keep-alive connection stays open (SCRATCHNET_KEEP_ALIVE_TIMEOUT, 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        help="connections at once, 503 beyond (SCRATCHNET_MAX_CONNECTIONS, 256)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        help="largest request line plus headers (SCRATCHNET_MAX_HEADER_BYTES, 16 KiB)",
    )
    parser.add_argument(
        "--http",
        choices=HTTP_PARSERS,
        help="HTTP parser: httptools (C) when installed, else h11 (auto), or either one "
        "(SCRATCHNET_HTTP_PARSER)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (info)")
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log every request (faster)"
    )
    return parser.parse_args(argv)


def _listen_with_nodelay() -> None:
    """Make uvicorn's pre-bound socket (used with --workers N) disable Nagle's algorithm.

    asyncio sets TCP_NODELAY only on connections it can tell are TCP, and the socket that
    uvicorn binds for its workers is created without an explicit protocol, so they stay with
    Nagle on. h11 writes a response's headers and body separately, and the body then waits for
    the client's delayed ACK: measured on a keep-alive connection, every request after the
    first took 48-60 ms instead of 4 ms. Linux copies TCP_NODELAY from the listening socket to
    the connections it accepts, so setting it there is enough.
    """
    import socket

    from uvicorn.config import Config

    if getattr(Config.bind_socket, "_nodelay", False):
        return
    original = Config.bind_socket

    def bind_socket(self: Config) -> socket.socket:
        sock = original(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    bind_socket._nodelay = True  # type: ignore[attr-defined]
    Config.bind_socket = bind_socket  # type: ignore[method-assign]


def _log_config(level: str) -> dict:
    """uvicorn's logging config, with the server's own loggers (model loading, errors) added."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["server"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def main(argv: list[str] | None = None) -> int:
    from server.protocol import protocol_class

    args = parse_args(argv)
    try:
        config = ServerConfig.from_env(
            host=args.host,
            port=args.port,
            workers=args.workers,
            model_dir=args.model_dir,
            max_upload_bytes=args.max_upload_bytes,
            cors_origins=args.cors_origins,
            frontend_dir=args.frontend_dir,
            max_image_pixels=args.max_image_pixels,
            inference_mode=args.inference_mode,
            numba_threads=args.numba_threads,
            max_decode_bytes=args.max_decode_bytes,
            decode_concurrency=args.decode_concurrency,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keep_alive_timeout=args.keep_alive_timeout,
            max_connections=args.max_connections,
            max_header_bytes=args.max_header_bytes,
            http_parser=args.http,
        )
        protocol = protocol_class(config.http_parser)
    except ConfigError as exc:
        print(f"python -m server: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    os.environ.update(config.to_env())
    _listen_with_nodelay()
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_config=_log_config(args.log_level),
        log_level=args.log_level,
        access_log=not args.no_access_log,
        # Slow or greedy clients: see server/protocol.py and server/README.md.
        http=functools.partial(
            protocol,
            header_timeout=config.header_timeout,
            max_header_bytes=config.max_header_bytes,
        ),
        timeout_keep_alive=config.keep_alive_timeout,
        limit_concurrency=config.max_connections,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
