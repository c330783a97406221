"""scratchnet.jit.trace: a replayed trace gives the module's output to the bit, follows its
parameters, and hands over to the module itself wherever a trace cannot stand in for it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.jit import TracedModule, trace
from scratchnet.mnist.models import CNNClassifier, LinearClassifier
from scratchnet.tensor import Tensor, recording


def _images(n: int, seed: int = 0) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32))


def _forward(module: nn.Module, x: Tensor) -> np.ndarray:
    with sn.no_grad():
        return module(x).data


@pytest.mark.parametrize("model_class", [CNNClassifier, LinearClassifier])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_a_trace_replays_the_models_output_to_the_bit(model_class, batch):
    sn.manual_seed(1)
    model = model_class().eval()
    traced = trace(model)
    x = _images(batch)
    expected = _forward(model, x)
    np.testing.assert_array_equal(_forward(traced, x), expected)  # the call that traces
    np.testing.assert_array_equal(_forward(traced, x), expected)  # a replay
    other = _images(batch, seed=9)
    np.testing.assert_array_equal(_forward(traced, other), _forward(model, other))


def test_each_input_shape_gets_its_own_trace():
    sn.manual_seed(2)
    traced = trace(CNNClassifier().eval())
    for batch in (1, 2, 1):
        _forward(traced, _images(batch))
    assert sorted(shape for shape, _ in traced._traces) == [(1, 1, 28, 28), (2, 1, 28, 28)]


def test_a_replay_reads_the_parameters_as_they_are_now():
    sn.manual_seed(3)
    model = LinearClassifier().eval()
    traced = trace(model)
    x = _images(2)
    before = _forward(traced, x)
    model.fc.weight.data *= 2  # in place, as an optimizer's step
    model.fc.bias.data = model.fc.bias.data + 1  # a new array behind the same Parameter
    after = _forward(traced, x)
    np.testing.assert_array_equal(after, _forward(model, x))
    assert not np.allclose(after, before)


def test_grad_mode_and_training_mode_run_the_module_itself():
    sn.manual_seed(4)
    model = CNNClassifier(dropout_rate=0.5)
    traced = trace(model)
    x = _images(2)
    model.eval()
    out = traced(x)  # grad mode: the graph is built as usual
    assert out.requires_grad
    out.sum().backward()
    assert model.conv1.weight.grad is not None
    assert not traced._traces  # nothing was traced
    traced.train()
    assert model.training  # train() and eval() reach the traced module
    with sn.no_grad():
        sn.manual_seed(5)
        a = traced(x).data
        sn.manual_seed(6)
        b = traced(x).data
    assert not np.array_equal(a, b)  # dropout drew new masks: not a frozen trace
    assert not traced._traces


def test_reading_mode_runs_the_module_itself():
    sn.manual_seed(7)
    traced = trace(CNNClassifier().eval())
    with sn.reference_mode_enabled():
        _forward(traced, _images(1))
    assert not traced._traces


class _ThroughData(nn.Module):
    """A forward that computes a value outside any operation: a trace would freeze it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) + Tensor(x.data.sum(1, keepdims=True))


def test_a_trace_that_froze_a_value_is_caught_and_the_module_runs_itself():
    sn.manual_seed(8)
    module = _ThroughData().eval()
    traced = trace(module)
    x = Tensor(np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32))
    with pytest.warns(RuntimeWarning, match="does not reproduce"):
        np.testing.assert_array_equal(_forward(traced, x), _forward(module, x))
    other = Tensor(np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_array_equal(_forward(traced, other), _forward(module, other))
    assert traced._traces[((3, 4), x.dtype.str)] is None


class _Pair(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.relu(), x


def test_a_module_that_does_not_return_one_tensor_is_refused():
    with pytest.raises(TypeError, match="must return one Tensor"):
        _forward(trace(_Pair().eval()), Tensor(np.ones((2, 2), dtype=np.float32)))


def test_trace_takes_a_module():
    with pytest.raises(TypeError, match="expected a Module"):
        trace(lambda x: x)  # type: ignore[arg-type]


def test_recording_is_per_thread():
    x = Tensor(np.ones(3, dtype=np.float32))
    started, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        started.wait()
        for _ in range(20):
            x.relu()
        done.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with recording() as ops:
        started.set()
        done.wait()
        x.exp()
    worker.join()
    assert [function.__name__ for function, *_ in ops] == ["Exp"]


def test_the_traced_module_is_a_module_holding_the_original():
    model = LinearClassifier().eval()
    traced = trace(model)
    assert isinstance(traced, TracedModule) and traced.module is model
    assert not traced.training
    assert list(traced.state_dict()) == [f"module.{k}" for k in model.state_dict()]
