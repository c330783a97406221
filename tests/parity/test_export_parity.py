"""The bundled models exported to safetensors, loaded by PyTorch: the same predictions.

Each bundled model goes through `python -m scratchnet.export --format safetensors`, then
`safetensors.torch.load_file` into its reference twin (reference/models.py) with
load_state_dict(strict=True), and both predict 1,000 MNIST test digits.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import load_file  # noqa: E402

from reference.models import build_model  # noqa: E402
from scratchnet.mnist import models  # noqa: E402
from scratchnet.mnist.data import normalize  # noqa: E402
from scratchnet.mnist.export import main  # noqa: E402
from scratchnet.mnist.inference import logits  # noqa: E402

N_IMAGES = 1000


@pytest.mark.torch
@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_safetensors_export_predicts_the_same_in_torch(name, mnist, tmp_path, parity_errors):
    path = models.pretrained_path(name)
    if not path.exists():
        pytest.skip(f"no bundled {name} model at {path}")
    ours, metadata = models.load_model(path, expected=name)
    exported = tmp_path / f"{name}.safetensors"
    assert main(["--model", name, "--format", "safetensors", "-o", str(exported)]) == 0

    theirs = build_model(name, **metadata["architecture"].get("kwargs", {}))
    theirs.load_state_dict(load_file(exported), strict=True)
    theirs.eval()
    x = normalize(mnist.test_images[:N_IMAGES])
    with torch.no_grad():
        logits_theirs = theirs(torch.from_numpy(x)).numpy()
    logits_ours = logits(ours, x)

    max_abs = float(np.abs(logits_ours - logits_theirs).max())
    pred_ours, pred_theirs = logits_ours.argmax(1), logits_theirs.argmax(1)
    parity_errors.note(
        f"{name}.safetensors in torch, {N_IMAGES} test images: max |logit difference| "
        f"{max_abs:.2e}, predictions agree on {100 * (pred_ours == pred_theirs).mean():.1f}%"
    )
    np.testing.assert_array_equal(pred_ours, pred_theirs)
    assert max_abs < 1e-4
