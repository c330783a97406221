"""Export (scratchnet/mnist/export.py): ONNX run in onnxruntime, safetensors read back, the CLI.

`pytest tests/test_export.py -s` prints the measured figures of the bundled models.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

from safetensors.numpy import save as save_safetensors  # noqa: E402

from scratchnet import nn  # noqa: E402
from scratchnet.checkpoint import CheckpointError, save_checkpoint  # noqa: E402
from scratchnet.mnist import models  # noqa: E402
from scratchnet.mnist.data import normalize  # noqa: E402
from scratchnet.mnist.export import (  # noqa: E402
    INPUT,
    OPSET,
    OUTPUT,
    ExportError,
    adaptive_windows,
    main,
    to_onnx,
)
from scratchnet.mnist.inference import logits  # noqa: E402
from scratchnet.safetensors_file import safetensors_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 1000

# CNNClassifier.forward, node for node: pool before ReLU in the first two blocks, no Dropout.
CNN_OPS = [
    *["Conv", "BatchNormalization", "MaxPool", "Relu"] * 2,
    *["Conv", "BatchNormalization", "Relu", "GlobalAveragePool"],
    *["Flatten", "Gemm", "Relu", "Gemm"],
]
LINEAR_OPS = ["Flatten", "Gemm"]


@pytest.fixture(scope="module", params=["linear", "cnn"])
def bundled(request):
    """(name, model, metadata) of a bundled model."""
    name = request.param
    path = models.pretrained_path(name)
    if not path.exists():
        pytest.skip(f"no bundled {name} model at {path}")
    model, metadata = models.load_model(path, expected=name)
    return name, model, metadata


@pytest.fixture(scope="module")
def test_images(mnist) -> np.ndarray:
    """The first 1,000 MNIST test digits, normalised: (1000, 1, 28, 28) float32."""
    return normalize(mnist.test_images[:N_IMAGES])


def run_onnx(proto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: x})[0]


def one_line_error(text: str) -> str:
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------


def test_onnx_logits_match_scratchnet_on_1000_test_images(bundled, test_images):
    name, model, metadata = bundled
    proto = to_onnx(model, metadata)
    onnx.checker.check_model(proto, full_check=True)
    assert [op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")] == [OPSET]

    ours = logits(model, test_images)
    theirs = run_onnx(proto, test_images)
    max_abs = float(np.abs(ours - theirs).max())
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    print(
        f"\n{name} ONNX vs scratchnet, {N_IMAGES} test images: max |logit difference| "
        f"{max_abs:.2e}, predictions agree on {100 * agreement:.1f}%"
    )
    assert theirs.shape == (N_IMAGES, 10)
    assert max_abs < 1e-4
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def test_onnx_graph_is_the_eval_forward_with_a_dynamic_batch(bundled, test_images):
    name, model, metadata = bundled
    proto = to_onnx(model, metadata)
    graph = proto.graph
    ops = LINEAR_OPS
    if name == "cnn":  # the bundled CNN's 3x3 final pool (pool_size 3) is an AveragePool
        ops = [
            op if op != "GlobalAveragePool" or model.pool_size == 1 else "AveragePool"
            for op in CNN_OPS
        ]
    assert [node.op_type for node in graph.node] == ops

    (graph_input,) = graph.input
    (graph_output,) = graph.output
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert (graph_input.name, dims) == (INPUT, ["N", 1, 28, 28])
    dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert (graph_output.name, dims) == (OUTPUT, ["N", 10])
    for batch in (1, 7):
        assert run_onnx(proto, test_images[:batch]).shape == (batch, 10)

    state = model.state_dict()
    for initializer in graph.initializer:
        np.testing.assert_array_equal(
            onnx.numpy_helper.to_array(initializer), state[initializer.name]
        )
    props = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(props["scratchnet"])["architecture"] == metadata["architecture"]


def test_onnx_export_is_eval_mode_whatever_the_model_mode():
    """Running statistics, not the batch's, and no dropout, even from a model in train mode."""
    rng = np.random.default_rng(0)
    model = models.CNNClassifier(dropout_rate=0.5)
    for bn in (model.bn1, model.bn2, model.bn3):
        bn.running_mean[...] = rng.normal(0, 0.5, bn.num_features)
        bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.bias.data[...] = rng.normal(0, 0.1, bn.num_features)
    model.train()
    x = rng.normal(size=(5, 1, 28, 28)).astype(np.float32)
    theirs = run_onnx(to_onnx(model), x)
    ours = logits(model, x)  # in eval mode
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("pool_size", "kernel", "stride"), [(2, 4, 3), (3, 3, 2), (7, 1, 1)])
def test_onnx_cnn_with_a_finer_final_pool(pool_size, kernel, stride):
    """AdaptiveAvgPool2d((K, K)) on conv3's 7x7 map is the AveragePool with its windows."""
    assert adaptive_windows(7, pool_size) == (kernel, stride)
    rng = np.random.default_rng(pool_size)
    model = models.CNNClassifier(pool_size=pool_size)
    model.eval()
    x = rng.normal(size=(4, 1, 28, 28)).astype(np.float32)
    proto = to_onnx(model)
    (node,) = [node for node in proto.graph.node if node.op_type == "AveragePool"]
    attrs = {a.name: list(a.ints) for a in node.attribute}
    assert attrs == {"kernel_shape": [kernel, kernel], "strides": [stride, stride]}
    np.testing.assert_allclose(run_onnx(proto, x), logits(model, x), atol=1e-5, rtol=1e-4)


