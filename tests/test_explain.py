"""scratchnet.mnist.explain and `predict --explain`: what a model computed for one drawing."""

import base64
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from scratchnet import manual_seed
from scratchnet.mnist import explain, inference
from scratchnet.mnist.models import CNNClassifier, LinearClassifier


@pytest.fixture(scope="module")
def digit():
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), dtype=np.float32)
    img[6:22, 12:16] = 1.0  # a "1"
    return np.clip(img + rng.uniform(0, 0.05, img.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module", params=[LinearClassifier, CNNClassifier])
def model(request):
    manual_seed(0)
    net = request.param()
    net.eval()
    return net


def finite_difference(model, x, cls, i, j, eps=1e-2):
    """d logit[cls] / d x[i, j] by central differences on the normalised input (float64)."""
    plus, minus = x.copy(), x.copy()
    plus[0, 0, i, j] += eps
    minus[0, 0, i, j] -= eps
    model.double()
    try:
        up = inference.logits(model, plus)[0, cls]
        down = inference.logits(model, minus)[0, cls]
    finally:
        model.float()
    return (up - down) / (2 * eps)


def test_prediction_and_input_are_the_inference_paths(model, digit):
    explained = explain.explain(model, digit)
    expected = inference.predict(model, digit)[0]
    np.testing.assert_allclose(explained.prediction.probabilities, expected.probabilities, 1e-5)
    np.testing.assert_allclose(explained.input, inference.normalize(digit)[0, 0])
    assert list(explained.saliency) == [expected.digit]


def test_saliency_is_the_input_gradient(model, digit):
    explained = explain.explain(model, digit, classes="all")
    assert sorted(explained.saliency) == list(range(10))
    x = inference.normalize(digit).astype(np.float64)
    for cls in (0, 7):
        for i, j in ((14, 13), (10, 20)):
            numeric = finite_difference(model, x, cls, i, j)
            scale = np.abs(explained.saliency[cls]).max()
            assert abs(explained.saliency[cls][i, j] - numeric) < 2e-2 * scale + 1e-4
    for cls, s in explained.gradient_x_input.items():
        np.testing.assert_allclose(s, explained.saliency[cls] * explained.input)


def test_parameters_are_left_as_they_were(model, digit):
    before = [
        (p.requires_grad, None if p.grad is None else p.grad.copy()) for p in model.parameters()
    ]
    model.train()
    explain.explain(model, digit, classes="all")
    assert model.training
    model.eval()
    after = [(p.requires_grad, p.grad) for p in model.parameters()]
    assert [r for r, _ in before] == [r for r, _ in after]
    assert all(g is None for _, g in after)


def test_linear_contributions_sum_to_the_logit(digit):
    manual_seed(1)
    model = LinearClassifier()
    explained = explain.explain(model, digit, classes="all")
    bias = model.fc.bias.data
    for cls, contribution in explained.contributions.items():
        assert contribution.sum() + bias[cls] == pytest.approx(explained.logits[cls], rel=1e-4)
    assert explained.templates.shape == (10, 28, 28)
    assert explained.activations == [] and explained.filters is None


def test_cnn_activations_and_filters(digit):
    manual_seed(2)
    model = CNNClassifier()
    explained = explain.explain(model, digit)
    shapes = {name: values.shape for name, values in explained.activations}
    assert shapes == {
        "block1": (32, 14, 14),
        "block2": (64, 7, 7),
        "block3": (128, 7, 7),
        "features": (128,),
    }
    np.testing.assert_array_equal(explained.filters, model.conv1.weight.data)
    features = dict(explained.activations)["features"]
    np.testing.assert_allclose(
        features, dict(explained.activations)["block3"].mean(axis=(1, 2)), 1e-5
    )


def test_json_encodings_hold_the_same_numbers(digit):
    manual_seed(3)
    explained = explain.explain(CNNClassifier(), digit)
    listed = explained.to_json("list")
    packed = explained.to_json("base64")
    for a, b in zip(listed["activations"], packed["activations"]):
        raw = np.frombuffer(base64.b64decode(b["values"]), dtype="<f4").reshape(b["shape"])
        np.testing.assert_array_equal(raw, np.asarray(a["values"], dtype=np.float32))
    assert np.asarray(listed["input"]).shape == (28, 28)
    with pytest.raises(ValueError, match="encoding"):
        explained.to_json("hex")
    with pytest.raises(ValueError, match="classes"):
        explain.explain(CNNClassifier(), digit, classes="some")


def test_predict_cli_writes_the_explanation_figure(tmp_path, digit):
    image = tmp_path / "digit.png"
    Image.fromarray((digit * 255).astype(np.uint8)).save(image)
    out = tmp_path / "inside.png"
    command = [sys.executable, "-m", "scratchnet.predict", str(image), "--explain", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as figure:
        assert figure.width > 400 and figure.height > 200

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    command[-1] = str(blocked / "inside.png")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error") and "Traceback" not in result.stderr


def test_the_predicted_map_is_the_same_whatever_classes_are_asked():
    from scratchnet.mnist.models import load_pretrained

    model = load_pretrained("cnn")
    flat = np.zeros((28, 28), dtype=np.float32)  # a flat background: max-pool ties everywhere
    flat[6:22, 11:15] = 1.0
    flat[8:10, 8:20] = 0.7
    one = explain.explain(model, flat, classes="predicted")
    every = explain.explain(model, flat, classes="all")
    digit = one.prediction.digit
    np.testing.assert_array_equal(one.saliency[digit], every.saliency[digit])
