"""Start-up time and peak memory: `python benchmarks/startup_memory.py [--limit 6400]`.

Prints, each measured in a fresh Python process:
  1. `import scratchnet` + building the CNN + its first training step (batch 128), with the
     Numba cache warm (the normal case: the kernels were compiled before);
  2. the same with NUMBA_CACHE_DIR pointing to an empty temporary folder: the cold compile;
  3. the peak resident memory (ru_maxrss) of a 1-epoch CNN training run on --limit images
     with the default recipe (batch 64, augmentation), and its time per epoch scaled to the
     full 54,000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FIRST_STEP = """
import time
start = time.perf_counter()
import numpy as np
import scratchnet
from scratchnet import optim
from scratchnet.mnist.models import CNNClassifier
from scratchnet.nn.functional import cross_entropy
from scratchnet.tensor import Tensor
imported = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
model = CNNClassifier()
opt = optim.AdamW(list(model.parameters()), lr=1e-3)
loss = cross_entropy(model(Tensor(x)), rng.integers(0, 10, 128))
opt.zero_grad()
loss.backward()
opt.step()
done = time.perf_counter()
print(f"{imported - start:.3f} {done - start:.3f}")
"""

TRAIN_RUN = """
import json, resource, sys, tempfile, time
from pathlib import Path
from scratchnet.mnist.training import RECIPES, TrainConfig, train
limit = int(sys.argv[1])
cfg = TrainConfig(model="cnn", **{**RECIPES["cnn"], "epochs": 1}, limit=limit)
with tempfile.TemporaryDirectory() as run_dir:
    train(cfg, Path(run_dir), progress=False, log=lambda s: None)
    history = json.loads((Path(run_dir) / "history.json").read_text())
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak_mb, "epoch_s": history[0]["time_s"],
                  "images_per_s": history[0]["images_per_s"], "batch": cfg.batch_size}))
"""


def run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6400, help="training images (54000: all)")
    args = parser.parse_args()

    run(FIRST_STEP)  # make sure the cache is warm
    warm = [run(FIRST_STEP).split() for _ in range(3)]
    warm_import = sorted(float(w[0]) for w in warm)[1]
    warm_total = sorted(float(w[1]) for w in warm)[1]
    print(
        f"warm cache: import scratchnet {warm_import:.2f} s, "
        f"import + first CNN training step {warm_total:.2f} s (median of 3)"
    )
    with tempfile.TemporaryDirectory() as cache:
        cold = run(FIRST_STEP, env={"NUMBA_CACHE_DIR": cache}).split()
    print(
        f"cold cache (empty NUMBA_CACHE_DIR): import {float(cold[0]):.2f} s, "
        f"import + first step {float(cold[1]):.2f} s"
    )

    stats = json.loads(run(TRAIN_RUN, str(args.limit)))
    full_epoch = 54000 / stats["images_per_s"]
    print(
        f"1-epoch CNN run on {args.limit} images (batch {stats['batch']}, augmentation): "
        f"peak RSS {stats['peak_rss_mb']:.0f} MB, {stats['images_per_s']:.0f} images/s "
        f"-> {full_epoch:.1f} s for a 54,000-image epoch"
    )


if __name__ == "__main__":
    main()
