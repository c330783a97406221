"""Where the time of one POST /predict goes: a 280x280 canvas PNG on the CNN, layer by layer.

    python benchmarks/profile_server.py                 # every part, 400 rounds each
    python benchmarks/profile_server.py --parts stages asgi --rounds 1000
    python benchmarks/profile_server.py --parts protocol --clock cpu   # on a busy machine

Four parts, each a median over `--rounds` repetitions in this process (or, for `http`, over
one keep-alive client's requests to a real server):

    stages   the prediction's own steps, as server.inference.ModelRegistry.predict runs them:
             PNG decode, each step of scratchnet.mnist.imageprep.prepare_image, normalize,
             the forward pass (under the registry's lock and thread count), softmax and the
             answer's fields, the JSON body, the Prometheus metrics; each step alone (its
             own rounds back to back) and in sequence (timed inside whole requests, where
             each step meets the caches as the previous one left them: slower)
    asgi     the whole app called in-process through ASGI (no socket): routing, the
             middleware, multipart parsing, the thread-pool hop, the handler; and the same app
             with the handler's work (registry.predict) replaced by a canned answer, which is
             what the web layers alone cost
    protocol the same app behind each HTTP protocol of server/protocol.py (h11, and httptools
             when installed), in-process: the request's bytes handed to the protocol as a
             socket would, the answer collected from a stand-in transport; canned answers, so
             that the difference to the app alone is the HTTP parsing and writing
    http     a real `uvicorn` server on 127.0.0.1 with one worker, one client on one keep-alive
             connection: the round trip with each HTTP parser (h11, httptools) and event loop
             (asyncio, uvloop) that is installed

The body is the load test's (benchmarks/test_server_load.py): the same drawing, the same
multipart encoding. Time it under the machine's shared lock, as every timed run here.
`--clock cpu` times the in-process parts by the process's CPU time (all its threads) instead of
the wall clock (not `http`): on a machine that others keep busy, the time spent waiting for a
core drops out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cold_start import drawing_png, multipart  # noqa: E402

PARTS = ("stages", "asgi", "protocol", "http")
INFERENCE_MODES = ("threadpool", "inline")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter  # main() sets it from --clock


def median_us(fn: Callable[[], Any], rounds: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e6 * statistics.median(times)


def report(rows: list[tuple[str, float]], total_label: str | None = None) -> None:
    for name, us in rows:
        print(f"  {name:<44} {us / 1000:8.3f} ms")
    if total_label:
        print(f"  {total_label:<44} {sum(us for _, us in rows) / 1000:8.3f} ms")


# ---------------------------------------------------------------------------------------------
# stages: the prediction's own work
# ---------------------------------------------------------------------------------------------


def profile_stages(rounds: int) -> None:
    import numpy as np
    from starlette.responses import JSONResponse

    from scratchnet.mnist import imageprep, inference
    from scratchnet.mnist.models import PRETRAINED_DIR
    from server.inference import ModelRegistry
    from server.metrics import Metrics

    registry = ModelRegistry(PRETRAINED_DIR, imageprep.DEFAULT_MAX_PIXELS)
    registry.load_all()
    entry = registry.get("cnn")
    metrics = Metrics(["cnn", "linear"])
    png = drawing_png()

    # Each step's input, computed once by the same calls prepare_image makes (an opaque 8-bit
    # picture: the table path of imageprep._cropped_ink).
    image = imageprep.decode_image(png)
    lum8, _ = imageprep._luminance_alpha8(image)
    crop = imageprep._cropped_ink8(lum8)
    restored = imageprep._restore_strokes(crop)
    resized = imageprep._resize_longer_side(restored, imageprep.DIGIT_BOX)
    resized /= float(resized.max())
    img28 = imageprep._centre_by_mass(resized)
    x = inference.normalize(img28)
    logits = registry._forward(entry.predictor, x)
    prediction = inference.Prediction(inference.softmax(logits[0]))
    answer = registry._answer(entry, prediction, 0.5, img28, 3, False)

    def answer_fields() -> None:
        p = inference.Prediction(inference.softmax(logits[0]))
        registry._answer(entry, p, 0.5, img28, 3, False)

    rows = [
        ("decode_image (PNG -> PIL, 280x280 RGB)", lambda: imageprep.decode_image(png)),
        ("8-bit luminance (PIL convert L)", lambda: imageprep._luminance_alpha8(image)),
        ("ink, stretch, crop (256-level table)", lambda: imageprep._cropped_ink8(lum8)),
        ("_restore_strokes", lambda: imageprep._restore_strokes(crop)),
        ("_resize_longer_side to 20 px", lambda: imageprep._resize_longer_side(restored, 20)),
        ("_centre_by_mass", lambda: imageprep._centre_by_mass(resized)),
        ("inference.normalize", lambda: inference.normalize(img28)),
        ("forward, BN folded (lock, 1 thread)", lambda: registry._forward(entry.predictor, x)),
        ("  the same, the model as trained", lambda: registry._forward(entry.model, x)),
        ("softmax, Prediction, answer fields", answer_fields),
        ("JSONResponse body", lambda: JSONResponse(answer)),
        ("metrics.observe_prediction", lambda: metrics.observe_prediction("cnn", "7", 0.5)),
    ]

    def in_sequence() -> list[float]:
        """The same steps one after the other, as one request runs them: each finds the
        caches as the previous step left them, not as its own last round did."""
        marks = [clock()]
        decoded = imageprep.decode_image(png)
        marks.append(clock())
        lum = imageprep._luminance_alpha8(decoded)[0]
        marks.append(clock())
        cropped = imageprep._cropped_ink8(lum)
        marks.append(clock())
        thick = imageprep._restore_strokes(cropped)
        marks.append(clock())
        small = imageprep._resize_longer_side(thick, imageprep.DIGIT_BOX)
        small /= float(small.max())
        marks.append(clock())
        digit = imageprep._centre_by_mass(small)
        marks.append(clock())
        batch = inference.normalize(digit)
        marks.append(clock())
        scores = registry._forward(entry.predictor, batch)
        marks.append(clock())
        result = registry._answer(
            entry, inference.Prediction(inference.softmax(scores[0])), 0.5, digit, 3, False
        )
        marks.append(clock())
        JSONResponse(result)
        marks.append(clock())
        metrics.observe_prediction("cnn", result["predicted_class"], 0.5)
        marks.append(clock())
        return [1e6 * (b - a) for a, b in itertools.pairwise(marks)]

    print(f"stages, median of {rounds} rounds each, alone and in sequence:")
    alone = [(name, median_us(fn, rounds)) for name, fn in rows]
    sequences = [in_sequence() for _ in range(rounds + 20)][20:]
    steps = [row for row in alone if not row[0].startswith("  ")]
    sequenced = [statistics.median(column) for column in zip(*sequences)]
    for (name, us), seq_us in zip(steps, sequenced, strict=True):
        print(f"  {name:<44} {us / 1000:8.3f} ms {seq_us / 1000:8.3f} ms")
    total = sum(us for _, us in steps)
    print(f"  {'sum of the stages':<44} {total / 1000:8.3f} ms {sum(sequenced) / 1000:8.3f} ms")
    report([row for row in alone if row[0].startswith("  ")])
    whole = median_us(lambda: registry.predict(png, "cnn", 3, False), rounds)
    print(f"  {'registry.predict, whole (decode to answer)':<44} {whole / 1000:8.3f} ms")
    np.testing.assert_array_equal(imageprep.prepare_image(image), img28)  # the same steps


# ---------------------------------------------------------------------------------------------
# asgi: the app in-process, without a socket
# ---------------------------------------------------------------------------------------------


def asgi_request(app: Any, body: bytes, content_type: str) -> Callable[[], Awaitable[None]]:
    """One POST /predict through the app's ASGI interface, as uvicorn would send it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def call() -> None:
        sent = False
        statuses = []

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # a client that waits for the answer
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(dict(scope), receive, send)
        if statuses != [200]:
            raise RuntimeError(f"POST /predict answered {statuses}")

    return call


