"""MNIST files, downloads and batches, tested on tiny synthetic IDX files served locally."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from scratchnet.mnist import data
from scratchnet.mnist.data import (
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    DataLoader,
    MNISTError,
    download_mnist,
    load_mnist,
    normalize,
    read_idx,
    resolve_data_dir,
    train_val_split,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


# --------------------------------------------------------------------------------------------
# Synthetic IDX files
# --------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: 0, 0, type 0x08, ndim, big-endian dims, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_mnist(n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


SYNTHETIC = synthetic_mnist()
SYNTHETIC_RAW = {key: idx_bytes(array) for key, array in SYNTHETIC.items()}
SYNTHETIC_MD5 = {key: hashlib.md5(raw).hexdigest() for key, raw in SYNTHETIC_RAW.items()}


def write_mirror(folder: Path, payload: dict[str, bytes]) -> Path:
    """Write `<name>.gz` files whose bytes are payload[key] (already gzipped or not)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, content in payload.items():
        (folder / f"{MNIST_FILES[key]}.gz").write_bytes(content)
    return folder


def assert_synthetic_files(paths: dict[str, Path]) -> None:
    assert set(paths) == set(MNIST_FILES)
    for key, path in paths.items():
        assert path.name == MNIST_FILES[key]
        assert path.read_bytes() == SYNTHETIC_RAW[key]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# A local HTTP server with good and broken mirrors