def test_onnx_refuses_what_it_cannot_export():
    model = models.CNNClassifier()
    model.pool = nn.Identity()
    with pytest.raises(ExportError, match=r"layer pool \(Identity\)"):
        to_onnx(model)

    model = models.CNNClassifier()
    model.global_pool = nn.AdaptiveAvgPool2d((4, 4))  # 7 cells into 4: windows of 2 and 3
    with pytest.raises(ExportError, match=r"from 7 to 4 cells.*differ in width"):
        to_onnx(model)

    model = models.CNNClassifier()
    model.bn2 = nn.BatchNorm2d(64, track_running_stats=False)
    with pytest.raises(ExportError, match=r"bn2.*running statistics"):
        to_onnx(model)

    with pytest.raises(ExportError, match="cannot export a Sequential"):
        to_onnx(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    with pytest.raises(ExportError, match="takes 100 features"):
        to_onnx(models.LinearClassifier(input_size=100))


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------


def read_header(path: Path) -> dict:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length])


def test_safetensors_round_trip(bundled, test_images, tmp_path):
    name, model, metadata = bundled
    path = tmp_path / f"{name}.safetensors"
    assert main([f"--model={name}", "--format=safetensors", "-o", str(path)]) == 0

    header = read_header(path)
    strings = header.pop("__metadata__")
    assert all(isinstance(v, str) for v in strings.values())
    assert strings["format"] == "pt"
    assert set(header) == set(model.state_dict())

    loaded, loaded_metadata = models.load_model(path, expected=name)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded_metadata == {k: v for k, v in metadata.items() if k != "format"}
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        np.testing.assert_array_equal(got, value, err_msg=key)
    ours, theirs = logits(model, test_images), logits(loaded, test_images)
    print(
        f"\n{name} safetensors round trip, {N_IMAGES} test images: max |logit difference| "
        f"{float(np.abs(ours - theirs).max()):.2e}, predictions agree on "
        f"{100 * float((ours.argmax(1) == theirs.argmax(1)).mean()):.1f}%"
    )
    np.testing.assert_array_equal(ours, theirs)


def linear_file(
    tmp_path: Path,
    metadata: dict | None = None,
    changes: dict[str, np.ndarray | None] | None = None,
) -> Path:
    """A .safetensors file of a fresh LinearClassifier, with tensors changed (None: removed)."""
    model = models.LinearClassifier()
    if metadata is None:
        metadata = {"architecture": {"name": "linear", "kwargs": {}}}
    data = safetensors_bytes(model.state_dict(), metadata)
    if changes:
        tensors = dict(model.state_dict())
        for key, value in changes.items():
            if value is None:
                del tensors[key]
            else:
                tensors[key] = value
        data = save_safetensors(tensors, metadata={"scratchnet": json.dumps(metadata)})
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    return path


