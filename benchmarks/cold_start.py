"""Cold start of the server: from process start to the first successful POST /predict.

    python benchmarks/cold_start.py [--model-dir DIR] [--model cnn] [--runs 3]

Each run spawns `python -m server` on a free port and polls POST /predict with a 280x280 PNG
drawing until it answers 200. Two cases:

- cold Numba cache: NUMBA_CACHE_DIR is a new empty folder, so every kernel is compiled;
- warm Numba cache: the same folder again, now filled by the cold run (the usual case for a
  server restarted on the same machine, or a container image built with a warmed cache).

The models come from --model-dir, else the bundled scratchnet/mnist/pretrained/ when it has both
checkpoints, else freshly initialised ones saved to a temp folder (loading and inference cost
the same whatever the weights).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # when run as a script

from tests.processes import free_port, stop  # noqa: E402


def drawing_png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(img).line([(80, 60), (200, 60), (120, 230)], fill="black", width=18)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(fields: dict[str, str], file_bytes: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def resolve_model_dir(requested: str | None, workdir: Path) -> tuple[Path, str]:
    if requested:
        return Path(requested), "given"
    from scratchnet.mnist.models import PRETRAINED_DIR

    if all((PRETRAINED_DIR / f"{name}.npz").exists() for name in ("cnn", "linear")):
        return PRETRAINED_DIR, "bundled"
    from scratchnet.checkpoint import save_checkpoint
    from scratchnet.mnist.models import MODELS

    directory = workdir / "models"
    for name, cls in MODELS.items():
        meta = {"architecture": {"name": name, "kwargs": {}}, "metrics": {}, "config": {}}
        save_checkpoint(directory / f"{name}.npz", cls().state_dict(), meta)
    return directory, "freshly initialised (no bundled checkpoints yet)"


def load_seconds(port: int, model: str) -> float:
    """The server's own figure: loading the checkpoint plus its warm-up forward pass."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=10) as response:
        models = json.loads(response.read())["models"]
    return next(m["load_seconds"] for m in models if m["name"] == model)


def time_to_first_prediction(
    model_dir: Path, model: str, cache_dir: Path, timeout: float = 120.0
) -> tuple[float, float]:
    """Seconds from spawning the server to its first 200 on /predict, and the model's load."""
    port = free_port()
    body, content_type = multipart({"model_type": model}, drawing_png())
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    command = [
        sys.executable, "-m", "server", "--port", str(port), "--model-dir", str(model_dir),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()}")
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"no successful /predict within {timeout} s")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict",
                data=body,
                headers={"Content-Type": content_type},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    if response.status == 200:
                        elapsed = time.perf_counter() - start
                        return elapsed, load_seconds(port, model)
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise RuntimeError(f"/predict answered {exc.code}: {exc.read()!r}") from None
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.005)
    finally:
        stop(process)


def python_startup() -> float:
    """The floor: an interpreter that imports numpy and exits."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="folder with cnn.npz and linear.npz")
    parser.add_argument("--model", default="cnn", choices=["cnn", "linear"])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="scratchnet-cold-start-"))
    try:
        model_dir, origin = resolve_model_dir(args.model_dir, workdir)
        print(f"models: {model_dir} ({origin}); predicting with {args.model}")
        print(f"python + numpy start-up alone: {python_startup():.3f} s")

        cold, warm = [], []
        for run in range(args.runs):
            cache = workdir / f"numba-cache-{run}"
            cache.mkdir()
            cold.append(time_to_first_prediction(model_dir, args.model, cache))
            warm.append(time_to_first_prediction(model_dir, args.model, cache))

        for label, results in (("cold Numba cache", cold), ("warm Numba cache", warm)):
            totals = [total for total, _ in results]
            loads = [load for _, load in results]
            print(
                f"{label}: first successful /predict after {statistics.median(totals):.3f} s "
                f"(median of {len(totals)}: {', '.join(f'{t:.3f}' for t in totals)}); "
                f"of which loading the {args.model} model and its warm-up forward pass "
                f"{statistics.median(loads):.3f} s"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
