"""Each framework alone in its own process, as users run them: medians and ratios per pair.

    python benchmarks/per_process.py                    # 2 threads, then 1; 3 pairs per case
    python benchmarks/per_process.py --threads 2 --pairs 5 --cases step64 infer1

In one process, torch's idle threads and scratchnet's disturb each other on a 2-core machine,
so `make bench`'s side-by-side tables flatter one side or the other depending on the moment.
Here every measurement is a fresh process that imports one framework only and runs one case:

    scratchnet       scratchnet's CNN (scratchnet.mnist.models.CNNClassifier)
    scratchnet-fused the same CNN as the server runs it, inference cases only:
                     scratchnet.mnist.inference.for_inference, BatchNorm folded into the convs
                     and the forward replayed from a trace (scratchnet.jit.trace)
    torch            its PyTorch twin (reference.models.CNNClassifier), eager
    torch-compile    the same, channels_last, torch.compile (default mode), with the time of
                     its first call (the compilation) reported apart

The processes alternate A B C A B C ..., each case gets `--pairs` rounds of the three, and the
table gives each framework's median over its processes and the ratio scratchnet / torch eager
of every pair. The cases are the CNN's training step (forward, cross-entropy, zero_grad,
backward, AdamW) at batch 64 and 128 on real MNIST digits, inference on 1,000 digits, and on
one digit. Inputs come from MNIST's training set through a .npy file, so that the torch
processes never import scratchnet (whose import-time settings would change torch's). The
machine's speed is probed before and after (machine_speed.py: one core's float32 matrix
product and a 64 MB copy), since this VM is faster at some hours than at others.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # when run as a script

from benchmarks import machine_speed  # noqa: E402

FRAMEWORKS = ("scratchnet", "torch", "torch-compile", "scratchnet-fused")
CASES = {  # name: (batch size, training?, timed rounds)
    "step64": (64, True, 25),
    "step128": (128, True, 25),
    "infer1000": (1000, False, 15),
    "infer1": (1, False, 200),
}
WARMUP = 3


# ---------------------------------------------------------------------------------------------
# One process: one framework, one case
# ---------------------------------------------------------------------------------------------


def scratchnet_runner(batch: int, train: bool, fused: bool = False):
    import numpy as np

    import scratchnet as sn
    from scratchnet.mnist.inference import for_inference
    from scratchnet.mnist.models import CNNClassifier
    from scratchnet.nn.functional import cross_entropy

    sn.manual_seed(0)
    model = CNNClassifier(dropout_rate=0.0)
    optimizer = sn.optim.AdamW(model.parameters(), lr=1e-3)

    def step(x: np.ndarray, y: np.ndarray) -> None:
        loss = cross_entropy(model(sn.Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def infer(x: np.ndarray, y: np.ndarray) -> None:
        with sn.no_grad():
            model(sn.Tensor(x))

    if not train:
        model.eval()
        if fused:
            model = for_inference(model)
    return step if train else infer


def torch_runner(batch: int, train: bool, compiled: bool):
    import torch
    import torch.nn.functional as F

    from reference.models import CNNClassifier

    torch.manual_seed(0)
    model = CNNClassifier(dropout_rate=0.0)
    if compiled:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if not train:
        model.eval()
    forward = torch.compile(model) if compiled else model

    def as_tensor(x):
        t = torch.from_numpy(x)
        return t.to(memory_format=torch.channels_last) if compiled else t

    def step(x, y) -> None:
        loss = F.cross_entropy(forward(as_tensor(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def infer(x, y) -> None:
        with torch.inference_mode():
            forward(as_tensor(x))

    return step if train else infer


def worker(framework: str, case: str, threads: int, data: Path) -> dict:
    """Time one case in this process; the first call (compilation included) is timed apart."""
    import numpy as np

    batch, train, rounds = CASES[case]
    if framework.startswith("scratchnet"):
        from scratchnet.runtime.threads import set_num_threads

        set_num_threads(threads)
        run = scratchnet_runner(batch, train, fused=framework == "scratchnet-fused")
    else:
        import torch

        torch.set_num_threads(threads)
        run = torch_runner(batch, train, compiled=framework == "torch-compile")

    images = np.load(data / "images.npy")
    labels = np.load(data / "labels.npy")
    batches = [
        (images[i : i + batch], labels[i : i + batch])
        for i in range(0, len(images) - batch + 1, batch)
    ]
    start = time.perf_counter()
    run(*batches[0])
    first = time.perf_counter() - start
    for i in range(WARMUP):
        run(*batches[(i + 1) % len(batches)])
    times = []
    for i in range(rounds):
        x, y = batches[(i + WARMUP + 1) % len(batches)]
        start = time.perf_counter()
        run(x, y)
        times.append(time.perf_counter() - start)
    return {"median_ms": 1000 * statistics.median(times), "first_call_s": first}


# ---------------------------------------------------------------------------------------------
# The driver: alternating processes, medians and ratios
# ---------------------------------------------------------------------------------------------


def prepare_data(folder: Path, count: int = 2048) -> None:
    """Normalised MNIST training digits and their labels as .npy files (scratchnet's loader)."""
    from scratchnet.mnist.data import load_mnist, normalize

    mnist = load_mnist(progress=False)
    import numpy as np

    np.save(folder / "images.npy", normalize(mnist.train_images[:count]))
    np.save(folder / "labels.npy", mnist.train_labels[:count].astype(np.int64))


def run_process(framework: str, case: str, threads: int, data: Path) -> dict:
    env = dict(os.environ)
    env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    if framework.startswith("scratchnet"):
        env.pop("OMP_NUM_THREADS")  # scratchnet's BLAS runs on one thread by its own default
    cmd = [sys.executable, __file__, "--worker", framework, case, str(threads), str(data)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} {case} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(threads: int, cases: list[str], pairs: int, frameworks: list[str], data: Path) -> dict:
    results: dict = {}
    for case in cases:
        trains = CASES[case][1]
        runs: dict[str, list[dict]] = {
            f: [] for f in frameworks if not (trains and f == "scratchnet-fused")
        }
        for _ in range(pairs):
            for framework in runs:  # A B C, A B C, ...: each sees the same moments
                runs[framework].append(run_process(framework, case, threads, data))
        results[case] = runs
        print(format_case(case, runs), flush=True)
    return results


def pair_ratios(runs: dict[str, list[dict]]) -> str:
    """scratchnet / torch eager for every pair, and the fused model's where it ran."""
    text = ""
    for name in ("scratchnet", "scratchnet-fused"):
        if name in runs and "torch" in runs:
            ratios = [s["median_ms"] / t["median_ms"] for s, t in zip(runs[name], runs["torch"])]
            listed = ", ".join(f"{r:.2f}" for r in ratios)
            text += listed if name == "scratchnet" else f" (fused {listed})"
    return text


def format_case(case: str, runs: dict[str, list[dict]]) -> str:
    medians = {f: statistics.median(r["median_ms"] for r in rs) for f, rs in runs.items()}
    parts = [f"{case:>10}"]
    parts += [f"{f} {medians[f]:8.3f} ms" for f in runs]
    if "torch" in runs and "scratchnet" in runs:
        parts.append("ratio per pair " + pair_ratios(runs))
    if "torch-compile" in runs:
        compile_s = statistics.median(r["first_call_s"] for r in runs["torch-compile"])
        parts.append(f"torch.compile first call {compile_s:.1f} s")
    return " | ".join(parts)


def markdown(all_results: dict) -> str:
    lines = []
    for threads, results in all_results.items():
        # Every framework that ran any case, in order (the fused model runs inference only).
        frameworks = list(dict.fromkeys(f for runs in results.values() for f in runs))
        lines.append(f"\n{threads} thread(s), median of each framework's processes (ms):\n")
        header = "| case | " + " | ".join(frameworks) + " | scratchnet / torch per pair |"
        compiled = "torch-compile" in frameworks
        lines.append(header + (" torch.compile's first call (s) |" if compiled else ""))
        lines.append("| --- |" + " --- |" * (len(frameworks) + 1 + compiled))
        for case, runs in results.items():
            cells = [
                f"{statistics.median(r['median_ms'] for r in runs[f]):.3f}" if f in runs else ""
                for f in frameworks
            ]
            row = f"| {case} | " + " | ".join(cells) + f" | {pair_ratios(runs)} |"
            if "torch-compile" in runs:
                first = statistics.median(r["first_call_s"] for r in runs["torch-compile"])
                row += f" {first:.1f} |"
            lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        framework, case, threads, data = argv[1:5]
        print(json.dumps(worker(framework, case, int(threads), Path(data))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "per_process.json")
    args = parser.parse_args(argv)
    if "scratchnet" not in args.frameworks or "torch" not in args.frameworks:
        parser.error("--frameworks must include scratchnet and torch (the ratio's two sides)")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        prepare_data(data)
        all_results = {}
        speeds = {"before": machine_speed.probe()}
        print(machine_speed.describe(speeds["before"]) + ", before", flush=True)
        for threads in args.threads:
            print(f"-- {threads} thread(s), {args.pairs} alternating rounds per case", flush=True)
            all_results[threads] = measure(threads, args.cases, args.pairs, args.frameworks, data)
        speeds["after"] = machine_speed.probe()
    print(markdown(all_results))
    print("\n" + machine_speed.describe(speeds["before"]) + ", before")
    print(machine_speed.describe(speeds["after"]) + ", after")
    args.json.write_text(json.dumps({**all_results, "machine_speed": speeds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
