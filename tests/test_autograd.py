"""scratchnet.autograd.gradcheck: it passes correct backwards, catches wrong ones and says where.

Also runs the README's "Adding an op" example, so that the guide cannot rot.
"""

import re
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn.functional as F
from scratchnet import Function, Tensor
from scratchnet.autograd import FULL_CHECK_LIMIT, GradcheckError, gradcheck, gradient_error

rng = np.random.default_rng(5)


class Square(Function):
    """y = x**2; the subclasses below give it wrong backwards."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x**2


class WrongSquare(Square):
    """A backward that is wrong at one element: the check must find it."""

    @staticmethod
    def backward(ctx, dy):
        dx = 2 * ctx.x * dy
        dx.reshape(-1)[-1] *= 1.01
        return dx


class ScaledSquare(Square):
    """A backward off by a factor: wrong everywhere."""

    @staticmethod
    def backward(ctx, dy):
        return 3 * ctx.x * dy


def test_passes_correct_backwards():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    assert gradcheck(lambda x, y: (x @ y).exp(), [a, b]) is True
    assert gradcheck(lambda x: F.cross_entropy(x, np.array([0, 2, 1])), [a]) is True
    assert gradient_error(lambda x, y: x @ y, (a, b)) < 1e-8


def test_names_the_input_and_element_that_fail():
    x = rng.uniform(0.5, 1.5, (2, 3))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: WrongSquare.apply(a), [x])
    message = str(info.value)
    assert "input 0 (shape (2, 3)) at element (1, 2)" in message
    assert "1 of 6 elements fail" in message
    assert "backward gives" in message and "central differences give" in message


def test_raise_exception_false_returns_false():
    x = rng.standard_normal((2, 2))
    assert gradcheck(lambda a: ScaledSquare.apply(a), [x], raise_exception=False) is False
    assert gradient_error(lambda a: ScaledSquare.apply(a), [x]) > 0.1


def test_tolerances_are_torchs_rule():
    """|backward - numeric| <= atol + rtol * |numeric|: a 1% error passes rtol=0.02."""
    x = rng.uniform(0.5, 1.5, (3,))
    assert gradcheck(lambda a: WrongSquare.apply(a) * 1.0, [x], rtol=0.02, atol=0.0)
    assert not gradcheck(lambda a: WrongSquare.apply(a), [x], rtol=1e-3, raise_exception=False)


def test_large_inputs_get_the_directional_check():
    big = rng.uniform(0.5, 1.5, (FULL_CHECK_LIMIT + 1,))
    assert gradcheck(lambda a: (a * a).log(), [big])
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(1025,\)\) in random direction"):
        gradcheck(lambda a: ScaledSquare.apply(a), [big])
    # forced either way on a small input
    small = rng.standard_normal((3,))
    with pytest.raises(GradcheckError, match="direction"):
        gradcheck(lambda a: ScaledSquare.apply(a), [small], fast_mode=True)


def test_only_requested_inputs_are_checked_and_not_modified():
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    const = Tensor(rng.standard_normal((2, 3)))
    before = x.data.copy()
    # the constant's gradient would be wrong (ScaledSquare), but it is not checked
    assert gradcheck(lambda a, c: a * ScaledSquare.apply(c), [x, const])
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None
    labels = np.array([1, 0])
    assert gradcheck(lambda a, t: F.cross_entropy(a, t), [x, labels])


def test_tuple_outputs_and_a_single_input():
    x = rng.standard_normal((2, 3))
    assert gradcheck(lambda a: (a.exp(), a * 2.0), x)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a: (a.exp(), ScaledSquare.apply(a)), x)


def test_bad_calls_get_a_clear_error():
    with pytest.raises(ValueError, match="no input to check"):
        gradcheck(lambda t: t, [np.array([1, 2])])
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda a: a.data, [rng.standard_normal(2)])


def test_is_reachable_from_the_top_level():
    assert sn.autograd.gradcheck is gradcheck
    assert sn.autograd.no_grad is sn.no_grad


def readme_blocks() -> list[str]:
    """The python blocks of README.md's "Adding an op" section, one per file."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Adding an op", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3, "README.md's Adding an op section should have three python blocks"
    return blocks


def test_readme_adding_an_op_example_runs():
    """Each block runs in its own namespace, as in its own file, seeing the names before it.

    The ops file's Softsign (a Function) and the nn file's Softsign (a Module) must not clash.
    """
    pytest.importorskip("torch")
    seen: dict = {}
    for i, block in enumerate(readme_blocks()):
        namespace = {**seen, "__name__": f"readme_block_{i}"}
        exec(compile(block, f"README.md (Adding an op, block {i})", "exec"), namespace)
        seen.update(namespace)
    assert seen["checked"] is True
    assert issubclass(seen["Softsign"], sn.nn.Module)
