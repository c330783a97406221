"""The tutorials in docs/learn/ run, so that they cannot rot: exit status 0 and their key line.

Each script asserts its own numbers (gradients equal, accuracy above 90%); this test runs it
as a reader would, in a fresh process, from the repository root. Their run times are in
docs/learn/README.md (`pytest tests/test_tutorials.py --durations=0` measures them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LEARN = REPO / "docs" / "learn"

TUTORIALS = {
    "01_backprop_by_hand.py": "gradcheck: a wrong tanh backward fails, as it should",
    "02_train_a_cnn.py": "test accuracy: ",
    "03_batchnorm_backward.py": "the steps, the compact formula and BatchNorm2d agree",
}


def test_every_tutorial_is_listed():
    assert sorted(path.name for path in LEARN.glob("*.py")) == sorted(TUTORIALS)


@pytest.mark.parametrize("script", sorted(TUTORIALS))
def test_tutorial_runs(script, request):
    if script == "02_train_a_cnn.py":
        request.getfixturevalue("mnist")  # skips when MNIST cannot be had
    result = subprocess.run(
        [sys.executable, str(LEARN / script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert TUTORIALS[script] in result.stdout, result.stdout
