"""scratchnet.mnist.explain on the bundled models against PyTorch's autograd on their twins.

For a few MNIST test digits, each bundled model (scratchnet/mnist/pretrained/) is explained by
scratchnet's own forward and backward, and its reference twin (reference.convert) runs the same
prepared input: the saliency of every class must match torch's input gradient, and every
activation the twin's stages(), to 1e-4 relative to the array's largest value.

The digits are dithered (a little uniform noise on every pixel). On a flat background, conv and
BatchNorm give equal values in exact arithmetic, so every 2x2 max-pool window there is a tie,
broken by float32 rounding, which differs between the two frameworks' convolutions (and between
scratchnet's kernels for a batch of 1 and of 10): the gradient then goes through a different
pixel of the window. Away from ties, as STYLE.md asks of gradient tests, the gradient is one
function of the input and both frameworks must agree. The undithered error is noted in the table.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference.convert import load_scratchnet_checkpoint  # noqa: E402
from scratchnet.mnist import explain, inference, models  # noqa: E402
from tests.gradcheck import relative_error  # noqa: E402

TOLERANCE = 1e-4
DIGITS = [0, 1, 2, 3]  # indices into the MNIST test set: a 7, a 2, a 1 and a 0
DITHER = 0.05  # the largest noise added to a pixel (ink is 1)


def torch_explanation(model, img28: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every class's d logit / d input (10, 28, 28), and the stages' outputs, by torch."""
    x = torch.from_numpy(np.repeat(inference.normalize(img28), 10, axis=0))
    x.requires_grad_(True)
    stages = dict(model.stages(x))
    logits = stages.pop("logits")
    logits.backward(torch.eye(10))
    activations = {name: out[0].detach().numpy() for name, out in stages.items()}
    return x.grad[:, 0].numpy(), activations


@pytest.mark.torch
@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_saliency_and_activations_match_torch(name, mnist, parity_errors) -> None:
    path = models.pretrained_path(name)
    if not path.exists():
        pytest.skip(f"no bundled {name} model at {path}")
    ours = models.load_pretrained(name)
    theirs = load_scratchnet_checkpoint(path)

    rng = np.random.default_rng(0)
    for index in DIGITS:
        img28 = mnist.test_images[index] / np.float32(255)
        undithered = explain.explain(ours, img28, classes="all").saliency
        at_ties = max(
            relative_error(undithered[c], s)
            for c, s in enumerate(torch_explanation(theirs, img28)[0])
        )
        parity_errors.note(
            f"explain {name}, MNIST test digit {index} undithered: saliency differs from torch's "
            f"by {at_ties:.1e} (the CNN: max-pool ties on the flat background)"
        )
        img28 = img28 + rng.uniform(0, DITHER, img28.shape).astype(np.float32)
        explained = explain.explain(ours, img28, classes="all")
        saliency, activations = torch_explanation(theirs, img28)

        assert sorted(explained.saliency) == list(range(10))
        for digit in range(10):
            error = relative_error(explained.saliency[digit], saliency[digit])
            parity_errors.record(f"explain {name}: saliency", "float32", error)
            assert error < TOLERANCE, f"digit image {index}, class {digit}: saliency {error:.1e}"

        assert [n for n, _ in explained.activations] == list(activations)
        for stage, values in explained.activations:
            error = relative_error(values, activations[stage])
            parity_errors.record(f"explain {name}: {stage}", "float32", error)
            assert error < TOLERANCE, f"digit image {index}: {stage} differs by {error:.1e}"
        with torch.no_grad():
            logits = theirs(torch.from_numpy(inference.normalize(img28)))[0].numpy()
        assert relative_error(explained.logits, logits) < TOLERANCE
