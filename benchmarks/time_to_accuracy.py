"""Time to accuracy: `--recipe fast` from the command line, scratchnet then torch, seed by seed.

    python benchmarks/time_to_accuracy.py                       # seeds 0 1 2, both frameworks
    python benchmarks/time_to_accuracy.py --seeds 0 --frameworks scratchnet
    python benchmarks/time_to_accuracy.py --lock /tmp/cpu.lock  # hold a lock file for each run

Each run is the whole command a user types, in its own process, timed from start to exit:

    python -m scratchnet.train --model cnn --recipe fast --seed S --no-progress --output-dir D
    python -m reference.train  --model cnn --recipe fast --seed S --no-progress --output-dir D

so the wall time includes the imports, loading MNIST (already downloaded), every epoch with its
validation and checkpoints, the test evaluation and the plots. The runs alternate, scratchnet
and torch for seed 0, then for seed 1, ..., so that a change in the machine's load hits both.
The table gives each run's wall time, epochs and test accuracy (from its metrics.json), each
framework's medians, and the ratio torch / scratchnet of the median wall times. Issue 16's
target: scratchnet at 99.4% or more in 120 s or less, torch at least 1.5x as long. Before each
run the machine's speed is probed (machine_speed.py: one core's float32 matrix product, in
GFLOP/s, the `sgemm` column, and a 64 MB copy in GB/s, `copy`), since this VM is faster at
some hours than at others.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # when run as a script

from benchmarks import machine_speed  # noqa: E402

MODULES = {"scratchnet": "scratchnet.train", "torch": "reference.train"}
TARGET_ACCURACY = 0.994
TARGET_SECONDS = 120.0
TARGET_RATIO = 1.5


@contextmanager
def held(lock: Path | None) -> Iterator[None]:
    """An exclusive flock on `lock` for the block (nothing when lock is None)."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_once(framework: str, seed: int, output_dir: Path, recipe: str, lock: Path | None) -> dict:
    """One training command in its own process: wall time (s), epochs and test accuracy."""
    run_root = output_dir / f"{framework}-seed{seed}"
    command = [
        sys.executable,
        "-m",
        MODULES[framework],
        "--model",
        "cnn",
        "--recipe",
        recipe,
        "--seed",
        str(seed),
        "--no-progress",
        "--output-dir",
        str(run_root),
    ]
    with held(lock):
        speed = machine_speed.probe()
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed ({done.returncode}):\n{done.stderr}")
    run_dir = max(run_root.iterdir())  # the newest: folders are named <model>-<timestamp>
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "framework": framework,
        "seed": seed,
        "wall_s": seconds,
        "epochs": metrics["epochs_run"],
        "test_accuracy": metrics["test_accuracy"],
        "load_1min": load,
        "sgemm_gflops": None if speed is None else speed["median_gflops"],
        "copy_gbps": None if speed is None else speed["copy_gbps"],
    }


def print_table(runs: list[dict], frameworks: list[str]) -> None:
    print(
        f"{'framework':12}{'seed':>6}{'wall s':>10}{'epochs':>8}{'test acc':>10}{'load':>7}"
        f"{'sgemm':>8}{'copy':>7}"
    )
    for r in runs:
        gflops, gbps = r["sgemm_gflops"], r["copy_gbps"]
        print(
            f"{r['framework']:12}{r['seed']:>6}{r['wall_s']:>10.1f}{r['epochs']:>8}"
            f"{100 * r['test_accuracy']:>9.2f}%{r['load_1min']:>7.2f}"
            f"{'-' if gflops is None else f'{gflops:.1f}':>8}"
            f"{'-' if gbps is None else f'{gbps:.1f}':>7}"
        )
    medians = {}
    for fw in frameworks:
        mine = [r for r in runs if r["framework"] == fw]
        medians[fw] = statistics.median(r["wall_s"] for r in mine)
        accuracy = statistics.median(r["test_accuracy"] for r in mine)
        print(f"{fw + ' median':18}{medians[fw]:>10.1f}{'':8}{100 * accuracy:>9.2f}%")
        if fw == "scratchnet":
            met = accuracy >= TARGET_ACCURACY and medians[fw] <= TARGET_SECONDS
            verdict = "met" if met else "not met"
            print(f"  target {100 * TARGET_ACCURACY:.1f}% in {TARGET_SECONDS:.0f} s: {verdict}")
    if {"scratchnet", "torch"} <= medians.keys():
        ratio = medians["torch"] / medians["scratchnet"]
        verdict = "met" if ratio >= TARGET_RATIO else "not met"
        print(f"torch / scratchnet wall time: {ratio:.2f}x (target {TARGET_RATIO}x: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frameworks", nargs="+", choices=list(MODULES), default=list(MODULES))
    parser.add_argument("--recipe", default="fast")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="keep the run folders here (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="hold an exclusive flock on this file during "
        "each run (and only then), as the machine's shared CPU lock asks",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the runs here")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        output_dir = args.output_dir or Path(scratch)
        for seed in args.seeds:
            for fw in args.frameworks:
                run = run_once(fw, seed, output_dir, args.recipe, args.lock)
                print(
                    f"{fw} seed {seed}: {run['wall_s']:.1f} s, {run['epochs']} epochs, "
                    f"{100 * run['test_accuracy']:.2f}%",
                    flush=True,
                )
                runs.append(run)
    print()
    print_table(runs, args.frameworks)
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