async def interleaved_medians_us(
    calls: dict[str, Callable[[], Awaitable[None]]], rounds: int, block: int = 20
) -> dict[str, float]:
    """The median time of each coroutine function, calls alternating in blocks of `block`, so
    that each sees the same moments of a busy machine; all in one task (as uvicorn's: anyio
    stops its worker threads when the task that started them ends)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        for _ in range(block):
            await fn()
    for _ in range(max(1, rounds // block)):
        for name, fn in calls.items():
            for _ in range(block):
                start = clock()
                await fn()
                times[name].append(clock() - start)
    return {name: 1e6 * statistics.median(ts) for name, ts in times.items()}


def profile_asgi(rounds: int) -> None:
    from scratchnet.mnist.models import PRETRAINED_DIR
    from server.app import create_app
    from server.config import ServerConfig

    png = drawing_png()
    body, content_type = multipart({"model_type": "cnn"}, png)
    apps = {
        mode: create_app(ServerConfig.from_env(model_dir=PRETRAINED_DIR, inference_mode=mode))
        for mode in INFERENCE_MODES
    }

    async def measure() -> dict[str, float]:
        async with contextlib.AsyncExitStack() as stack:
            whole, web = {}, {}
            for mode, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))
                request = asgi_request(app, body, content_type)
                whole[f"app(POST /predict), inference {mode}"] = request
                web[f"  the web layers alone (canned answer), {mode}"] = request
            medians = await interleaved_medians_us(whole, rounds)
            for app in apps.values():  # the same requests, predict's answer canned
                canned = app.state.registry.predict(png, "cnn", 3, False)
                app.state.registry.predict = lambda *args, answer=canned: dict(answer)
            return medians | await interleaved_medians_us(web, rounds)

    rows = list(asyncio.run(measure()).items())
    print(f"asgi, median of {rounds} rounds each, interleaved (no socket, no HTTP parsing):")
    report(rows)


# ---------------------------------------------------------------------------------------------
# protocol: the app behind uvicorn's HTTP protocol, in-process
# ---------------------------------------------------------------------------------------------


class _Transport(asyncio.Transport):
    """What a protocol needs of a socket's transport: the answer's bytes are kept in `out`."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def protocol_request(app: Any, parser: str, request: bytes) -> Callable[[], Awaitable[None]]:
    """One keep-alive request through server/protocol.py's protocol for `parser`."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from server.protocol import protocol_class

    config = Config(app=app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    protocol = protocol_class(parser)(
        config=config, server_state=ServerState(), app_state={},
        header_timeout=10.0, max_header_bytes=16 * 1024,
    )  # fmt: skip
    transport = _Transport()
    protocol.connection_made(transport)
    loop = asyncio.get_running_loop()
    answered = [loop.create_future()]
    on_response_complete = protocol.on_response_complete

    def complete() -> None:
        on_response_complete()
        answered[0].set_result(None)

    protocol.on_response_complete = complete

    async def call() -> None:
        answered[0] = loop.create_future()
        protocol.data_received(request)
        await answered[0]
        if not transport.out[0].startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"POST /predict answered {transport.out[0][:40]!r}")
        transport.out.clear()

    return call


def profile_protocol(rounds: int) -> None:
    from scratchnet.mnist.models import PRETRAINED_DIR
    from server.app import create_app
    from server.config import ServerConfig
    from server.protocol import httptools_installed

    png = drawing_png()
    body, content_type = multipart({"model_type": "cnn"}, png)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept-Encoding: identity\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    app = create_app(ServerConfig.from_env(model_dir=PRETRAINED_DIR, inference_mode="inline"))
    parsers = ["h11", "httptools"] if httptools_installed() else ["h11"]

    async def measure() -> dict[str, float]:
        async with app.router.lifespan_context(app):
            canned = app.state.registry.predict(png, "cnn", 3, False)
            app.state.registry.predict = lambda *args: dict(canned)
            calls = {"app alone (ASGI), canned answer": asgi_request(app, body, content_type)}
            for parser in parsers:
                calls[f"{parser} protocol + app, canned answer"] = protocol_request(
                    app, parser, request
                )
            return await interleaved_medians_us(calls, rounds)

    rows = list(asyncio.run(measure()).items())
    print(f"protocol, median of {rounds} rounds each, interleaved (no socket):")
    report(rows)


# ---------------------------------------------------------------------------------------------
# http: a real server, one keep-alive client
# ---------------------------------------------------------------------------------------------

LAUNCH = """
import functools, sys, uvicorn
from server.__main__ import _listen_with_nodelay
from server.protocol import protocol_class
_listen_with_nodelay()
http = functools.partial(protocol_class(sys.argv[2]), header_timeout=10, max_header_bytes=16384)
uvicorn.run("server.app:create_app", factory=True, port=int(sys.argv[1]), http=http,
            loop=sys.argv[3], access_log=False, log_level="warning")
