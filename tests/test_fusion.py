"""scratchnet.nn.fusion: a Conv2d and the BatchNorm2d after it folded into one Conv2d."""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.mnist.models import CNNClassifier
from scratchnet.nn.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_modules

CNN_PAIRS = [["conv1", "bn1"], ["conv2", "bn2"], ["conv3", "bn3"]]


def trained_looking_bn(bn: nn.BatchNorm2d, rng: np.random.Generator) -> None:
    """Statistics and affine parameters far from the defaults (mean 0, var 1, gamma 1)."""
    channels = bn.num_features
    bn.running_mean[...] = rng.normal(0, 2, channels)
    bn.running_var[...] = rng.uniform(0.1, 5, channels)
    if bn.weight is not None:
        bn.weight.data[...] = rng.normal(1, 0.5, channels)
        bn.bias.data[...] = rng.normal(0, 1, channels)


def pair_and_fused(
    bias: bool, affine: bool, stride: int, padding: int, dtype: type
) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]:
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(3, 5, 3, stride=stride, padding=padding, bias=bias)
    bn = nn.BatchNorm2d(5, eps=1e-3, affine=affine)
    trained_looking_bn(bn, rng)
    conv.to(dtype)
    bn.to(dtype)
    conv.eval()
    bn.eval()
    return conv, bn, fuse_conv_bn_eval(conv, bn)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 0)])
def test_fused_conv_computes_bn_of_conv(bias: bool, affine: bool, stride: int, padding: int):
    conv, bn, fused = pair_and_fused(bias, affine, stride, padding, np.float64)
    x = sn.Tensor(np.random.default_rng(1).normal(size=(2, 3, 9, 8)))
    with sn.no_grad():
        expected = bn(conv(x)).data
        got = fused(x).data
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert fused.bias is not None and fused.weight.shape == conv.weight.shape


def test_fused_weights_follow_the_formula():
    """weight' = scale * weight, bias' = scale * (bias - mean) + beta, scale = g / sqrt(v + e)."""
    weight = np.arange(2 * 1 * 1 * 1, dtype=np.float64).reshape(2, 1, 1, 1) + 1.0  # 1, 2
    w, b = fuse_conv_bn_weights(
        weight, np.array([0.5, -1.0]), np.array([1.0, 2.0]), np.array([3.0, 15.0]), 1.0,
        np.array([2.0, 4.0]), np.array([0.25, 0.0]),
    )  # fmt: skip
    np.testing.assert_allclose(w.ravel(), [2.0 / 2 * 1, 4.0 / 4 * 2])
    np.testing.assert_allclose(b, [1.0 * (0.5 - 1.0) + 0.25, 1.0 * (-1.0 - 2.0)])


def test_float32_fusion_matches_to_rounding():
    conv, bn, fused = pair_and_fused(True, True, 1, 1, np.float32)
    x = sn.Tensor(np.random.default_rng(2).normal(size=(4, 3, 12, 12)).astype(np.float32))
    with sn.no_grad():
        expected = bn(conv(x)).data
        got = fused(x).data
    assert got.dtype == np.float32 and fused.weight.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_fuse_modules_keeps_the_cnn_and_its_outputs():
    rng = np.random.default_rng(3)
    model = CNNClassifier(dropout_rate=0.0)
    for bn in (model.bn1, model.bn2, model.bn3):
        trained_looking_bn(bn, rng)
    model.eval()
    original = {k: v.copy() for k, v in model.state_dict().items()}
    fused = fuse_modules(model, CNN_PAIRS)

    assert isinstance(fused.bn1, nn.Identity) and isinstance(fused.conv1, nn.Conv2d)
    assert all(np.array_equal(v, original[k]) for k, v in model.state_dict().items())
    assert isinstance(model.bn1, nn.BatchNorm2d)  # the model itself is untouched
    x = sn.Tensor(rng.normal(size=(3, 1, 28, 28)).astype(np.float32))
    with sn.no_grad():
        expected = model(x).data
        got = fused(x).data
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_fusing_refuses_what_it_cannot_fold():
    conv, bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn_eval(conv, bn)
    conv.eval()
    with pytest.raises(ValueError, match="3 channels, the convolution 4"):
        fuse_conv_bn_eval(conv, nn.BatchNorm2d(3).eval())
    with pytest.raises(ValueError, match="no running statistics"):
        fuse_conv_bn_eval(conv, nn.BatchNorm2d(4, track_running_stats=False).eval())

    model = CNNClassifier()
    with pytest.raises(ValueError, match="eval mode"):
        fuse_modules(model, CNN_PAIRS)
    model.eval()
    with pytest.raises(ValueError, match="only Conv2d followed by BatchNorm2d"):
        fuse_modules(model, [["bn1", "conv1"]])
    with pytest.raises(ValueError, match="no submodule 'conv9'"):
        fuse_modules(model, [["conv9", "bn1"]])
    with pytest.raises(ValueError, match="pair of names"):
        fuse_modules(model, [["conv1", "bn1", "pool"]])


def test_fused_weights_match_torchs():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.fusion import fuse_conv_bn_weights as torch_fuse

    rng = np.random.default_rng(4)
    args = [
        rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6), rng.normal(size=6),
        rng.uniform(0.5, 2, 6), 1e-5, rng.normal(size=6), rng.normal(size=6),
    ]  # fmt: skip
    w, b = fuse_conv_bn_weights(*args)
    tw, tb = torch_fuse(*[torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args])
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-12)
