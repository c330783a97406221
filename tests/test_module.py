"""Module: registration, state_dict keys, load_state_dict errors, modes, gradients."""

import numpy as np
import pytest

from scratchnet import Tensor, nn
from scratchnet.mnist.models import CNNClassifier, LinearClassifier

CNN_KEYS = [
    "conv1.weight", "conv1.bias",
    "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "conv2.weight", "conv2.bias",
    "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked",
    "conv3.weight", "conv3.bias",
    "bn3.weight", "bn3.bias", "bn3.running_mean", "bn3.running_var", "bn3.num_batches_tracked",
    "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
]  # fmt: skip


def test_parameter_counts():
    assert LinearClassifier().num_parameters() == 7_850
    assert CNNClassifier().num_parameters() == 102_026


def test_state_dict_keys_are_pytorchs():
    assert list(LinearClassifier().state_dict()) == ["fc.weight", "fc.bias"]
    assert sorted(CNNClassifier().state_dict()) == sorted(CNN_KEYS)


def test_state_dict_is_a_copy_and_round_trips():
    a, b = CNNClassifier(), CNNClassifier()
    state = a.state_dict()
    state["fc2.bias"][...] = 123
    assert not np.any(a.fc2.bias.data == 123)
    b.load_state_dict(a.state_dict())
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)


def test_load_state_dict_errors_are_clear():
    model = LinearClassifier()
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"missing keys: fc\.bias"):
        model.load_state_dict({"fc.weight": state["fc.weight"]})
    with pytest.raises(ValueError, match=r"unexpected keys: extra"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"fc\.weight: the checkpoint has shape \(10, 5\)"):
        model.load_state_dict({**state, "fc.weight": np.zeros((10, 5))})
    # a failed load changes nothing
    np.testing.assert_array_equal(model.fc.weight.data, state["fc.weight"])
    model.load_state_dict({"fc.weight": state["fc.weight"]}, strict=False)


def test_train_eval_and_zero_grad():
    model = CNNClassifier()
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_named_parameters_and_buffers():
    model = CNNClassifier()
    names = [name for name, _ in model.named_parameters()]
    assert names[:2] == ["conv1.weight", "conv1.bias"]
    assert "bn1.running_mean" in dict(model.named_buffers())


def test_recurse_false_lists_a_modules_own_parameters_and_buffers_as_in_torch():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert list(model.named_parameters(recurse=False)) == []
    assert list(model.buffers(recurse=False)) == []
    bn = model[1]
    assert [name for name, _ in bn.named_parameters(recurse=False)] == ["weight", "bias"]
    assert [p is bn.weight for p in bn.parameters(recurse=False)] == [True, False]
    names = ["running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in bn.named_buffers(recurse=False)] == names
    assert next(bn.buffers(recurse=False)) is bn.running_mean
    assert next(name for name, _ in model.named_buffers(prefix="model")) == "model.1.running_mean"
    assert len(list(model.parameters())) == 4


def test_loading_and_casting_keep_buffers_registered():
    bn = nn.BatchNorm1d(2)
    bn.load_state_dict({**bn.state_dict(), "running_mean": np.array([1.0, 2.0])})
    assert bn.running_mean is dict(bn.named_buffers())["running_mean"]
    np.testing.assert_array_equal(bn.running_mean, [1.0, 2.0])
    assert bn.running_mean.dtype == np.float32
    bn.double()
    assert bn.running_mean.dtype == np.float64
    assert bn.running_mean is dict(bn.named_buffers())["running_mean"]


def test_repr_is_readable():
    text = repr(CNNClassifier())
    assert "(conv1): Conv2d(" in text
    assert "(fc2): Linear(in_features=64, out_features=10, bias=True)" in text


def test_sequential():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(Tensor(np.ones((5, 4)))).shape == (5, 2)


def test_initialisation_distributions():
    model = CNNClassifier()
    w = model.conv2.weight.data  # kaiming normal, fan_out = 64 * 9, gain sqrt(2)
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.1 * np.sqrt(2 / (64 * 9))
    assert np.all(model.conv2.bias.data == 0)
    assert abs(model.fc1.weight.data.std() - 0.01) < 0.002
    assert np.all(model.bn1.weight.data == 1) and np.all(model.bn1.bias.data == 0)
    lin = nn.Linear(100, 50)  # PyTorch's default: U(-1/sqrt(100), 1/sqrt(100))
    assert np.abs(lin.weight.data).max() <= 0.1


def test_init_weights_false_keeps_every_layers_pytorch_default():
    """As torchvision's init_weights=False: no layer is re-drawn, so Linear and Conv2d keep
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias (std = bound / sqrt(3))."""
    model = CNNClassifier(init_weights=False)
    for layer, fan_in in ((model.fc1, 128), (model.fc2, 64), (model.conv2, 32 * 9)):
        bound = 1 / np.sqrt(fan_in)
        for array in (layer.weight.data, layer.bias.data):
            assert np.abs(array).max() <= bound and array.any()
        assert abs(layer.weight.data.std() / (bound / np.sqrt(3)) - 1) < 0.15
    assert np.all(model.bn1.weight.data == 1) and np.all(model.bn1.bias.data == 0)
    linear = LinearClassifier(init_weights=False).fc.weight.data
    assert abs(linear.std() / (1 / np.sqrt(3 * 784)) - 1) < 0.05


def test_model_input_errors():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        CNNClassifier()(Tensor(np.zeros((2, 3, 28, 28), dtype=np.float32)))
    with pytest.raises(ValueError, match="784"):
        LinearClassifier()(Tensor(np.zeros((2, 100), dtype=np.float32)))


def test_float64_model():
    model = CNNClassifier().double()
    out = model(Tensor(np.zeros((1, 1, 28, 28))))
    assert out.dtype == np.float64
