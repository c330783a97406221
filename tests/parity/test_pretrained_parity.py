"""The bundled models (scratchnet/mnist/pretrained/*.npz) run in PyTorch: the same predictions.

Each bundled scratchnet checkpoint is loaded into its reference twin with
reference.convert.load_scratchnet_checkpoint, and both predict the 10,000 test digits.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference.convert import load_scratchnet_checkpoint  # noqa: E402
from reference.train import ScratchnetView  # noqa: E402
from scratchnet.mnist import models  # noqa: E402
from scratchnet.mnist.data import normalize  # noqa: E402
from scratchnet.mnist.inference import logits as predict_logits  # noqa: E402
from tests.gradcheck import relative_error  # noqa: E402


@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_bundled_model_predicts_the_same_in_torch(name, mnist, parity_errors):
    path = models.pretrained_path(name)
    if not path.exists():
        pytest.skip(
            f"no bundled {name} model at {path} yet: the lead bundles it with "
            f"`python -m scratchnet.train --model {name} --bundle`"
        )
    ours, _ = models.load_model(path)
    theirs = load_scratchnet_checkpoint(path)
    x = normalize(mnist.test_images)
    y = mnist.test_labels
    logits_ours = predict_logits(ours, x)
    logits_theirs = predict_logits(ScratchnetView(theirs), x)

    max_abs = float(np.abs(logits_ours - logits_theirs).max())
    parity_errors.record(
        f"bundled {name}.npz: test-set logits",
        "float32",
        relative_error(logits_ours, logits_theirs),
    )
    pred_ours, pred_theirs = logits_ours.argmax(1), logits_theirs.argmax(1)
    acc_ours, acc_theirs = 100 * (pred_ours == y).mean(), 100 * (pred_theirs == y).mean()
    parity_errors.note(
        f"bundled {name}.npz on the 10,000 test images: max |logit difference| {max_abs:.2e}, "
        f"{int((pred_ours != pred_theirs).sum())} different predictions, accuracy "
        f"{acc_ours:.2f}% (scratchnet) / {acc_theirs:.2f}% (torch)"
    )
    differ = np.flatnonzero(pred_ours != pred_theirs)
    top2 = np.sort(logits_theirs[differ], axis=1)[:, -2:]
    assert differ.size == 0, (
        f"{differ.size} test images predicted differently, e.g. {differ[:5].tolist()}, with "
        f"top-two logit margins {(top2[:, 1] - top2[:, 0])[:5].tolist()}"
    )
    assert max_abs < 1e-3