# --------------------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /slow/ answers only after SLOW_SECONDS, to trip the client's timeout."""

    SLOW_SECONDS = 1.0

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(self.SLOW_SECONDS)
        # The client of /slow/ gives up before the answer comes.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a server whose folders are mirrors: good, badsum, badgzip, truncated, ..."""
    root = tmp_path_factory.mktemp("mirrors")
    gzipped = {key: gzip.compress(raw) for key, raw in SYNTHETIC_RAW.items()}
    write_mirror(root / "good", gzipped)
    write_mirror(root / "slow", gzipped)
    # Valid gzip, wrong content (one pixel flipped): only the checksum can tell.
    flipped = {}
    for key, raw in SYNTHETIC_RAW.items():
        damaged = bytearray(raw)
        damaged[-1] ^= 0xFF
        flipped[key] = gzip.compress(bytes(damaged))
    write_mirror(root / "badsum", flipped)
    write_mirror(root / "badgzip", {key: b"<html>not gzip</html>" for key in gzipped})
    write_mirror(root / "truncated", {key: gz[: len(gz) // 2] for key, gz in gzipped.items()})
    (root / "missing").mkdir()

    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("key", ["train_images", "train_labels"])
def test_read_idx_round_trip(tmp_path: Path, key: str, compressed: bool) -> None:
    raw = SYNTHETIC_RAW[key]
    path = tmp_path / (MNIST_FILES[key] + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(raw) if compressed else raw)

    array = read_idx(path)

    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, SYNTHETIC[key])
    array[0] = 0  # a writable array, not a view of immutable bytes


def test_read_idx_detects_gzip_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(SYNTHETIC_RAW["test_labels"]))
    np.testing.assert_array_equal(read_idx(path), SYNTHETIC["test_labels"])


def corrupt_cases() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, content, phrase the error must contain)."""
    images = SYNTHETIC_RAW["train_images"]
    bad_magic = b"\x00\x00\x08\x07" + images[4:]
    float_magic = b"\x00\x00\x0d\x03" + images[4:]
    return {
        "wrong magic": ("img-idx3-ubyte", bad_magic, "magic"),
        "non-uint8 type": ("img-idx3-ubyte", float_magic, "magic"),
        "not idx at all": ("img-idx3-ubyte", b"PK\x03\x04 a zip file", "magic"),
        "empty": ("img-idx3-ubyte", b"", "truncated"),
        "truncated header": ("img-idx3-ubyte", images[:10], "truncated"),
        "truncated data": ("img-idx3-ubyte", images[:-1], "wrong size"),
        "trailing bytes": ("img-idx3-ubyte", images + b"\0", "wrong size"),
        "truncated data in gz": ("img-idx3-ubyte.gz", gzip.compress(images[:-100]), "truncated"),
        "trailing bytes in gz": ("img-idx3-ubyte.gz", gzip.compress(images + b"x"), "wrong size"),
        "truncated gz stream": ("img-idx3-ubyte.gz", gzip.compress(images)[:-30], "gzip"),
        "bad gzip": ("img-idx3-ubyte.gz", b"\x1f\x8b garbage, not deflate", "gzip"),
        "html saved as .gz": ("img-idx3-ubyte.gz", b"<html>404</html>", "gzip"),
    }


@pytest.mark.parametrize("case", sorted(corrupt_cases()))
def test_read_idx_rejects_corrupt_files(tmp_path: Path, case: str) -> None:
    name, content, phrase = corrupt_cases()[case]
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(MNISTError, match=phrase) as info:
        read_idx(path)
    assert name in str(info.value)


def test_read_idx_checks_expected_magic(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(SYNTHETIC_RAW["train_labels"])
    with pytest.raises(MNISTError, match="2049, expected 2051"):
        read_idx(path, expected_magic=data.IDX_IMAGES_MAGIC)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# load_mnist on local files
# --------------------------------------------------------------------------------------------


def write_local(folder: Path, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        raw = idx_bytes(array)
        name = MNIST_FILES[key] + (".gz" if compressed else "")
        (folder / name).write_bytes(gzip.compress(raw) if compressed else raw)


@pytest.mark.parametrize("compressed", [False, True])
def test_load_mnist_local(tmp_path: Path, compressed: bool) -> None:
    write_local(tmp_path, SYNTHETIC, compressed)

    mnist = load_mnist(tmp_path, download=False)

    for key, expected in SYNTHETIC.items():
        np.testing.assert_array_equal(getattr(mnist, key), expected)
    assert mnist.train_images.dtype == np.uint8
    assert mnist.train_labels.dtype == np.int64
    assert mnist.test_labels.dtype == np.int64
    assert "(12, 28, 28)" in repr(mnist)


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    arrays = dict(SYNTHETIC, test_labels=SYNTHETIC["test_labels"][:-1])
    write_local(tmp_path, arrays)
    with pytest.raises(MNISTError, match=r"5 images but .*4 labels") as info:
        load_mnist(tmp_path, download=False)
    assert MNIST_FILES["test_labels"] in str(info.value)


def test_load_mnist_rejects_swapped_files(tmp_path: Path) -> None:
    arrays = dict(SYNTHETIC, train_images=SYNTHETIC["train_labels"])
    write_local(tmp_path, arrays)
    with pytest.raises(MNISTError, match="magic") as info:
        load_mnist(tmp_path, download=False)
    assert MNIST_FILES["train_images"] in str(info.value)


def test_load_mnist_rejects_wrong_image_size(tmp_path: Path) -> None:
    arrays = dict(SYNTHETIC, train_images=np.zeros((12, 32, 32), np.uint8))
    write_local(tmp_path, arrays)
    with pytest.raises(MNISTError, match=r"\(N, 28, 28\)"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(MNISTError, match="not found"):
        load_mnist(tmp_path, download=False)


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    assert resolve_data_dir() == REPO_ROOT / "data" / "mnist"
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path)) == tmp_path


def test_mirrors_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.MIRRORS_ENV, raising=False)
    assert data.mirrors_from_env() == list(data.DEFAULT_MIRRORS)
    monkeypatch.setenv(data.MIRRORS_ENV, " file:///a , http://b/,, ")
    assert data.mirrors_from_env() == ["file:///a", "http://b/"]


# --------------------------------------------------------------------------------------------
# download_mnist
# --------------------------------------------------------------------------------------------


def download(folder: Path, mirrors: list[str], **kwargs: object) -> dict[str, Path]:
    return download_mnist(folder, mirrors, progress=False, checksums=SYNTHETIC_MD5, **kwargs)


def test_download_from_good_mirror(server: str, tmp_path: Path) -> None:
    target = tmp_path / "mnist"
    paths = download(target, [f"{server}/good/"])

    assert_synthetic_files(paths)
    assert leftovers(target) == sorted(MNIST_FILES.values())  # no .part files left behind
    mnist = load_mnist(target, download=False)
    np.testing.assert_array_equal(mnist.train_images, SYNTHETIC["train_images"])


def test_corrupt_mirror_falls_through_to_next(
    server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mirrors = [f"{server}/badsum", f"{server}/truncated", f"{server}/good"]
    with caplog.at_level(logging.WARNING, logger="scratchnet.mnist.data"):
        paths = download(tmp_path, mirrors)

    assert_synthetic_files(paths)
    assert leftovers(tmp_path) == sorted(MNIST_FILES.values())
    assert "checksum mismatch" in caplog.text
    assert f"{server}/truncated/" in caplog.text


def test_every_mirror_failing_raises(server: str, tmp_path: Path) -> None:
    mirrors = [
        f"{server}/missing/",
        f"{server}/badgzip/",
        f"{server}/badsum/",
        f"{server}/truncated/",
        "http://127.0.0.1:9/",  # discard port: connection refused
        f"file://{tmp_path / 'nowhere'}",
    ]
    with pytest.raises(MNISTError) as info:
        download(tmp_path / "mnist", mirrors)

    message = str(info.value)
    assert "every mirror failed" in message
    assert MNIST_FILES["train_images"] in message
    for mirror in mirrors:
        assert mirror.rstrip("/") + "/" + MNIST_FILES["train_images"] + ".gz" in message
    assert "404" in message
    assert "checksum mismatch" in message
    # Atomic writes: the truncated and corrupt streams left nothing behind, not even temp files.
    assert leftovers(tmp_path / "mnist") == []


def test_timeout_moves_to_next_mirror(server: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = download(tmp_path, [f"{server}/slow/", f"{server}/good/"], timeout=0.2)
    assert_synthetic_files(paths)
    assert time.perf_counter() - start < 4 * QuietHandler.SLOW_SECONDS


def test_file_mirror(server: str, tmp_path: Path) -> None:
    gzipped = {key: gzip.compress(raw) for key, raw in SYNTHETIC_RAW.items()}
    mirror = write_mirror(tmp_path / "mirror", gzipped)
    paths = download(tmp_path / "mnist", [mirror.as_uri()])
    assert_synthetic_files(paths)


def test_mirrors_come_from_env(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(data.MIRRORS_ENV, f"{server}/missing/,{server}/good/")
    paths = download_mnist(tmp_path, progress=True, checksums=SYNTHETIC_MD5)
    assert_synthetic_files(paths)


def test_valid_files_are_not_downloaded_again(tmp_path: Path) -> None:
    write_local(tmp_path, SYNTHETIC)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    paths = download(tmp_path, ["http://127.0.0.1:9/"])  # unreachable, and never asked

    assert_synthetic_files(paths)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_invalid_existing_file_is_replaced(server: str, tmp_path: Path) -> None:
    write_local(tmp_path, SYNTHETIC)
    damaged = tmp_path / MNIST_FILES["train_images"]
    damaged.write_bytes(damaged.read_bytes()[:-5])

    paths = download(tmp_path, [f"{server}/good/"])

    assert_synthetic_files(paths)


def test_failed_download_keeps_no_partial_file(server: str, tmp_path: Path) -> None:
    # The truncated stream is half written to the temp file before gzip notices the cut.
    with pytest.raises(MNISTError, match="every mirror failed"):
        download(tmp_path, [f"{server}/truncated/"])
    assert leftovers(tmp_path) == []


def test_load_mnist_downloads(server: str, tmp_path: Path) -> None:
    mnist = load_mnist(
        tmp_path, mirrors=[f"{server}/good/"], checksums=SYNTHETIC_MD5, progress=False
    )
    np.testing.assert_array_equal(mnist.test_images, SYNTHETIC["test_images"])


def test_cli_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI checks the published MD5s, which the synthetic files fail, and no mirror answers.
    write_local(tmp_path, SYNTHETIC)
    monkeypatch.setenv(data.MIRRORS_ENV, "http://127.0.0.1:9/")
    code = data.main(["--data-dir", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "every mirror failed" in capsys.readouterr().err


def real_mirrors() -> list[str] | None:
    if os.environ.get(data.MIRRORS_ENV, "").strip():
        return data.mirrors_from_env()
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        return [SHARED_MNIST.as_uri()]
    return None


@pytest.mark.skipif(real_mirrors() is None, reason=f"no MNIST mirror (set {data.MIRRORS_ENV})")
def test_real_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(data.MIRRORS_ENV, ",".join(real_mirrors() or []))
    assert data.main(["--data-dir", str(tmp_path), "--no-progress"]) == 0
    assert "ok: 60000 training and 10000 test images" in capsys.readouterr().out

    mnist = load_mnist(tmp_path, progress=False)  # verifies the MD5s again, downloads nothing

    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    assert mnist.train_images.dtype == np.uint8
    assert mnist.train_labels.dtype == np.int64
    assert set(np.unique(mnist.test_labels)) == set(range(10))
    # MNIST_MEAN and MNIST_STD are this training set's statistics.
    x = normalize(mnist.train_images)
    assert abs(float(x.mean())) < 1e-3
    assert abs(float(x.std()) - 1.0) < 1e-3


# --------------------------------------------------------------------------------------------
# Normalisation, split, DataLoader
# --------------------------------------------------------------------------------------------


def test_normalize_values() -> None:
    images = np.array([[[0, 255], [128, 1]]], dtype=np.uint8)

    x = normalize(images)

    assert x.shape == (1, 1, 2, 2)
    assert x.dtype == np.float32
    expected = (images[:, None].astype(np.float64) / 255 - MNIST_MEAN) / MNIST_STD
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    assert x[0, 0, 0, 0] == pytest.approx(-MNIST_MEAN / MNIST_STD)
    assert x[0, 0, 0, 1] == pytest.approx((1 - MNIST_MEAN) / MNIST_STD)
    # Float input on the 0..255 scale (what augmentation may return) gives the same values.
    np.testing.assert_allclose(normalize(images.astype(np.float32)), x, rtol=1e-6)
    np.testing.assert_array_equal(normalize(images[:, None]), x)


def test_train_val_split() -> None:
    train, val = train_val_split(60000)

    assert len(train) == 54000
    assert len(val) == 6000
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(60000))
    again_train, again_val = train_val_split(60000, seed=0)
    np.testing.assert_array_equal(again_val, val)
    np.testing.assert_array_equal(again_train, train)
    _, other_val = train_val_split(60000, seed=1)
    assert not np.array_equal(other_val, val)
    with pytest.raises(ValueError):
        train_val_split(10, val_size=11)


def indexed_dataset(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixels all equal index % 256 and labels equal to the index."""
    images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None], (n, 28, 28))
    return np.ascontiguousarray(images), np.arange(n, dtype=np.uint8)


