"""Export a trained MNIST model to ONNX or safetensors.

    python -m scratchnet.export CHECKPOINT --format onnx|safetensors -o FILE
    python -m scratchnet.export --model cnn|linear --format onnx|safetensors -o FILE

ONNX (opset 17, IR version 8: onnxruntime 1.14 and later run it)
    input   "input": float32 (N, 1, 28, 28), normalised as in training,
            x = (pixels / 255 - 0.1307) / 0.3081; N is dynamic
    output  "logits": float32 (N, num_classes)
    The graph is the model's forward in eval mode, op for op: Conv, BatchNormalization with
    the running statistics, MaxPool before Relu (as CNNClassifier.forward orders them),
    GlobalAveragePool (or, for a CNN with pool_size K > 1, the AveragePool whose windows
    are AdaptiveAvgPool2d's), Flatten, Gemm. Dropout is absent: in eval mode it is the identity.
    The weights are initializers named by their state_dict keys (conv1.weight, ...), and the
    checkpoint's metadata is the JSON text of metadata_props["scratchnet"].

safetensors (scratchnet/safetensors_file.py)
    The state_dict under its keys, which are PyTorch's (conv1.weight, bn1.running_var,
    bn1.num_batches_tracked, ...), so safetensors.torch.load_file(path) gives a dict that
    reference.models' twin takes with load_state_dict(strict=True), and the checkpoint's
    metadata in the header. scratchnet.mnist.models.load_model reads it back with a
    checkpoint's checks.

Neither format involves pickle. The `export` extra's packages (onnx, onnxruntime,
safetensors) are imported only inside the functions that use them, so that
`import scratchnet` never needs them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scratchnet import nn
from scratchnet.checkpoint import atomic_write_bytes
from scratchnet.mnist import models
from scratchnet.nn.pooling import adaptive_bounds
from scratchnet.nn.utils import to_pair
from scratchnet.safetensors_file import METADATA_KEY, safetensors_bytes

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17; newer IR versions shut out older runtimes
INPUT = "input"
OUTPUT = "logits"
FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors"}  # format -> file suffix


class ExportError(ValueError):
    """A model, or a layer of it, that cannot be written in the requested format."""


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------


class OnnxGraph:
    """The nodes and initializers of an ONNX graph under construction.

    Each node is named after the module it comes from ("conv1", "pool", "pool_1" for its
    second use), so that the graph reads like the model's forward in Netron.
    """

    def __init__(self, model: nn.Module) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._module_names = {id(module): name for name, module in model.named_modules()}
        self._used: set[str] = set()

    def _fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def weight(self, key: str, array: np.ndarray) -> str:
        """An initializer named key (a state_dict key), as float32 like the graph's input."""
        from onnx import numpy_helper

        data = np.asarray(array, dtype=np.float32, order="C")
        self.initializers.append(numpy_helper.from_array(data, key))
        return key

    def node(
        self, op: str, inputs: list[str], base: str, output: str | None = None, **attrs: Any
    ) -> str:
        """Append one node; its output is output, or a fresh name made from base."""
        from onnx import helper

        name = self._fresh(base if output is None else output)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def relu(self, x: str) -> str:
        """x.relu(), which the models call as a method, not as an nn.ReLU module."""
        return self.node("Relu", [x], "relu")

    def flatten(self, x: str) -> str:
        """torch.flatten(x, 1): (N, C, H, W) -> (N, C*H*W)."""
        return self.node("Flatten", [x], "flatten", axis=1)

    def name_of(self, module: nn.Module) -> str:
        """The module's name in the model (its named_modules() key)."""
        return self._module_names[id(module)]

    def layer(self, module: nn.Module, x: str, output: str | None = None) -> str:
        """The nodes of one module applied to the tensor named x; the name of the result."""
        name = self.name_of(module)
        emit = LAYERS.get(type(module))
        if emit is None:
            known = ", ".join(sorted(cls.__name__ for cls in LAYERS))
            raise ExportError(
                f"cannot export layer {name} ({type(module).__name__}) to ONNX: "
                f"the exporter knows {known}"
            )
        return emit(self, name, module, x, output)

    def chain(self, x: str, *modules: nn.Module) -> str:
        for module in modules:
            x = self.layer(module, x)
        return x


def _conv2d(graph: OnnxGraph, name: str, conv: nn.Conv2d, x: str, output: str | None) -> str:
    inputs = [x, graph.weight(f"{name}.weight", conv.weight.data)]
    if conv.bias is not None:
        inputs.append(graph.weight(f"{name}.bias", conv.bias.data))
    ph, pw = conv.padding
    return graph.node(
        "Conv",
        inputs,
        name,
        output,
        kernel_shape=list(conv.kernel_size),
        strides=list(conv.stride),
        pads=[ph, pw, ph, pw],
        dilations=list(conv.dilation),
        group=conv.groups,
    )


