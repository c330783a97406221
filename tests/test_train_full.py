"""Full-length training with the default recipes: the accuracy targets, from scratch.

Marked slow (the CNN takes about 20 minutes on 2 cores): `pytest -m slow` or `make test-all`.
"""

import pytest

from scratchnet.mnist.training import RECIPES, TrainConfig, train

TARGETS = {"linear": 0.926, "cnn": 0.994}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["linear", "cnn"])
def test_default_recipe_reaches_the_target(mnist, tmp_path, model):
    cfg = TrainConfig(model=model, **RECIPES[model])
    metrics = train(cfg, tmp_path / model, data=mnist, progress=False)
    assert metrics["test_accuracy"] >= TARGETS[model]
    assert metrics["epochs_run"] <= 15 or model == "linear"
