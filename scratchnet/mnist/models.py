"""The two MNIST classifiers, and loading the bundled (pretrained) checkpoints.

Both take images normalised as in training, `(pixels / 255 - 0.1307) / 0.3081`, with shape
(N, 1, 28, 28), and return logits of shape (N, 10).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scratchnet import nn
from scratchnet.checkpoint import CheckpointError, CheckpointFile
from scratchnet.nn import init
from scratchnet.safetensors_file import SafetensorsFile
from scratchnet.tensor import Tensor

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def _init_weights(model: nn.Module) -> None:
    """Conv: kaiming-normal (fan_out, relu), bias 0. BN: weight 1, bias 0. Linear: N(0, 0.01).

    The models' own scheme, applied unless built with init_weights=False (as torchvision's VGG
    and GoogLeNet take it); then every layer keeps the initialisation its constructor drew,
    PyTorch's default (kaiming-uniform with a = sqrt(5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = init.kaiming_normal(
                module.weight.shape, mode="fan_out", nonlinearity="relu"
            )
            if module.bias is not None:
                module.bias.data[...] = 0
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data[...] = 1
            module.bias.data[...] = 0
        elif isinstance(module, nn.Linear):
            module.weight.data = init.normal(module.weight.shape, 0.0, 0.01)
            if module.bias is not None:
                module.bias.data[...] = 0


def last_stage(stages: Iterator[tuple[str, Tensor]]) -> Tensor:
    """The output of a model's stages(x): its forward, so that both compute the same values."""
    # maxlen=1: each stage's output is dropped as soon as the next one is computed.
    ((_, out),) = deque(stages, maxlen=1)
    return out


