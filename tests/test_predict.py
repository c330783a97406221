"""The `python -m scratchnet.predict` command, on digits drawn with PIL.

The checkpoint is a LinearClassifier made by hand: each of its rows for 0, 1 and 7 is the
prepared image of that digit (template matching), so its answers are known in advance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchnet.checkpoint import save_checkpoint
from scratchnet.mnist import imageprep, predict
from tests.test_imageprep import DIGITS, draw_digit, png_claiming

PRETRAINED = Path(predict.__file__).parent / "pretrained"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from scratchnet.mnist.models import LinearClassifier

    model = LinearClassifier()
    weight = np.zeros((10, 784), np.float32)
    for digit in DIGITS:
        template = imageprep.prepare_image(draw_digit(digit)).ravel()
        template -= template.mean()
        weight[int(digit)] = 0.3 * template / np.linalg.norm(template)
    state = model.state_dict()
    state["fc.weight"] = weight
    state["fc.bias"] = np.zeros(10, np.float32)
    path = tmp_path_factory.mktemp("checkpoints") / "linear.npz"
    meta = {"architecture": {"name": "linear", "kwargs": {}}, "metrics": {}}
    save_checkpoint(path, state, meta)
    return path


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    """Digits drawn as a user would, plus files that are not usable digits."""
    paths = {}
    for digit in DIGITS:
        path = tmp_path / f"digit{digit}.png"
        draw_digit(digit, box=(10 + 10 * int(digit), 50, 180), width=18).save(path)
        paths[digit] = path
    paths["blank"] = tmp_path / "blank.png"
    Image.new("L", (280, 280), 255).save(paths["blank"])
    paths["corrupt"] = tmp_path / "corrupt.png"
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    paths["missing"] = tmp_path / "missing.png"
    paths["huge"] = tmp_path / "huge.png"
    paths["huge"].write_bytes(png_claiming(10_000, 10_000))
    return paths


def run(capsys, *args: str | Path) -> tuple[int, str, str]:
    code = predict.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_predicts_each_digit(capsys, checkpoint, images):
    code, out, err = run(capsys, images["7"], images["1"], images["0"], "--checkpoint", checkpoint)
    assert code == 0, err
    assert err == ""
    assert f"model: linear from {checkpoint}" in out
    for digit in DIGITS:
        assert f"{images[digit]}: {digit} (confidence " in out


def test_top_k_table(capsys, checkpoint, images):
    code, out, _ = run(capsys, images["7"], "--checkpoint", checkpoint, "--top-k", "5")
    assert code == 0
    lines = out.splitlines()
    header = lines.index("  digit  probability")
    rows = lines[header + 1 :]
    assert len(rows) == 5
    assert rows[0].split()[0] == "7"
    probabilities = [float(row.split()[1].rstrip("%")) for row in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert "#" in rows[0]

    code, out, _ = run(capsys, images["7"], "--checkpoint", checkpoint, "--top-k", "1")
    lines = out.splitlines()
    assert len(lines) == 5  # model, blank line, verdict, header, one row
    assert lines[-1].split()[0] == "7"


@pytest.mark.parametrize("k", ["0", "11", "three"])
def test_bad_top_k_is_a_usage_error(capsys, images, k):
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(images["7"]), "--top-k", k])
    assert exit_info.value.code == 2
    assert "--top-k" in capsys.readouterr().err


def test_visualize_beside_the_image(capsys, checkpoint, images):
    code, out, _ = run(capsys, images["7"], images["1"], "--checkpoint", checkpoint, "--visualize")
    assert code == 0
    for digit in "71":
        png = images[digit].with_name(f"digit{digit}_prediction.png")
        assert f"saved {png}" in out
        with Image.open(png) as plot:
            assert plot.format == "PNG"
            assert plot.width > plot.height > 100


def test_visualize_to_a_path_or_folder(capsys, checkpoint, images, tmp_path):
    target = tmp_path / "plots" / "seven.png"
    code, _, _ = run(capsys, images["7"], "--checkpoint", checkpoint, "--visualize", target)
    assert code == 0
    assert Image.open(target).format == "PNG"

    folder = tmp_path / "out"
    args = [images["0"], images["1"], "--checkpoint", checkpoint]
    code, _, _ = run(capsys, *args, "--visualize", "--output-dir", folder)
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "digit0_prediction.png",
        "digit1_prediction.png",
    ]


def test_visualize_overwrites_its_own_plots_only(capsys, checkpoint, images, tmp_path):
    target = tmp_path / "plot.png"
    for _ in range(2):  # a second run replaces the first run's plot
        code, _, err = run(capsys, images["7"], "--checkpoint", checkpoint, "--visualize", target)
        assert code == 0, err

    # `predict a.png --visualize b.png` where b.png was meant as a second image to classify.
    before = images["1"].read_bytes()
    code, out, err = run(
        capsys, images["7"], "--checkpoint", checkpoint, "--visualize", images["1"]
    )
    assert code == 1
    assert images["1"].read_bytes() == before
    assert f"{images['7']}: 7 " in out  # the prediction is still printed
    assert f"will not save the plot over {images['1']}" in err


def test_visualize_path_with_several_images_is_a_usage_error(capsys, images, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(images["7"]), str(images["1"]), "--visualize", str(tmp_path / "a.png")])
    assert exit_info.value.code == 2
    assert "--output-dir" in capsys.readouterr().err


def test_visualize_given_before_the_image(capsys, checkpoint, images):
    # argparse reads the image as --visualize's PATH; it must still be classified, not overwritten.
    before = images["7"].read_bytes()
    code, out, _ = run(capsys, "--checkpoint", checkpoint, "--visualize", images["7"])
    assert code == 0
    assert f"{images['7']}: 7 " in out
    assert images["7"].read_bytes() == before
    assert images["7"].with_name("digit7_prediction.png").exists()


def test_bad_files_get_one_line_each_and_the_rest_still_run(capsys, checkpoint, images):
    folder = images["7"].parent
    files = [images["missing"], images["7"], images["corrupt"], images["blank"], folder]
    files.append(images["huge"])
    code, out, err = run(capsys, *files, "--checkpoint", checkpoint)
    assert code == 1
    assert f"{images['7']}: 7 (confidence " in out
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert lines == [
        f"error: {images['missing']}: no such file",
        f"error: {images['corrupt']}: cannot decode image: "
        "not an image, or not PNG, JPEG, GIF, BMP, WEBP or TIFF",
        f"error: {images['blank']}: the image has no ink: draw or upload a digit",
        f"error: {folder}: is a directory, not an image",
        f"error: {images['huge']}: image is too large: 10000x10000 pixels, the limit is "
        "25,000,000 pixels (25 megapixels)",
    ]


def test_json_output(capsys, checkpoint, images):
    args = [images["1"], images["blank"], "--checkpoint", checkpoint, "--json", "--top-k", "2"]
    code, out, err = run(capsys, *args)
    assert code == 1
    assert "no ink" in err
    report = json.loads(out)
    assert report["model"] == f"linear from {checkpoint}"
    first, second = report["results"]
    assert first["image"] == str(images["1"])
    assert first["prediction"] == 1
    assert first["top_k"][0]["digit"] == 1
    assert len(first["top_k"]) == 2
    assert sum(first["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert first["confidence"] == pytest.approx(max(first["probabilities"]))
    assert first["visualization"] is None
    assert second == {"image": str(images["blank"]), "error": second["error"]}
    assert "no ink" in second["error"]


def test_missing_checkpoint(capsys, images, tmp_path):
    code, out, err = run(capsys, images["7"], "--checkpoint", tmp_path / "nope.npz")
    assert code == 2
    assert out == ""
    assert err.startswith("error: cannot load the model: no checkpoint at ")
    assert len(err.splitlines()) == 1


def test_corrupt_checkpoint(capsys, images, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    bad.with_suffix(".json").write_text("{ not json")
    code, _, err = run(capsys, images["7"], "--checkpoint", bad)
    assert code == 2
    assert err.startswith("error: cannot load the model: ")
    assert "Traceback" not in err


def test_model_flag_that_disagrees_with_the_checkpoint(capsys, checkpoint, images):
    code, out, err = run(capsys, images["7"], "--checkpoint", checkpoint, "--model", "cnn")
    assert code == 2
    assert out == ""
    assert err.endswith("holds a linear model, not the cnn model it is loaded as\n")
    code, _, _ = run(capsys, images["7"], "--checkpoint", checkpoint, "--model", "linear")
    assert code == 0


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: os.mkfifo(p), "a named pipe (FIFO), not a regular file"),
        (lambda p: os.symlink("/dev/zero", p), "a character device, not a regular file"),
    ],
    ids=["FIFO", "symlink to /dev/zero"],
)
def test_image_that_is_not_a_regular_file_is_refused_not_waited_on(
    checkpoint, images, tmp_path, make, says
):
    path = tmp_path / "digit.png"
    make(path)
    command = [sys.executable, "-m", "scratchnet.predict", str(path), str(images["7"])]
    result = subprocess.run(
        [*command, "--checkpoint", str(checkpoint)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {path}: cannot read the file: it is {says}\n"
    assert "7 (confidence" in result.stdout  # the other image is still classified


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_json_is_valid_even_when_the_model_overflows(capsys, checkpoint, images, tmp_path):
    from scratchnet.mnist.models import LinearClassifier

    state = LinearClassifier().state_dict()
    state["fc.weight"] = np.full((10, 784), 3e38, np.float32)  # finite, but logits overflow
    path = save_checkpoint(tmp_path / "huge.npz", state, {"architecture": {"name": "linear"}})
    code, out, err = run(capsys, images["7"], "--checkpoint", path, "--json")
    assert code == 1
    report = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert report["results"] == [
        {"image": str(images["7"]), "error": "the model's output is not finite (NaN or infinity)"}
    ]
    assert err.count("\n") == 1


def test_runs_as_a_module(images, tmp_path):
    command = [sys.executable, "-m", "scratchnet.predict", str(images["7"])]
    result = subprocess.run(
        [*command, "--checkpoint", str(tmp_path / "none.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no checkpoint at" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["cnn", "linear"])
def test_bundled_model_reads_drawn_digits(capsys, images, name):
    if not (PRETRAINED / f"{name}.npz").exists():
        pytest.skip(f"no bundled {name} model yet (python -m scratchnet.train --model {name})")
    code, out, err = run(capsys, images["7"], images["1"], images["0"], "--model", name, "--json")
    assert code == 0, err
    predicted = {r["image"]: r["prediction"] for r in json.loads(out)["results"]}
    expected = {str(images[d]): int(d) for d in DIGITS}
    correct = sum(predicted[image] == digit for image, digit in expected.items())
    # The CNN reads the 7 and the 0 (its 1 is the test below); the linear model (93% on
    # drawings, tests/test_pretrained.py) may miss one of these synthetic strokes.
    if name == "cnn":
        assert predicted[str(images["7"])] == 7 and predicted[str(images["0"])] == 0, predicted
    else:
        assert correct >= 2, predicted


@pytest.mark.xfail(
    strict=True,
    reason="issue 17, open: the bundled CNN reads this 1 with a long slanted flag as a 7 "
    "(p 0.52 at this brush width, 18 px); over widths 6 to 24 px in steps of 3 it reads a 1 at "
    "3 of the 7 (9, 15 and 21 px), the CNN bundled before it at 2 (9 and 21 px)",
)
def test_bundled_cnn_reads_a_one_with_a_long_flag(capsys, images):
    code, out, err = run(capsys, images["1"], "--model", "cnn", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["prediction"] == 1