"""


def profile_http(rounds: int) -> None:
    import os
    import subprocess

    from benchmarks.test_server_load import run_clients
    from server.protocol import httptools_installed
    from tests.processes import _healthy, free_port, stop

    body, content_type = multipart({"model_type": "cnn"}, drawing_png())
    parsers = ["h11", "httptools"] if httptools_installed() else ["h11"]
    loops = [lp for lp in ("asyncio", "uvloop") if importlib.util.find_spec(lp)]
    print(f"http, one client on one keep-alive connection, {rounds} requests, 1 worker:")
    for mode in INFERENCE_MODES:
        for parser in parsers:
            for loop in loops:
                port = free_port()
                cmd = [sys.executable, "-c", LAUNCH, str(port), parser, loop]
                env = dict(os.environ, SCRATCHNET_INFERENCE_MODE=mode)
                process = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)
                try:
                    deadline = time.monotonic() + 60
                    while not _healthy(port):
                        if process.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(process.stderr.read().decode()[-2000:])
                        time.sleep(0.05)
                    address = ("127.0.0.1", port)
                    run_clients(address, body, content_type, 50, 1)  # warm-up
                    latencies, errors, wall = run_clients(address, body, content_type, rounds, 1)
                finally:
                    stop(process)
                if errors:
                    raise RuntimeError(f"{parser}/{loop}/{mode}: {errors[:3]}")
                p50 = 1000 * statistics.median(latencies)
                label = f"{parser} + {loop}, inference {mode}"
                print(f"  {label:<44} {p50:8.3f} ms p50, {rounds / wall:5.0f} req/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--clock", choices=CLOCKS, default="wall", help="in-process parts")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    from scratchnet.runtime.threads import set_num_threads

    set_num_threads(1)  # as the server's forward pass runs (--numba-threads 1)
    for part in args.parts:
        run = {
            "stages": profile_stages,
            "asgi": profile_asgi,
            "protocol": profile_protocol,
            "http": profile_http,
        }[part]
        run(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