class LinearClassifier(nn.Module):
    """Multinomial logistic regression: flatten the image, then one Linear layer (784 -> 10)."""

    def __init__(
        self,
        input_size: int = 784,
        num_classes: int = 10,
        dropout_rate: float = 0.0,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(input_size, num_classes)
        if init_weights:
            _init_weights(self)

    def stages(self, x: Tensor) -> Iterator[tuple[str, Tensor]]:
        """The named results of forward, in order: only ("logits", (N, 10)), no hidden layer."""
        x = self.flatten(x) if x.ndim > 2 else x
        if x.shape[1] != self.input_size:
            raise ValueError(
                f"LinearClassifier expects {self.input_size} features per image (1x28x28), "
                f"got input of shape {x.shape}"
            )
        yield "logits", self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return last_stage(self.stages(x))


class CNNClassifier(nn.Module):
    """Three conv blocks (conv 3x3 -> BatchNorm -> ReLU), then a small MLP head.

    (N, 1, 28, 28) -conv1,bn1,relu,pool-> (N, 32, 14, 14) -conv2,bn2,relu,pool-> (N, 64, 7, 7)
    -conv3,bn3,relu,avgpool-> (N, 128, K, K) -flatten,dropout,fc1,relu,dropout,fc2-> (N, 10)

    pool_size K: the last average pool keeps K x K cells of conv3's 7x7 map, AdaptiveAvgPool2d's
    overlapping windows (K = 3: rows and columns [0, 3), [2, 5), [4, 7)), so that fc1 sees
    where in the digit each feature is; K = 1 is the global average, which keeps only how much
    of each feature there is. The published showcase's CNN, and this one until 2026-12-02,
    used K = 1.
    """

    def __init__(
        self,
        num_classes: int = 10,
        dropout_rate: float = 0.5,
        init_weights: bool = True,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.pool_size = pool_size
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(128)
        self.pool = nn.MaxPool2d(2, 2)
        self.global_pool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.dropout = nn.Dropout(dropout_rate)
        self.fc1 = nn.Linear(128 * pool_size * pool_size, 64)
        self.fc2 = nn.Linear(64, num_classes)
        if init_weights:
            _init_weights(self)

    def stages(self, x: Tensor) -> Iterator[tuple[str, Tensor]]:
        """The named results of forward, in order, for scratchnet.mnist.explain to show.

        block1 (N, 32, 14, 14) and block2 (N, 64, 7, 7): conv, BatchNorm, pool, ReLU
        block3 (N, 128, 7, 7): conv, BatchNorm, ReLU, before the average pool
        features (N, 128 * K * K): the pooled feature vector the MLP head reads
        logits (N, 10)
        """
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNNClassifier expects input of shape (N, 1, 28, 28), got {x.shape}")
        # Pool, then ReLU: max-pooling commutes with ReLU (both are monotone), so this is the
        # same function, and the same gradient, as pool(relu(x)), with the ReLU on 4x fewer
        # values. (PyTorch's own MNIST example orders them this way too.)
        x = self.pool(self.bn1(self.conv1(x))).relu()
        yield "block1", x
        x = self.pool(self.bn2(self.conv2(x))).relu()
        yield "block2", x
        x = self.bn3(self.conv3(x)).relu()
        yield "block3", x
        x = self.global_pool(x).flatten(1)
        yield "features", x
        x = self.fc1(self.dropout(x)).relu()
        yield "logits", self.fc2(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return last_stage(self.stages(x))


MODELS: dict[str, type[nn.Module]] = {"linear": LinearClassifier, "cnn": CNNClassifier}


@dataclass(frozen=True)
class Option:
    """One constructor argument a checkpoint may set: its type and its range, low <= v <= high."""

    kind: type
    low: float
    high: float

    def problem(self, value: Any) -> str | None:
        """Why value is refused, or None. bool is not an int here, though Python says it is."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.kind is int and not isinstance(value, int):
            return "must be an integer"
        if not self.low <= value <= self.high:
            return f"must be between {self.low:g} and {self.high:g}"
        return None


# What each constructor accepts from a checkpoint's "architecture.kwargs", checked before the
# model is built: a crafted num_classes=10**12 must be refused, not allocated.
# (tests/test_checkpoint.py checks that these names are the constructors' own.)
OPTIONS: dict[str, dict[str, Option]] = {
    "linear": {
        "input_size": Option(int, 1, 784),
        "num_classes": Option(int, 1, 1000),
        "dropout_rate": Option(float, 0.0, 1.0),
        "init_weights": Option(bool, 0, 1),
    },
    "cnn": {
        "num_classes": Option(int, 1, 1000),
        "dropout_rate": Option(float, 0.0, 1.0),
        "init_weights": Option(bool, 0, 1),
        "pool_size": Option(int, 1, 7),
    },
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised model by name: "linear" or "cnn"."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def check_architecture(architecture: Any, expected: str | None = None) -> tuple[str, dict]:
    """(name, kwargs) of a checkpoint's "architecture" entry, or CheckpointError saying why not.

    expected is the name the model is loaded as (the bundled "cnn", the server's "cnn"): a
    linear checkpoint saved as cnn.npz is refused there.
    """
    if not isinstance(architecture, dict):
        raise CheckpointError("names no architecture")
    name = architecture.get("name")
    if not isinstance(name, str) or name not in MODELS:
        raise CheckpointError(
            f"names an unknown architecture {name!r}: scratchnet has {', '.join(MODELS)}"
        )
    if expected is not None and name != expected:
        raise CheckpointError(f"holds a {name} model, not the {expected} model it is loaded as")
    kwargs = architecture.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"has {name} options that are not an object")
    options = OPTIONS[name]
    for key, value in kwargs.items():
        if key not in options:
            raise CheckpointError(
                f"gives {name} an unknown option {key!r} (it takes {', '.join(options)})"
            )
        problem = options[key].problem(value)
        if problem is not None:
            raise CheckpointError(f"gives {name} option {key} = {value!r}: it {problem}")
    return name, kwargs


def load_model(path: str | Path, expected: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model a checkpoint describes, load its weights, and return it in eval mode.

    Everything is checked before it is used (scratchnet.checkpoint, check_architecture): the
    model is built only from accepted options, and the arrays are read only once their
    headers match the model's state_dict. expected: see check_architecture.
    A `.safetensors` file (`python -m scratchnet.export`) is read with the same checks.
    """
    opener = SafetensorsFile if Path(path).suffix == ".safetensors" else CheckpointFile
    with opener(path) as checkpoint:
        try:
            name, kwargs = check_architecture(checkpoint.metadata.get("architecture"), expected)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {path} {exc}") from None
        model = build_model(name, **kwargs)
        state, _ = checkpoint.read(expected=model.state_dict())
        meta = checkpoint.metadata
    model.load_state_dict(state)
    model.eval()
    return model, meta


def pretrained_path(name: str) -> Path:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return PRETRAINED_DIR / f"{name}.npz"


def load_pretrained(name: str) -> nn.Module:
    """The bundled model ("cnn" or "linear"), trained with the CLI defaults, in eval mode."""
    path = pretrained_path(name)
    if not path.exists():
        raise FileNotFoundError(
            f"no bundled {name} model at {path}: train one with "
            f"`python -m scratchnet.train --model {name}`"
        )
    model, _ = load_model(path, expected=name)
    return model
