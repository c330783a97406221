"""scratchnet.mnist.inference: the one path from prepared digits to Predictions."""

import numpy as np
import pytest

from scratchnet import Tensor, manual_seed, no_grad
from scratchnet.mnist import inference
from scratchnet.mnist.data import MNIST_MEAN, MNIST_STD
from scratchnet.mnist.models import CNNClassifier, LinearClassifier


def test_normalize_is_mnists_formula():
    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28), dtype=np.float32)
    x = inference.normalize(images)
    assert x.shape == (3, 1, 28, 28)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], (images - MNIST_MEAN) / MNIST_STD, rtol=1e-6, atol=1e-6)
    assert inference.normalize(images[0]).shape == (1, 1, 28, 28)


def test_normalize_agrees_with_the_training_normalisation_of_uint8_digits():
    from scratchnet.mnist.data import normalize

    pixels = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 256
    trained_on = normalize(pixels.astype(np.uint8))
    served = inference.normalize(pixels / 255.0)
    np.testing.assert_allclose(served, trained_on, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(28,), (2, 28, 27), (2, 1, 28, 28)])
def test_normalize_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        inference.normalize(np.zeros(shape, dtype=np.float32))


def test_softmax_is_stable_and_sums_to_one():
    p = inference.softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), 0.0]]))
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(p[1], [0.2, 0.6, 0.2])
    assert p.dtype == np.float64


def test_prediction_top_k_orders_by_probability_then_digit():
    probabilities = np.array([0.1, 0.3, 0.1, 0.5] + [0.0] * 6)
    prediction = inference.Prediction(probabilities)
    assert prediction.digit == 3
    assert prediction.confidence == 0.5
    assert prediction.top_k(3) == [(3, 0.5), (1, 0.3), (0, 0.1)]


@pytest.mark.parametrize("model_class", [LinearClassifier, CNNClassifier])
def test_predict_is_softmax_of_the_eval_forward(model_class):
    manual_seed(0)
    model = model_class()
    model.train()
    images = np.random.default_rng(1).random((5, 28, 28), dtype=np.float32)
    predictions = inference.predict(model, images, batch_size=2)
    assert model.training  # restored

    model.eval()
    with no_grad():
        expected = model(Tensor(inference.normalize(images))).data
    got = np.stack([p.probabilities for p in predictions])
    np.testing.assert_allclose(got, inference.softmax(expected), rtol=1e-6, atol=1e-7)
    assert [p.digit for p in predictions] == list(expected.argmax(1))


def test_for_inference_folds_the_cnns_batchnorms_and_keeps_its_answers():
    from scratchnet import nn
    from scratchnet.mnist.models import PRETRAINED_DIR, load_model

    model, _ = load_model(PRETRAINED_DIR / "cnn.npz")
    model.train()
    served = inference.for_inference(model)
    assert model.training and not served.training  # the model itself is left as it was
    assert all(isinstance(getattr(served.module, f"bn{i}"), nn.Identity) for i in (1, 2, 3))
    assert isinstance(model.bn1, nn.BatchNorm2d)

    rng = np.random.default_rng(5)
    x = inference.normalize(rng.random((16, 28, 28), dtype=np.float32) ** 4)
    expected = inference.logits(model, x)
    got = inference.logits(served, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_for_inference_copies_a_model_without_batchnorm():
    manual_seed(0)
    model = LinearClassifier()
    served = inference.for_inference(model)
    assert served is not model and not served.training
    x = inference.normalize(np.random.default_rng(6).random((4, 28, 28), dtype=np.float32))
    np.testing.assert_array_equal(inference.logits(served, x), inference.logits(model, x))


def test_folded_is_the_traced_copys_module_without_the_trace():
    from scratchnet import nn
    from scratchnet.jit import TracedModule
    from scratchnet.mnist.models import PRETRAINED_DIR, load_model
    from scratchnet.mnist.training import SCRATCHNET

    model, _ = load_model(PRETRAINED_DIR / "cnn.npz")
    model.train()
    copy = inference.folded(model)
    assert model.training and not copy.training
    assert not isinstance(copy, TracedModule)
    assert all(isinstance(getattr(copy, f"bn{i}"), nn.Identity) for i in (1, 2, 3))

    rng = np.random.default_rng(7)
    x = inference.normalize(rng.random((8, 28, 28), dtype=np.float32) ** 4)
    np.testing.assert_array_equal(
        inference.logits(copy, x), inference.logits(inference.for_inference(model), x)
    )
    assert SCRATCHNET.evaluator is inference.folded  # what the training loop evaluates