def _batch_norm2d(
    graph: OnnxGraph, name: str, bn: nn.BatchNorm2d, x: str, output: str | None
) -> str:
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel."""
    if bn.running_mean is None:
        raise ExportError(
            f"cannot export layer {name} to ONNX: a BatchNorm2d without running statistics "
            "normalises with each batch's own, even in eval mode"
        )
    if bn.weight is None:
        raise ExportError(f"cannot export layer {name} to ONNX: BatchNorm2d with affine=False")
    inputs = [
        x,
        graph.weight(f"{name}.weight", bn.weight.data),
        graph.weight(f"{name}.bias", bn.bias.data),
        graph.weight(f"{name}.running_mean", bn.running_mean),
        graph.weight(f"{name}.running_var", bn.running_var),
    ]
    return graph.node("BatchNormalization", inputs, name, output, epsilon=float(bn.eps))


def _max_pool2d(graph: OnnxGraph, name: str, pool: nn.MaxPool2d, x: str, output: str | None) -> str:
    ph, pw = to_pair(pool.padding, "padding")
    return graph.node(
        "MaxPool",
        [x],
        name,
        output,
        kernel_shape=list(to_pair(pool.kernel_size, "kernel_size")),
        strides=list(to_pair(pool.stride, "stride")),
        pads=[ph, pw, ph, pw],
    )


def adaptive_windows(size: int, out: int) -> tuple[int, int]:
    """(kernel, stride) of the AveragePool that AdaptiveAvgPool2d computes along one axis of
    `size` cells cut into `out`, or ExportError when its windows differ in width.

    Window i spans adaptive_bounds(size, out)[i], AdaptiveAvgPool2d's own windows: 7 cells
    into 3 give [0, 3), [2, 5), [4, 7), an AveragePool of kernel 3, stride 2.
    """
    bounds = adaptive_bounds(size, out)
    widths = {end - start for start, end in bounds}
    steps = {b[0] - a[0] for a, b in itertools.pairwise(bounds)} or {1}
    if len(widths) != 1 or len(steps) != 1:
        raise ExportError(
            f"cannot export AdaptiveAvgPool2d from {size} to {out} cells to ONNX: its windows "
            "differ in width, which no AveragePool computes"
        )
    return widths.pop(), steps.pop()


def _adaptive_avg_pool2d_on(
    graph: OnnxGraph, name: str, pool: nn.AdaptiveAvgPool2d, x: str, size: tuple[int, int]
) -> str:
    """AdaptiveAvgPool2d on an input of known spatial size: GlobalAveragePool for (1, 1),
    else the AveragePool with the same windows (adaptive_windows)."""
    out = to_pair(pool.output_size, "output_size")
    out = tuple(size[i] if out[i] is None else out[i] for i in range(2))
    if out == (1, 1):
        return graph.node("GlobalAveragePool", [x], name, None)
    (kh, sh), (kw, sw) = adaptive_windows(size[0], out[0]), adaptive_windows(size[1], out[1])
    return graph.node("AveragePool", [x], name, None, kernel_shape=[kh, kw], strides=[sh, sw])


def _linear(graph: OnnxGraph, name: str, fc: nn.Linear, x: str, output: str | None) -> str:
    """y = x @ weight.T + bias: Gemm with transB=1, since weight is (out, in) as in torch."""
    inputs = [x, graph.weight(f"{name}.weight", fc.weight.data)]
    if fc.bias is not None:
        inputs.append(graph.weight(f"{name}.bias", fc.bias.data))
    return graph.node("Gemm", inputs, name, output, transB=1)


def _flatten(graph: OnnxGraph, name: str, flatten: nn.Flatten, x: str, output: str | None) -> str:
    if (flatten.start_dim, flatten.end_dim) != (1, -1):
        raise ExportError(
            f"cannot export layer {name} to ONNX: Flatten only with start_dim=1, end_dim=-1"
        )
    return graph.flatten(x)


def _dropout(graph: OnnxGraph, name: str, dropout: nn.Dropout, x: str, output: str | None) -> str:
    """In eval mode dropout passes x through: no node."""
    return x


LAYERS: dict[type, Callable[..., str]] = {
    nn.Conv2d: _conv2d,
    nn.BatchNorm2d: _batch_norm2d,
    nn.MaxPool2d: _max_pool2d,
    nn.Linear: _linear,
    nn.Flatten: _flatten,
    nn.Dropout: _dropout,
}


def _linear_classifier_graph(graph: OnnxGraph, model: models.LinearClassifier) -> str:
    """LinearClassifier.forward on an image batch: flatten, dropout, fc."""
    if model.input_size != 28 * 28:
        raise ExportError(
            f"cannot export this LinearClassifier to ONNX: it takes {model.input_size} features, "
            "not a 1x28x28 image"
        )
    x = graph.chain(INPUT, model.flatten, model.dropout)
    return graph.layer(model.fc, x, output=OUTPUT)


def _cnn_classifier_graph(graph: OnnxGraph, model: models.CNNClassifier) -> str:
    """CNNClassifier.forward, op for op, including its pool-then-ReLU order."""
    x = graph.relu(graph.chain(INPUT, model.conv1, model.bn1, model.pool))
    x = graph.relu(graph.chain(x, model.conv2, model.bn2, model.pool))
    x = graph.relu(graph.chain(x, model.conv3, model.bn3))
    pool = model.global_pool
    x = _adaptive_avg_pool2d_on(graph, graph.name_of(pool), pool, x, (7, 7))  # conv3's 7x7
    x = graph.flatten(x)
    x = graph.relu(graph.chain(x, model.dropout, model.fc1))
    return graph.layer(model.fc2, graph.layer(model.dropout, x), output=OUTPUT)


GRAPHS: dict[type, Callable[..., str]] = {
    models.LinearClassifier: _linear_classifier_graph,
    models.CNNClassifier: _cnn_classifier_graph,
}


def to_onnx(model: nn.Module, metadata: Mapping[str, Any] | None = None) -> Any:
    """The onnx.ModelProto of model's eval-mode forward (see the module docstring), checked."""
    import onnx
    from onnx import TensorProto, helper

    build = GRAPHS.get(type(model))
    if build is None:
        known = ", ".join(cls.__name__ for cls in GRAPHS)
        raise ExportError(
            f"cannot export a {type(model).__name__} to ONNX: the exporter knows {known}"
        )
    graph = OnnxGraph(model)
    build(graph, model)

    num_classes = int(model.num_classes)
    onnx_graph = helper.make_graph(
        graph.nodes,
        type(model).__name__,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", num_classes])],
        graph.initializers,
        doc_string="input: MNIST digits normalised as (pixels / 255 - 0.1307) / 0.3081",
    )
    proto = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="scratchnet",
        ir_version=IR_VERSION,
    )
    if metadata is not None:
        helper.set_model_props(proto, {METADATA_KEY: _metadata_json(metadata)})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ExportError(
            f"the ONNX graph of {type(model).__name__} is invalid: {first_line}"
        ) from None
    return proto


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    """The checkpoint metadata as JSON, without "format", which names the .npz container."""
    return json.dumps({k: v for k, v in metadata.items() if k != "format"})


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def export_bytes(model: nn.Module, metadata: Mapping[str, Any], fmt: str) -> bytes:
    """The file's bytes of model in format fmt ("onnx" or "safetensors")."""
    if fmt == "onnx":
        return to_onnx(model, metadata).SerializeToString()
    if fmt == "safetensors":
        return safetensors_bytes(model.state_dict(), metadata)
    raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.export",
        description="Export a trained model (a checkpoint, or a bundled model) to ONNX or "
        "safetensors.",
    )
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint (.npz or .safetensors)")
    parser.add_argument("--model", choices=list(models.MODELS), help="a bundled model instead")
    parser.add_argument("--format", required=True, choices=list(FORMATS), dest="fmt")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 when the file was written, 2 for any error (one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.model is None):
        parser.error("give either a CHECKPOINT or --model, not both or neither")
    output: Path = args.output
    suffix = FORMATS[args.fmt]
    if output.suffix != suffix:
        parser.error(f"-o {output}: {args.fmt} exports are written to {suffix} files")
    if not output.parent.is_dir():
        print(f"error: the output folder {output.parent} does not exist", file=sys.stderr)
        return 2
    if output.is_dir():
        print(f"error: {output} is a folder", file=sys.stderr)
        return 2

    path = args.checkpoint if args.model is None else models.pretrained_path(args.model)
    try:
        model, metadata = models.load_model(path, expected=args.model)
        data = export_bytes(model, metadata, args.fmt)
    except ValueError as exc:  # CheckpointError and ExportError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        atomic_write_bytes(output, data)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({args.fmt}, {len(data):,} bytes)")
    return 0
