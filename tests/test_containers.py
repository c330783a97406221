"""Sequential, ModuleList, ModuleDict and Identity: list and dict behaviour, registered
parameters with PyTorch's dotted state_dict keys, renumbering, and clear errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from scratchnet import Tensor, nn


def linears(*sizes: int) -> list[nn.Linear]:
    return [nn.Linear(n, n + 1) for n in sizes]


# ---------------------------------------------------------------------------------------------
# ModuleList
# ---------------------------------------------------------------------------------------------


def test_module_list_registers_parameters_under_positions():
    layers = nn.ModuleList(linears(2, 3))
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(list(layers.parameters())) == 4

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(linears(2))

    assert list(Net().state_dict()) == ["blocks.0.weight", "blocks.0.bias"]


def test_module_list_indexing_slicing_and_iteration():
    a, b, c = linears(1, 2, 3)
    layers = nn.ModuleList([a, b, c])
    assert len(layers) == 3
    assert layers[0] is a and layers[-1] is c
    assert list(layers) == [a, b, c]
    tail = layers[1:]
    assert isinstance(tail, nn.ModuleList) and list(tail) == [b, c]
    assert next(iter(tail.state_dict())) == "0.weight"  # a slice is numbered from 0
    with pytest.raises(IndexError, match="ModuleList: index 3 is out of range for length 3"):
        layers[3]
    with pytest.raises(IndexError, match="index -4 is out of range"):
        layers[-4]


def test_module_list_append_extend_insert_and_renumbering():
    a, b, c, d = linears(1, 2, 3, 4)
    layers = nn.ModuleList()
    assert len(layers) == 0 and list(layers.state_dict()) == []
    assert layers.append(a) is layers
    layers.extend([c])
    layers.insert(1, b)
    assert list(layers) == [a, b, c]
    assert [k for k in layers.state_dict() if k.endswith("weight")] == [
        "0.weight",
        "1.weight",
        "2.weight",
    ]
    assert layers.state_dict()["1.weight"].shape == (3, 2)  # b sits at "1" after the insert
    layers += [d]
    assert list(layers) == [a, b, c, d]
    layers[0] = d
    assert layers[0] is d
    del layers[1]
    assert list(layers) == [d, c, d]
    assert sorted(name for name, _ in layers.named_children()) == ["0", "1", "2"]
    assert layers.pop() is d and len(layers) == 2
    assert list(layers + nn.ModuleList([a])) == [d, c, a]


def test_module_list_errors():
    with pytest.raises(TypeError, match=r"ModuleList\.extend takes an iterable of Modules"):
        nn.ModuleList(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="ndarray is not a Module"):
        nn.ModuleList([np.zeros(3)])


def test_module_list_trains_its_modules():
    """Parameters in a ModuleList are the ones that the owner's backward fills."""
    layers = nn.ModuleList(linears(2, 3))
    x = Tensor(np.ones((4, 2)))
    y = layers[1](layers[0](x))
    y.sum().backward()
    assert all(p.grad is not None for p in layers.parameters())


# ---------------------------------------------------------------------------------------------
# ModuleDict
# ---------------------------------------------------------------------------------------------


def test_module_dict_keys_values_items_and_contains():
    a, b = linears(2, 3)
    heads = nn.ModuleDict({"digit": a, "parity": b})
    assert list(heads.keys()) == ["digit", "parity"]
    assert list(heads.values()) == [a, b]
    assert list(heads.items()) == [("digit", a), ("parity", b)]
    assert list(heads) == ["digit", "parity"]
    assert "digit" in heads and "other" not in heads
    assert heads["parity"] is b and len(heads) == 2
    assert list(heads.state_dict()) == [
        "digit.weight",
        "digit.bias",
        "parity.weight",
        "parity.bias",
    ]


def test_module_dict_update_setitem_delete_pop_and_clear():
    a, b, c = linears(1, 2, 3)
    heads = nn.ModuleDict()
    heads["a"] = a
    heads.update({"b": b})
    heads.update([("c", c), ("a", c)])  # pairs, and a replacement keeps its place
    assert list(heads.items()) == [("a", c), ("b", b), ("c", c)]
    del heads["b"]
    assert list(heads) == ["a", "c"] and "b" not in heads.state_dict()
    assert not hasattr(heads, "b")
    assert heads.pop("c") is c and list(heads) == ["a"]
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


def test_module_dict_errors():
    heads = nn.ModuleDict({"a": nn.Identity()})
    with pytest.raises(KeyError, match="ModuleDict has no module 'b'; keys: \\['a'\\]"):
        heads["b"]
    with pytest.raises(KeyError, match="attribute 'update' already exists"):
        heads["update"] = nn.Identity()
    with pytest.raises(KeyError, match=r"without '\.'"):
        heads["a.b"] = nn.Identity()
    with pytest.raises(ValueError, match="mapping or \\(key, module\\) pairs"):
        heads.update(["ab"])
    with pytest.raises(TypeError, match="int is not a Module"):
        heads["c"] = 3


# ---------------------------------------------------------------------------------------------
# Sequential and Identity
# ---------------------------------------------------------------------------------------------


def test_sequential_slicing_append_and_named_modules():
    a, b = nn.Linear(2, 3), nn.ReLU()
    seq = nn.Sequential(a, b)
    assert seq[-1] is b
    head = seq[:1]
    assert isinstance(head, nn.Sequential) and list(head) == [a]
    seq.append(nn.Linear(3, 1))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    named = nn.Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    x = Tensor(np.ones((1, 2)))
    np.testing.assert_array_equal(named(x).data, b(a(x)).data)
    with pytest.raises(IndexError, match="Sequential: index 2 is out of range"):
        named[2]


def test_sequential_still_imports_from_nn():
    from scratchnet.nn import Sequential
    from scratchnet.nn.container import Sequential as Defined

    assert Sequential is Defined


def test_identity_accepts_and_ignores_arguments():
    layer = nn.Identity(54, unused_argument=0.1)
    x = Tensor(np.arange(3.0))
    assert layer(x) is x
    assert list(layer.state_dict()) == []


def test_deleting_an_attribute_unregisters_it():
    model = nn.Linear(2, 2)
    del model.bias
    assert list(model.state_dict()) == ["weight"] and not hasattr(model, "bias")
