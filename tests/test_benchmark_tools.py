"""The timed benchmarks' helpers: the machine-speed probe and the time-to-accuracy table."""

from __future__ import annotations

from benchmarks import machine_speed, time_to_accuracy


def test_measure_gives_the_products_rate() -> None:
    speed = machine_speed.measure(size=64, rounds=5, copy_bytes=2**20)
    assert speed["best_gflops"] >= speed["median_gflops"] > 0 and speed["copy_gbps"] > 0


def test_probe_runs_in_a_process_of_its_own_on_one_thread() -> None:
    speed = machine_speed.probe()
    assert speed is not None and speed["best_gflops"] >= speed["median_gflops"] > 0
    line = machine_speed.describe(speed)
    assert line.startswith("machine speed: sgemm 512^3 on 1 thread ") and "GFLOP/s" in line
    assert "could not be measured" in machine_speed.describe(None)


def test_time_to_accuracy_table_shows_each_runs_machine_speed(capsys) -> None:
    runs = [
        {"framework": "scratchnet", "seed": 0, "wall_s": 110.0, "epochs": 3,
         "test_accuracy": 0.9943, "load_1min": 1.2, "sgemm_gflops": 64.3, "copy_gbps": 8.04},
        {"framework": "torch", "seed": 0, "wall_s": 180.0, "epochs": 3,
         "test_accuracy": 0.9938, "load_1min": 1.3, "sgemm_gflops": None, "copy_gbps": None},
    ]  # fmt: skip
    time_to_accuracy.print_table(runs, ["scratchnet", "torch"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["framework", "seed", "wall", "s", "epochs", "test", "acc", "load",
                                "sgemm", "copy"]  # fmt: skip
    assert lines[1].split()[-2:] == ["64.3", "8.0"] and lines[2].split()[-2:] == ["-", "-"]
    assert "  target 99.4% in 120 s: met" in lines
    assert "1.64x (target 1.5x: met)" in lines[-1]
