"""scratchnet's two MNIST classifiers written in torch.nn, module for module.

The attribute names, and so the state_dict keys (`conv1.weight`, `bn1.running_var`,
`fc2.bias`, ...), are those of scratchnet.mnist.models, and the initialisation draws from the same
distributions (not the same numbers: torch has its own generator). Weights therefore move
between the two frameworks by key, with no renaming (see reference.convert).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _init_weights(model: nn.Module) -> None:
    """scratchnet's scheme, with torch.nn.init and torch's generator (unless init_weights=False:
    then each layer keeps torch's default initialisation, as in scratchnet).

    Conv2d: weight ~ kaiming-normal (fan_out, relu), bias 0. BatchNorm2d: weight 1, bias 0.
    Linear: weight ~ N(0, 0.01**2), bias 0.
    """
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


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
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(p=dropout_rate)
        self.fc = nn.Linear(in_features=input_size, out_features=num_classes)
        self.input_size = input_size
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        if init_weights:
            _init_weights(self)

    def stages(self, x: Tensor) -> Iterator[tuple[str, Tensor]]:
        """The named results of forward, as scratchnet's stages: only ("logits", (N, 10))."""
        if x.ndim > 2:
            x = self.flatten(x)
        if x.shape[1] != self.input_size:
            raise ValueError(
                f"LinearClassifier expects {self.input_size} features per image (1x28x28), "
                f"got input of shape {tuple(x.shape)}"
            )
        yield "logits", self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return last_stage(self.stages(x))


class CNNClassifier(nn.Module):
    """Three conv blocks (conv 3x3 -> BatchNorm -> ReLU), then a small MLP head.

    (N, 1, 28, 28) -conv1,bn1,relu,pool-> (N, 32, 14, 14) -conv2,bn2,relu,pool-> (N, 64, 7, 7)
    -conv3,bn3,relu,avgpool-> (N, 128, 1, 1) -flatten,dropout,fc1,relu,dropout,fc2-> (N, 10)
    """

    def __init__(
        self,
        num_classes: int = 10,
        dropout_rate: float = 0.5,
        init_weights: bool = True,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=32, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(num_features=32)
        self.conv2 = nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(num_features=64)
        self.conv3 = nn.Conv2d(in_channels=64, out_channels=128, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(num_features=128)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.global_pool = nn.AdaptiveAvgPool2d(output_size=(pool_size, pool_size))
        self.dropout = nn.Dropout(p=dropout_rate)
        self.fc1 = nn.Linear(in_features=128 * pool_size * pool_size, out_features=64)
        self.fc2 = nn.Linear(in_features=64, out_features=num_classes)
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.pool_size = pool_size
        if init_weights:
            _init_weights(self)

    def stages(self, x: Tensor) -> Iterator[tuple[str, Tensor]]:
        """The named results of forward, as scratchnet's stages: block1 (N, 32, 14, 14),
        block2 (N, 64, 7, 7), block3 (N, 128, 7, 7, before the global pool), features (N, 128),
        logits (N, 10)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(
                f"CNNClassifier expects input of shape (N, 1, 28, 28), got {tuple(x.shape)}"
            )
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        yield "block1", x
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        yield "block2", x
        x = F.relu(self.bn3(self.conv3(x)))
        yield "block3", x
        x = torch.flatten(self.global_pool(x), start_dim=1)
        yield "features", x
        x = F.relu(self.fc1(self.dropout(x)))
        yield "logits", self.fc2(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return last_stage(self.stages(x))


MODELS: dict[str, type[nn.Module]] = {"linear": LinearClassifier, "cnn": CNNClassifier}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised model by name ("linear" or "cnn"), as scratchnet.mnist.models does."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