def nan_weight() -> np.ndarray:
    weight = np.zeros((10, 784), dtype=np.float32)
    weight[3, 5] = np.nan
    return weight


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: linear_file(p, {"architecture": {"name": "resnet"}}), "unknown architecture"),
        (
            lambda p: linear_file(
                p, {"architecture": {"name": "linear", "kwargs": {"num_classes": 10**12}}}
            ),
            "num_classes",
        ),
        (
            lambda p: linear_file(p, changes={"fc.weight": np.zeros((10, 783), np.float32)}),
            "fc.weight is F32 of shape",
        ),
        (
            lambda p: linear_file(p, changes={"fc.weight": np.zeros((10, 784), np.float64)}),
            "fc.weight is F64",
        ),
        (lambda p: linear_file(p, changes={"fc.bias": None}), "missing keys: fc.bias"),
        (
            lambda p: linear_file(p, changes={"fc.extra": np.zeros(3, np.float32)}),
            "unexpected keys: fc.extra",
        ),
        (
            lambda p: linear_file(p, changes={"fc.weight": nan_weight()}),
            "non-finite values .* in fc.weight",
        ),
    ],
    ids=["architecture", "option", "shape", "dtype", "missing", "unexpected", "nan"],
)
def test_load_model_checks_safetensors_like_a_checkpoint(tmp_path, make, match):
    with pytest.raises(CheckpointError, match=match) as info:
        models.load_model(make(tmp_path))
    one_line_error(str(info.value))


def test_load_model_refuses_broken_safetensors_files(tmp_path):
    good = linear_file(tmp_path).read_bytes()
    cases = {
        "truncated": (good[:-10], "corrupt"),
        "garbage": (b"\xff" * 100, "not a safetensors file"),
        "tiny": (b"abc", "too short"),
        "no metadata": (
            save_safetensors({"fc.bias": np.zeros(10, np.float32)}),
            "no scratchnet metadata",
        ),
    }
    for name, (data, match) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=match):
            models.load_model(path)
    with pytest.raises(CheckpointError, match="is missing"):
        models.load_model(tmp_path / "absent.safetensors")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="directory"):
        models.load_model(folder)
    with pytest.raises(CheckpointError, match="not the cnn model"):
        models.load_model(linear_file(tmp_path), expected="cnn")


class _Touch:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_loading_never_unpickles(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(CheckpointError):
        models.load_model(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def test_cli_exports_a_checkpoint_to_onnx(tmp_path, test_images):
    model = models.LinearClassifier()
    checkpoint = save_checkpoint(
        tmp_path / "linear.npz", model.state_dict(), {"architecture": {"name": "linear"}}
    )
    output = tmp_path / "linear.onnx"
    assert main([str(checkpoint), "--format", "onnx", "-o", str(output)]) == 0
    proto = onnx.load(str(output))
    np.testing.assert_allclose(
        run_onnx(proto, test_images[:50]), logits(model, test_images[:50]), atol=1e-5
    )


def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    narrow = models.LinearClassifier(input_size=100)
    narrow_checkpoint = save_checkpoint(
        tmp_path / "narrow.npz",
        narrow.state_dict(),
        {"architecture": {"name": "linear", "kwargs": {"input_size": 100}}},
    )
    cases = {
        "bad path": (
            [str(tmp_path / "absent.npz"), "--format", "onnx", "-o", str(tmp_path / "a.onnx")],
            "is missing",
        ),
        "folder missing": (
            ["--model", "cnn", "--format", "onnx", "-o", str(tmp_path / "no" / "a.onnx")],
            "output folder",
        ),
        "unsupported model": (
            [str(narrow_checkpoint), "--format", "onnx", "-o", str(tmp_path / "a.onnx")],
            "takes 100 features",
        ),
    }
    for name, (argv, match) in cases.items():
        assert main(argv) == 2, name
        captured = capsys.readouterr()
        assert match in one_line_error(captured.err), name
        assert captured.out == ""
        assert not (tmp_path / "a.onnx").exists()

    usage_errors = {
        "unknown format": ["--model", "cnn", "--format", "pt", "-o", "a.pt"],
        "wrong suffix": ["--model", "cnn", "--format", "onnx", "-o", str(tmp_path / "a.bin")],
        "both": [str(narrow_checkpoint), "--model", "cnn", "--format", "onnx", "-o", "a.onnx"],
    }
    for name, argv in usage_errors.items():
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
            "python -m scratchnet.export: error:"
        ), name


def test_entry_point_and_lazy_imports(tmp_path):
    """`python -m scratchnet.export` runs main; importing the module imports no export package."""
    absent = tmp_path / "absent.npz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scratchnet.export",
            str(absent),
            "--format",
            "onnx",
            "-o",
            str(tmp_path / "a.onnx"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "is missing" in one_line_error(result.stderr)

    code = (
        "import sys, scratchnet, scratchnet.mnist.export; "
        "print([m for m in ('onnx', 'onnxruntime', 'safetensors') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
