"""See inside a classifier: what it computes for one drawing, by scratchnet's forward and backward.

    input        x = inference.normalize(img28): the (28, 28) MNIST-normalised input
    activations  the named results of model.stages(x), the very values forward computes
                 (CNN: block1 32x14x14, block2 64x7x7, block3 128x7x7, features 128 for
                 each cell of the final pool, 1,152 for the bundled CNN's 3x3; linear: none)
    saliency     s[c] = d logit[c] / d x, for each class c asked, by backward()
    gradient x input  s[c] * x: where the input's own values push the score
    filters      CNN: conv1.weight, the 32 first-layer 3x3 filters
    templates    linear: weight[c] as a 28x28 image, one per class
    contributions  linear: weight[c] * x, whose sum plus bias[c] is logit[c]

All the saliency maps come from one forward pass of x alone, and one backward per class asked,
through the same graph (retain_graph=True), with a one-hot upstream gradient:

    dy[j] = 1 if j == c else 0,   so   x.grad = d logit[c] / d x

The forward is the same whatever classes are asked, so the predicted class's map is the same
with classes="predicted" and classes="all". (A batch of ten copies would be one backward, but
another batch size can take another convolution algorithm, whose last-bit rounding decides
which of two equal pixels a 2x2 max-pool picks on a flat background, and so where that
pixel's gradient goes.)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scratchnet import enable_grad, nn
from scratchnet.mnist import inference
from scratchnet.mnist.models import CNNClassifier, LinearClassifier
from scratchnet.tensor import Tensor

CLASSES = ("predicted", "all")
ENCODINGS = ("list", "base64")
Classes = Literal["predicted", "all"]
Encoding = Literal["list", "base64"]


@dataclass(frozen=True)
class Explanation:
    """What a model computed for one prepared digit. Arrays are float32, without a batch axis."""

    input: np.ndarray  # (28, 28), normalised
    logits: np.ndarray  # (num_classes,)
    prediction: inference.Prediction
    saliency: dict[int, np.ndarray]  # class -> (28, 28) d logit[class] / d input
    activations: list[tuple[str, np.ndarray]]  # (name, values), in forward's order
    filters: np.ndarray | None = None  # CNN: conv1.weight (32, 1, 3, 3)
    templates: np.ndarray | None = None  # linear: fc.weight as (num_classes, 28, 28)
    contributions: dict[int, np.ndarray] | None = None  # linear: class -> weight[class] * input

    @property
    def gradient_x_input(self) -> dict[int, np.ndarray]:
        return {c: s * self.input for c, s in self.saliency.items()}

    def is_finite(self) -> bool:
        """False when any number is NaN or infinite (damaged weights): JSON cannot hold it."""
        arrays = [self.logits, *self.saliency.values(), *(a for _, a in self.activations)]
        arrays += list((self.contributions or {}).values())
        return all(np.isfinite(a).all() for a in arrays)

    def to_json(self, encoding: Encoding = "list") -> dict[str, Any]:
        """The /explain fields beside the prediction's (server/openapi.py documents them).

        The 28x28 maps (input, saliency, gradient_x_input, contributions) are always nested
        lists. The larger arrays (activations, filters, templates) are {name, shape, encoding,
        values}: values as nested lists, or with encoding="base64" as the base64 of their
        little-endian float32 bytes in C order.
        """
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        body: dict[str, Any] = {
            "input": self.input.tolist(),
            "saliency": _maps(self.saliency),
            "gradient_x_input": _maps(self.gradient_x_input),
            "activations": [_array(values, encoding, name) for name, values in self.activations],
        }
        if self.filters is not None:
            body["filters"] = _array(self.filters, encoding, "conv1.weight")
        if self.templates is not None:
            body["templates"] = _array(self.templates, encoding)
        if self.contributions is not None:
            body["contributions"] = _maps(self.contributions)
        return body


def _maps(maps: dict[int, np.ndarray]) -> dict[str, list]:
    return {str(c): m.tolist() for c, m in maps.items()}


def _array(values: np.ndarray, encoding: Encoding, name: str | None = None) -> dict[str, Any]:
    if encoding == "base64":
        data: Any = base64.b64encode(values.astype("<f4", copy=False).tobytes()).decode("ascii")
    else:
        data = values.tolist()
    named = {} if name is None else {"name": name}
    return {**named, "shape": list(values.shape), "encoding": encoding, "values": data}


def explain(model: nn.Module, img28: np.ndarray, classes: Classes = "predicted") -> Explanation:
    """Explain one prepared digit (28, 28), pixels in [0, 1] as imageprep makes them.

    classes: "predicted" for the saliency of the predicted class only, "all" for every class.
    The model runs in eval mode, and its parameters are frozen for the call (and restored), so
    that backward computes the input's gradient alone and leaves every `.grad` untouched. Not
    thread-safe on one model: the server calls it under its forward lock.
    """
    if classes not in CLASSES:
        raise ValueError(f"classes must be one of {', '.join(CLASSES)}, got {classes!r}")
    if not isinstance(model, CNNClassifier | LinearClassifier):
        raise TypeError(f"explain takes a CNNClassifier or LinearClassifier, not {type(model)}")
    x = inference.normalize(img28)  # (1, 1, 28, 28)

    parameters = list(model.parameters())
    frozen = [p.requires_grad for p in parameters]
    was_training = model.training
    model.eval()
    try:
        for p in parameters:
            p.requires_grad = False
        with enable_grad():
            x_in = Tensor(x, requires_grad=True)
            stages = list(model.stages(x_in))
            logits = stages[-1][1]
            prediction = inference.Prediction(inference.softmax(logits.data[0]))
            asked = [prediction.digit] if classes == "predicted" else list(range(model.num_classes))
            saliency = {}
            for i, c in enumerate(asked):
                dy = np.zeros(logits.shape, dtype=logits.dtype)
                dy[0, c] = 1
                x_in.grad = None
                logits.backward(dy, retain_graph=i + 1 < len(asked))
                saliency[c] = x_in.grad[0, 0]
    finally:
        for p, requires_grad in zip(parameters, frozen):
            p.requires_grad = requires_grad
        model.train(was_training)

    image = x[0, 0]
    activations = [(name, out.data[0]) for name, out in stages[:-1]]
    if isinstance(model, CNNClassifier):
        return Explanation(
            image, logits.data[0], prediction, saliency, activations, model.conv1.weight.data
        )
    templates = model.fc.weight.data.reshape(-1, 28, 28)
    contributions = {c: templates[c] * image for c in asked}
    return Explanation(
        image,
        logits.data[0],
        prediction,
        saliency,
        activations,
        templates=templates,
        contributions=contributions,
    )
