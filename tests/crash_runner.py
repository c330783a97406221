"""Training runs that crash inside a save, for tests/test_checkpoint_faults.py.

    python tests/crash_runner.py PLAN.json

PLAN: {"mode": "exit" | "kill" | "reference", "data": "synthetic" | "mnist",
       "resume": "fork" | "cli", "args": [training CLI options],
       "trials": [{"step": k, "run_dir": ...}, ...]}

This process imports scratchnet and loads the data once, then forks one child per trial (two
trials at a time), which forks one per run, so that a trial costs its training only. A run
counts the filesystem steps of its saves (scratchnet.checkpoint.save_step) and, at step k:

    exit   calls os._exit: the process ends right after that step, as in a crash; a second
           child then resumes the run as `--resume RUN_DIR` does
    kill   tells its trial's process through a pipe and waits; that process sends it SIGKILL,
           then resumes the run in a second child ("fork"), or leaves that to the test ("cli")

"reference" runs once without a crash and writes the list of steps to steps.json in its folder.
Each child is forked before any training, so it has no worker threads to lose.
Prints one JSON line per trial: how the child ended.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from scratchnet import checkpoint
from scratchnet.mnist import training
from scratchnet.mnist.data import MNIST, load_mnist
from scratchnet.mnist.train import build_parser, config_from_args, jobs_from_args
from scratchnet.mnist.training import train


def empty_plot(*args: object) -> None:
    """Stands in for the three plots: an empty file where the plot would go. matplotlib takes
    a second and a half per run for them, and every resume redraws them from scratch."""
    next(arg for arg in args if isinstance(arg, Path)).write_bytes(b"")


training.plot_history = training.plot_confusion = training.plot_worst = empty_plot

# The trials share nothing but the data: two at a time keep both cores of a 2-core machine
# busy while the other trial waits for its fsyncs.
WORKERS = 2


def synthetic_data() -> MNIST:
    """Noisy stripes, one row per class: learnt slowly enough that the second epoch still
    improves (and so saves best.npz), at no cost of loading MNIST."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 6500).astype(np.int64)  # 6,000 of them for validation
    images = rng.integers(0, 200, (6500, 28, 28), dtype=np.uint8)
    images[np.arange(6500), 2 * labels + 4] += 40
    return MNIST(images[:6300], labels[:6300], images[6300:], labels[6300:])


def run(args: list[str], data: MNIST, run_dir: Path, on_step) -> None:
    """One training run into run_dir, calling on_step(count, step, path) after each step."""
    count = 0

    def counted(step: str, path: Path) -> None:
        nonlocal count
        count += 1
        on_step(count, step, path)

    checkpoint.save_step = counted
    cfg = config_from_args(build_parser().parse_args(args), args[args.index("--model") + 1])
    train(cfg, run_dir, data=data, progress=False, log=lambda line: None)


def resume(run_dir: Path, data: MNIST) -> None:
    """What `python -m scratchnet.train --resume run_dir` does, on the same data."""
    checkpoint.save_step = lambda step, path: None
    jobs = jobs_from_args(build_parser().parse_args(["--resume", str(run_dir)]))
    for cfg, folder, last in jobs:
        train(cfg, folder, last, data=data, progress=False, log=lambda line: None)


def in_child(body) -> int:
    """Run body() in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        except BaseException as exc:  # report, never return into the parent's code
            print(f"child failed: {exc}", file=sys.stderr, flush=True)
            os._exit(3)
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def exit_trial(args: list[str], data: MNIST, target: int, run_dir: Path) -> dict:
    """A run that calls os._exit right after step `target`, then its resume."""

    def crash(count: int, step: str, path: Path) -> None:
        if count == target:
            os._exit(17)

    status = in_child(lambda: run(args, data, run_dir, crash))
    resumed = in_child(lambda: resume(run_dir, data))
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "resume_exit_code": os.waitstatus_to_exitcode(resumed),
    }


def kill_trial(args: list[str], data: MNIST, target: int, run_dir: Path, resume_how: str) -> dict:
    """A run that gets SIGKILL at step `target`, then its resume unless `resume_how` is "cli"."""
    read_end, write_end = os.pipe()

    def pause(count: int, step: str, path: Path) -> None:
        if count == target:
            os.write(write_end, b"!")
            time.sleep(60)  # SIGKILL arrives here

    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        run(args, data, run_dir, pause)
        os._exit(0)
    os.close(write_end)
    reached = os.read(read_end, 1) == b"!"
    os.close(read_end)
    if reached:
        os.kill(pid, signal.SIGKILL)
    status = os.waitpid(pid, 0)[1]
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    ended = {"reached": reached, "killed": killed}
    if resume_how == "fork":
        resumed = in_child(lambda: resume(run_dir, data))
        ended["resume_exit_code"] = os.waitstatus_to_exitcode(resumed)
    return ended


def in_parallel(trials: list[Callable[[], dict]], workers: int = WORKERS) -> list[dict]:
    """Each trial in a forked child of its own, `workers` at a time; what they returned, in
    order. A trial that fails returns {"trial_exit_code": its exit code} instead."""
    results: list[dict] = [{} for _ in trials]
    running: dict[int, tuple[int, int]] = {}  # pid -> (trial index, read end of its pipe)
    waiting = list(enumerate(trials))
    while waiting or running:
        while waiting and len(running) < workers:
            index, trial = waiting.pop(0)
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                code = 0
                try:
                    os.write(write_end, json.dumps(trial()).encode())
                except BaseException as exc:  # report, never return into the parent's code
                    print(f"trial failed: {exc!r}", file=sys.stderr, flush=True)
                    code = 3
                os._exit(code)
            os.close(write_end)
            running[pid] = (index, read_end)
        pid, status = os.wait()
        index, read_end = running.pop(pid)
        with os.fdopen(read_end) as pipe:
            written = pipe.read()
        code = os.waitstatus_to_exitcode(status)
        results[index] = json.loads(written) if code == 0 else {"trial_exit_code": code}
    return results


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    data = synthetic_data() if plan["data"] == "synthetic" else load_mnist(progress=False)
    args = plan["args"]

    if plan["mode"] == "reference":
        run_dir = Path(plan["trials"][0]["run_dir"])

        def reference() -> None:
            steps: list[list] = []
            run(args, data, run_dir, lambda n, step, path: steps.append([n, step, path.name]))
            (run_dir / "steps.json").write_text(json.dumps(steps))

        status = in_child(reference)
        print(json.dumps({"status": status}), flush=True)
        return

    trials = []
    for trial in plan["trials"]:
        target, run_dir = trial["step"], Path(trial["run_dir"])
        if plan["mode"] == "exit":
            trials.append(partial(exit_trial, args, data, target, run_dir))
        else:
            trials.append(partial(kill_trial, args, data, target, run_dir, plan["resume"]))
    for trial, ended in zip(plan["trials"], in_parallel(trials), strict=True):
        print(json.dumps({"step": trial["step"], **ended}), flush=True)


if __name__ == "__main__":
    main()
