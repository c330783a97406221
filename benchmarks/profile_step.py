"""Where a CNN training step's time goes: per operation (forward and backward) and per kernel.

    python benchmarks/profile_step.py [--batch 128] [--steps 30] [--out FILE]

Every Function subclass's forward and backward, every kernel wrapper that a layer calls, and
the optimizer are wrapped with a timer for the length of this script (nothing in scratchnet is
changed). Each call is labelled by the order of its forward in the step (Conv2dFunction#2 is
conv2), so a layer's backward is reported beside its forward. What no timer covers (the graph
walk, Tensor creation, zero_grad) is reported as "engine / other". A cProfile of the same steps
follows, sorted by own time. The batch is the first digits of MNIST's training set (loaded as
scratchnet.mnist.data.load_mnist does: downloaded once, or from SCRATCHNET_MNIST_MIRRORS).

Medians over the steps are reported, with the usual warning: other processes on this machine
make the numbers noisy; compare shares rather than absolute times. `--clock cpu` times with the
calling thread's CPU time instead of the wall clock: with NUMBA_NUM_THREADS=1 that is all of
the step's work, and other processes then change it much less (cache sharing aside).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scratchnet
from scratchnet import ops, optim
from scratchnet.kernels import winograd
from scratchnet.mnist.data import load_mnist, normalize
from scratchnet.mnist.models import CNNClassifier
from scratchnet.nn import batchnorm, conv, pooling
from scratchnet.nn.functional import cross_entropy
from scratchnet.runtime.threads import blas_threads, get_num_threads
from scratchnet.tensor import Function, Tensor

# (module, name) of each kernel wrapper that a layer file imports: patched where it is looked up.
KERNELS = [
    (conv, "im2col"),
    (conv, "col2im"),
    (winograd, "input_transform_into"),
    (winograd, "output_transform_into"),
    (winograd, "output_transform_adjoint_into"),
    (winograd, "input_transform_adjoint_into"),
    (ops.activation, "relu_forward"),
    (ops.activation, "relu_backward"),
    (pooling, "max_pool2d_forward"),
    (pooling, "max_pool2d_backward"),
    (batchnorm, "channel_mean_var"),
    (batchnorm, "channel_grad_sums"),
    (batchnorm, "normalize"),
    (batchnorm, "normalize_backward"),
]

clock = time.perf_counter  # or time.thread_time: --clock
times: dict[str, list[float]] = defaultdict(list)  # label -> seconds of each call in a step
step_times: dict[str, float] = defaultdict(float)


def _all_functions() -> list[type]:
    found, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _instrument() -> None:
    counters: dict[str, int] = defaultdict(int)

    def wrap_forward(cls: type, original: Callable) -> Callable:
        def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            counters[cls.__name__] += 1
            label = f"{cls.__name__}#{counters[cls.__name__]}"
            ctx.profile_label = label
            start = clock()
            out = original(ctx, *args, **kwargs)
            step_times[f"{label} forward"] += clock() - start
            return out

        return staticmethod(forward)

    def wrap_backward(original: Callable) -> Callable:
        def backward(ctx: Any, dy: Any) -> Any:
            start = clock()
            out = original(ctx, dy)
            step_times[f"{ctx.profile_label} backward"] += clock() - start
            return out

        return staticmethod(backward)

    for cls in _all_functions():
        if "forward" in cls.__dict__:
            cls.forward = wrap_forward(cls, cls.__dict__["forward"].__func__)
        if "backward" in cls.__dict__:
            cls.backward = wrap_backward(cls.__dict__["backward"].__func__)

    def wrap_kernel(name: str, original: Callable) -> Callable:
        def kernel(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            out = original(*args, **kwargs)
            step_times[f"  kernel {name}"] += clock() - start
            return out

        return kernel

    for module, name in KERNELS:
        setattr(module, name, wrap_kernel(name, getattr(module, name)))

    def reset_counters() -> None:
        counters.clear()

    _instrument.reset = reset_counters  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default=str(Path(__file__).parent / "profile_cnn_step.txt"))
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    global clock
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    scratchnet.manual_seed(0)
    # Real digits, as benchmarks/per_process.py times: with random pixels the kernels whose
    # branches depend on the data (max-pool's comparisons) behave differently.
    mnist = load_mnist(progress=False)
    x = normalize(mnist.train_images[: args.batch])
    target = mnist.train_labels[: args.batch].astype(np.int64)
    model = CNNClassifier(dropout_rate=0.3)
    model.train()
    optimizer = optim.AdamW(list(model.parameters()), lr=1e-3, weight_decay=5e-4)

    def step() -> None:
        loss = cross_entropy(model(Tensor(x)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # Numba compilation (or cache loading) and first-touch allocations
        step()

    _instrument()
    original_step = optimizer.step

    def timed_step() -> None:
        start = clock()
        original_step()
        step_times["optimizer (AdamW) step"] += clock() - start

    optimizer.step = timed_step  # type: ignore[method-assign]

    totals = []
    for _ in range(args.steps):
        step_times.clear()
        _instrument.reset()  # type: ignore[attr-defined]
        start = clock()
        step()
        totals.append(clock() - start)
        for label, seconds in step_times.items():
            times[label].append(seconds)

    total = float(np.median(totals))
    medians = {label: float(np.median(v)) for label, v in times.items()}
    covered = sum(v for k, v in medians.items() if not k.startswith("  kernel"))
    # Order: forward labels in call order, each followed by its backward, then the rest.
    lines = [
        f"CNN training step (forward, cross-entropy, backward, AdamW), batch {args.batch}, "
        f"float32, median of {args.steps} steps",
        f"Numba threads {get_num_threads()}, BLAS threads {blas_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
        f"{'wall clock' if args.clock == 'wall' else 'CPU time of the calling thread'}",
        f"step: {1e3 * total:.1f} ms",
        "",
        f"{'operation':<44}{'ms':>9}{'share':>8}",
    ]

    def row(label: str, seconds: float) -> str:
        return f"{label:<44}{1e3 * seconds:>9.2f}{100 * seconds / total:>7.1f}%"

    for label in sorted(medians, key=lambda k: (-medians[k]) if not k.startswith(" ") else 1):
        if not label.startswith("  kernel"):
            lines.append(row(label, medians[label]))
    lines.append(row("engine / other (graph walk, zero_grad, ...)", total - covered))
    lines += [
        "",
        "Kernels (inside the operations above, summed over layers, and over threads when a",
        "layer runs them on several at once: then they can add up to more than the layer):",
    ]
    for label in sorted(medians):
        if label.startswith("  kernel"):
            lines.append(row(label, medians[label]))

    conv_total = sum(
        v for k, v in medians.items() if k.startswith(("Conv2dFunction", "Winograd3x3Function"))
    )
    conv_kernels = sum(
        medians.get(f"  kernel {name}", 0) for module, name in KERNELS if module in (conv, winograd)
    )
    lines += [
        "",
        f"Convolutions, forward + backward, all layers: {1e3 * conv_total:.1f} ms "
        f"({100 * conv_total / total:.0f}% of the step); their kernels (im2col, col2im, the "
        f"Winograd transforms) {1e3 * conv_kernels:.1f} ms of thread time, the rest "
        f"mostly BLAS products",
    ]

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.steps):
        step()
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats("tottime")
    stats.print_stats(25)
    lines += ["", f"cProfile of {args.steps} steps, by own time (top 25):", buffer.getvalue()]

    text = "\n".join(line.rstrip() for line in lines).rstrip() + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
