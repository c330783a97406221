"""A crash at any instant of a save leaves a run that `--resume` finishes, bit-identically.

Both tests drive tests/crash_runner.py, which forks one training process per trial:
- every filesystem step of every save after config.json, in turn: os._exit right after it,
  then a resume, on synthetic digits (a trial costs a fraction of a second);
- a real SIGKILL aimed at five chosen instants of the second epoch's saves (the gap between
  best.npz and last.npz among them), then the real `python -m scratchnet.train --resume`.
Each finished run must equal the uninterrupted one: weights, optimizer state, history and test
metrics, all but the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchnet.checkpoint import load_checkpoint

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = RUNNER.parent.parent
ARGS = ["--model", "linear", "--epochs", "2", "--limit", "300", "--dropout", "0.2"]
TIMING = {"time_s", "images_per_s", "train_time_s", "single_image_ms", "batch_images_per_s"}


def run_plan(
    tmp_path: Path, mode: str, data: str, trials: list[dict], resume: str = "fork"
) -> list[dict]:
    plan = tmp_path / f"{mode}.json"
    contents = {"mode": mode, "data": data, "resume": resume, "args": ARGS, "trials": trials}
    plan.write_text(json.dumps(contents))
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(plan)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def reference_run(tmp_path: Path, data: str) -> tuple[Path, list[list]]:
    run_dir = tmp_path / "reference"
    assert run_plan(tmp_path, "reference", data, [{"run_dir": str(run_dir)}]) == [{"status": 0}]
    steps = json.loads((run_dir / "steps.json").read_text())
    (run_dir / "steps.json").unlink()
    return run_dir, steps


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def assert_same_run(expected: Path, actual: Path) -> None:
    """The same weights, optimizer state, history and metrics; the same files, no leftovers."""
    assert sorted(p.name for p in actual.iterdir()) == sorted(p.name for p in expected.iterdir())
    for name in ("last.npz", "best.npz"):
        state_a, meta_a, opt_a = load_checkpoint(expected / name)
        state_b, meta_b, opt_b = load_checkpoint(actual / name)
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            assert state_a[key].tobytes() == state_b[key].tobytes(), f"{name}: {key}"
        assert (opt_a is None) == (opt_b is None)
        if opt_a is not None:
            for index, values in opt_a["state"].items():
                for key, value in values.items():
                    np.testing.assert_array_equal(value, opt_b["state"][index][key])
        assert meta_a["epoch"] == meta_b["epoch"]
        assert without_times(meta_a["history"]) == without_times(meta_b["history"])
    for name in ("history.json", "metrics.json"):
        a = json.loads((expected / name).read_text())
        b = json.loads((actual / name).read_text())
        assert without_times(a) == without_times(b), name


def test_exit_after_every_step_of_every_save_then_resume(tmp_path):
    reference, steps = reference_run(tmp_path, "synthetic")
    # config.json's own steps come first: before it exists there is no run to resume.
    first = next(n for n, step, name in steps if step == "sync folder" and name == reference.name)
    targets = [n for n, _, _ in steps if n > first]
    assert len(targets) >= 5 * 6  # best, last, history per epoch; metrics, the final best
    trials = [{"step": n, "run_dir": str(tmp_path / f"crash{n}")} for n in targets]

    results = run_plan(tmp_path, "exit", "synthetic", trials)

    assert [r["step"] for r in results] == targets
    for result, trial in zip(results, trials):
        assert result["exit_code"] == 17, result  # the crash happened where it was aimed
        assert result["resume_exit_code"] == 0, result
        assert_same_run(reference, Path(trial["run_dir"]))


def kill_targets(steps: list[list]) -> list[int]:
    """Epoch 2's saves: best.npz renamed but last.npz not yet (the gap of issue 11), last.npz
    half-written, last.npz written but not synced, history.json just created; and the final
    best.npz written but not renamed."""
    last_renames = [n for n, step, name in steps if step == "rename" and name == "last.npz"]
    epoch2 = [s for s in steps if last_renames[0] + 1 < s[0] <= last_renames[1]]
    return [
        next(n for n, step, name in epoch2 if step == "rename" and name == "best.npz"),
        next(n for n, step, name in epoch2 if step == "create" and "last.npz" in name),
        next(n for n, step, name in epoch2 if step == "write" and "last.npz" in name),
        next(n for n, step, name in epoch2 if step == "create" and "history" in name),
        next(n for n, step, name in reversed(steps) if step == "close" and "best.npz" in name),
    ]


def test_kill_9_during_saves_then_resume(tmp_path):
    reference, steps = reference_run(tmp_path, "synthetic")
    chosen = kill_targets(steps)
    trials = [{"step": n, "run_dir": str(tmp_path / f"kill{n}")} for n in chosen]

    results = run_plan(tmp_path, "kill", "synthetic", trials)

    for result, trial in zip(results, trials, strict=True):
        assert result == {
            "step": trial["step"],
            "reached": True,
            "killed": True,
            "resume_exit_code": 0,
        }
        assert_same_run(reference, Path(trial["run_dir"]))


def test_kill_9_between_best_and_last_then_the_resume_command(tmp_path, mnist):
    reference, steps = reference_run(tmp_path, "mnist")
    gap = kill_targets(steps)[0]
    run_dir = tmp_path / "killed"
    trial = {"step": gap, "run_dir": str(run_dir)}
    assert run_plan(tmp_path, "kill", "mnist", [trial], resume="cli") == [
        {"step": gap, "reached": True, "killed": True}
    ]
    leftover = run_dir / ".junk.npz.0123456789abcdef.tmp"  # as a kill mid-write leaves
    leftover.write_bytes(b"half")

    resumed = subprocess.run(
        [sys.executable, "-m", "scratchnet.train", "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )

    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert not leftover.exists()
    assert_same_run(reference, run_dir)


@pytest.mark.parametrize("broken", ["config", "metadata"])
def test_resume_of_a_broken_run_is_one_line_and_status_2(tmp_path, broken):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("[" * 100_000 if broken == "config" else "{}")
    if broken == "metadata":
        from scratchnet.checkpoint import save_checkpoint
        from scratchnet.mnist.models import LinearClassifier

        (run_dir / "config.json").write_text(
            json.dumps(
                {
                    "model": "linear",
                    "epochs": 2,
                    "batch_size": 64,
                    "lr": 0.001,
                    "optimizer": "adam",
                    "momentum": 0.9,
                    "scheduler": "cosine",
                    "weight_decay": 0.0,
                    "dropout": 0.0,
                    "augment": False,
                }
            )
        )
        model = LinearClassifier()
        save_checkpoint(run_dir / "last.npz", model.state_dict(), {}, {"state": {}})
    result = subprocess.run(
        [sys.executable, "-m", "scratchnet.train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
