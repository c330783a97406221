"""Training runs that crash inside a save, for tests/test_checkpoint_faults.py.

    python tests/crash_runner.py PLAN.json

PLAN: {"mode": "exit" | "kill" | "reference", "data": "synthetic" | "mnist",
       "resume": "fork" | "cli", "args": [training CLI options],
       "trials": [{"step": k, "run_dir": ...}, ...]}

This process imports scratchnet and loads the data once, then forks one child per run, so
that a trial costs its training only. A child counts the filesystem steps of its saves
(scratchnet.checkpoint.save_step) and, at step k:

    exit   calls os._exit: the process ends right after that step, as in a crash; a second
           child then resumes the run as `--resume RUN_DIR` does
    kill   tells this process through a pipe and waits; this process sends it SIGKILL, then
           resumes the run in a second child ("fork"), or leaves that to the test ("cli")

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

    for trial in plan["trials"]:
        target, run_dir = trial["step"], Path(trial["run_dir"])
        if plan["mode"] == "exit":

            def crash(count: int, step: str, path: Path, target: int = target) -> None:
                if count == target:
                    os._exit(17)

            status = in_child(lambda run_dir=run_dir: run(args, data, run_dir, crash))
            resumed = in_child(lambda run_dir=run_dir: resume(run_dir, data))
            ended = {
                "exit_code": os.waitstatus_to_exitcode(status),
                "resume_exit_code": os.waitstatus_to_exitcode(resumed),
            }
        else:
            read_end, write_end = os.pipe()

            def pause(
                count: int, step: str, path: Path, target=target, write_end=write_end
            ) -> None:
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
            if plan["resume"] == "fork":
                resumed = in_child(lambda run_dir=run_dir: resume(run_dir, data))
                ended["resume_exit_code"] = os.waitstatus_to_exitcode(resumed)
        print(json.dumps({"step": target, **ended}), flush=True)


if __name__ == "__main__":
    main()