def epoch_labels(loader: DataLoader) -> np.ndarray:
    return np.concatenate([y for _, y in loader])


def test_loader_batches() -> None:
    images, labels = indexed_dataset(150)
    loader = DataLoader(images, labels, batch_size=64)

    batches = list(loader)

    assert len(loader) == 3
    assert len(batches) == 3
    assert [len(y) for _, y in batches] == [64, 64, 22]
    for x, y in batches:
        assert x.shape == (len(y), 1, 28, 28)
        assert x.dtype == np.float32
        assert y.dtype == np.int64
        # each image still travels with its own label
        np.testing.assert_array_equal(x[:, 0, 5, 5], normalize(images[y])[:, 0, 5, 5])
    dropped = DataLoader(images, labels, batch_size=64, drop_last=True)
    assert len(dropped) == 2
    assert [len(y) for _, y in dropped] == [64, 64]


def test_loader_covers_every_sample_once_per_epoch() -> None:
    images, labels = indexed_dataset(100)
    loader = DataLoader(images, labels, batch_size=7)
    for _ in range(3):
        seen = epoch_labels(loader)
        assert sorted(seen.tolist()) == list(range(100))


def test_loader_shuffling_is_seeded_per_epoch() -> None:
    images, labels = indexed_dataset(100)
    first = DataLoader(images, labels, batch_size=10, seed=5)
    second = DataLoader(images, labels, batch_size=10, seed=5)
    other_seed = DataLoader(images, labels, batch_size=10, seed=6)

    epochs = [epoch_labels(first) for _ in range(3)]

    # same seed, same order, epoch by epoch
    for epoch in epochs:
        np.testing.assert_array_equal(epoch_labels(second), epoch)
    # a new order each epoch, and not the identity
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(100))
    assert not np.array_equal(epoch_labels(other_seed), epochs[0])
    # resuming: set_epoch(e) replays epoch e
    resumed = DataLoader(images, labels, batch_size=10, seed=5)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(epoch_labels(resumed), epochs[2])
    first.set_epoch(1)
    np.testing.assert_array_equal(epoch_labels(first), epochs[1])


def test_loader_without_shuffle_keeps_order() -> None:
    images, labels = indexed_dataset(30)
    loader = DataLoader(images, labels, batch_size=8, shuffle=False)
    np.testing.assert_array_equal(epoch_labels(loader), np.arange(30))
    np.testing.assert_array_equal(epoch_labels(loader), np.arange(30))


def test_loader_calls_augment_on_uint8_batches() -> None:
    images, labels = indexed_dataset(20)
    calls = []

    def invert(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls.append((batch.dtype, batch.shape, isinstance(rng, np.random.Generator)))
        return 255 - batch

    loader = DataLoader(images, labels, batch_size=8, augment=invert)
    for x, y in loader:
        np.testing.assert_array_equal(x, normalize(255 - images[y]))
    assert calls == [
        (np.uint8, (8, 28, 28), True),
        (np.uint8, (8, 28, 28), True),
        (np.uint8, (4, 28, 28), True),
    ]


def test_loader_rejects_bad_input() -> None:
    images, labels = indexed_dataset(10)
    with pytest.raises(ValueError, match="labels"):
        DataLoader(images, labels[:-1])
    with pytest.raises(ValueError, match="shape"):
        DataLoader(images[:, None], labels)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(images, labels, batch_size=0)
