"""MNIST: read the IDX files, download and verify them, and feed mini-batches to training.

The four standard files (LeCun, Cortes and Burges) are stored in the IDX format: a big-endian
header, then raw uint8 pixels or labels in row-major order.

    magic   = 0x00 0x00 <type code> <ndim>     (type 0x08 = uint8; 2051 images, 2049 labels)
    dims    = ndim × uint32, big-endian        (images: N, 28, 28; labels: N)
    payload = prod(dims) bytes

so a file is exactly 4 + 4 * ndim + prod(dims) bytes long. `read_idx` checks every part of that
and raises `MNISTError`, naming the file, instead of returning a silently wrong array.

Where the files live: `resolve_data_dir` picks the argument, else $SCRATCHNET_DATA_DIR, else
`<repo root>/data/mnist`. `download_mnist` fetches `<mirror>/<name>.gz` for each missing file,
tries the mirrors in order ($SCRATCHNET_MNIST_MIRRORS, comma-separated, replaces the default
list; file:// URLs work), checks the MD5 of the decompressed bytes, and stores the decompressed
file (`train-images-idx3-ubyte`, no .gz) atomically: temp file in the same folder, fsync,
os.replace. Raw files cost 55 MB instead of 11 MB but load without decompression.

Training input: pixels stay uint8 in memory (47 MB for the training set) and each batch is
normalised on the fly with the usual MNIST statistics,

    x = (pixel / 255 - MNIST_MEAN) / MNIST_STD        shape (B, 1, 28, 28), float32

Run `python -m scratchnet.mnist.data [--data-dir D]` (what `make data` does) to download and verify.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import logging
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

# Keys are the fields of the MNIST dataclass; values are the file names without ".gz".
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# MD5 of the decompressed files: the published ones. The .gz wrappers differ between mirrors.
MNIST_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DATA_DIR_ENV = "SCRATCHNET_DATA_DIR"
MIRRORS_ENV = "SCRATCHNET_MNIST_MIRRORS"

_CHUNK = 1 << 20
# MNIST's largest file is 47 MB; a decompressed stream past this is not MNIST (or a gzip bomb).
_MAX_FILE_BYTES = 1 << 30
_GZIP_MAGIC = b"\x1f\x8b"


class MNISTError(ValueError):
    """A missing, truncated or corrupt MNIST file, or a download that failed on every mirror."""


# --------------------------------------------------------------------------------------------
# Reading IDX files
# --------------------------------------------------------------------------------------------


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an MNIST IDX file, gzipped (.gz or gzip magic bytes) or raw, into a uint8 array.

    The magic number must be 2051 (uint8 images, 3 dims) or 2049 (uint8 labels, 1 dim), or
    `expected_magic` if given. The header fixes the shape, and the file must hold exactly that
    many bytes: a short file, trailing bytes, a bad gzip stream or a wrong magic number raise
    `MNISTError` naming `path`. A missing file raises FileNotFoundError.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        is_gzip = path.suffix == ".gz" or raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not is_gzip:
            return _parse_idx(raw, path, expected_magic, os.fstat(raw.fileno()).st_size)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse_idx(stream, path, expected_magic, file_size=None)
        except (OSError, EOFError, zlib.error) as exc:
            raise MNISTError(f"{path}: not a valid gzip file ({exc})") from exc


def _parse_idx(
    stream: BinaryIO, path: Path, expected_magic: int | None, file_size: int | None
) -> np.ndarray:
    """Parse header and payload from `stream`; `file_size` is known for raw files only."""
    header = stream.read(4)
    if len(header) < 4:
        raise MNISTError(f"{path}: truncated IDX file ({len(header)} bytes, no complete header)")
    magic = int.from_bytes(header, "big")
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise MNISTError(
            f"{path}: bad IDX magic number {magic} (0x{magic:08x}); "
            f"expected {IDX_IMAGES_MAGIC} (images) or {IDX_LABELS_MAGIC} (labels)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise MNISTError(f"{path}: IDX magic number is {magic}, expected {expected_magic}")
    ndim = header[3]  # the low byte of the magic: 3 for images, 1 for labels

    dim_bytes = stream.read(4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise MNISTError(f"{path}: truncated IDX header (needs {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(dim_bytes, dtype=">u4"))
    size = math.prod(shape)
    expected_bytes = 4 + 4 * ndim + size
    if file_size is not None and file_size != expected_bytes:
        raise MNISTError(
            f"{path}: wrong size: header says shape {shape}, so the file should be "
            f"{expected_bytes} bytes, but it is {file_size} bytes"
        )
    if size > _MAX_FILE_BYTES:
        raise MNISTError(f"{path}: implausible IDX shape {shape} ({size} bytes)")

    data = np.empty(size, dtype=np.uint8)
    filled = _read_into(stream, data)
    if filled < size:
        raise MNISTError(
            f"{path}: truncated: header says shape {shape} ({size} data bytes), "
            f"but only {filled} follow"
        )
    if stream.read(1):
        raise MNISTError(f"{path}: wrong size: more bytes than shape {shape} needs")
    return data.reshape(shape)


def _read_into(stream: BinaryIO, out: np.ndarray) -> int:
    """Fill `out` from `stream` (which may return short reads); return the bytes read."""
    view = memoryview(out)
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


# --------------------------------------------------------------------------------------------
# Finding and downloading the files
# --------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The MNIST folder: `data_dir`, else $SCRATCHNET_DATA_DIR, else <repo root>/data/mnist."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root / "data" / "mnist"


def mirrors_from_env() -> list[str]:
    """$SCRATCHNET_MNIST_MIRRORS split on commas, or the default public mirrors when unset."""
    from_env = [m.strip() for m in os.environ.get(MIRRORS_ENV, "").split(",")]
    from_env = [m for m in from_env if m]
    return from_env or list(DEFAULT_MIRRORS)


def download_mnist(
    data_dir: str | Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    *,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """Make sure the four MNIST files are in `data_dir`, downloading the missing ones.

    A file already present is kept if its MD5 matches and downloaded again otherwise. A missing
    file is fetched as `<mirror>/<name>.gz` from each mirror in turn until one gives bytes whose
    decompressed MD5 matches; the failures are logged. `mirrors` defaults to
    $SCRATCHNET_MNIST_MIRRORS or DEFAULT_MIRRORS. `checksums` (keyed like MNIST_FILES)
    overrides the published MD5s, so tests can serve small synthetic files.

    Returns {"train_images": Path, ...} of the decompressed files. Raises MNISTError, listing
    each mirror and why it failed, when no mirror delivers a file.
    """
    directory = resolve_data_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    mirror_list = list(mirrors) if mirrors is not None else mirrors_from_env()
    expected_md5 = {**MNIST_MD5, **(checksums or {})}

    paths = {}
    for key, name in MNIST_FILES.items():
        dest = directory / name
        paths[key] = dest
        if dest.exists():
            digest = _md5_of_file(dest)
            if digest == expected_md5[key]:
                logger.info("%s: present, MD5 ok", name)
                continue
            logger.warning("%s: present but MD5 is %s, downloading it again", name, digest)
        _download_one(name, dest, expected_md5[key], mirror_list, timeout, progress)
    return paths


def _download_one(
    name: str, dest: Path, md5: str, mirrors: Sequence[str], timeout: float, progress: bool
) -> None:
    if not mirrors:
        raise MNISTError(f"{name}: no download mirrors configured (set {MIRRORS_ENV})")
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name + ".gz"
        try:
            _fetch_gzip(url, dest, md5, timeout, progress)
        except (OSError, EOFError, zlib.error, ValueError, HTTPException) as exc:
            # URLError/HTTPError/timeouts are OSErrors, a bad gzip stream is OSError, EOFError or
            # zlib.error, a checksum mismatch is MNISTError (a ValueError).
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an HTTPError holds the open error response
            reason = str(exc) or type(exc).__name__
            logger.warning("%s: mirror %s failed: %s", name, url, reason)
            failures.append(f"  {url}: {reason}")
            continue
        logger.info("%s: downloaded from %s, MD5 ok", name, url)
        return
    raise MNISTError(
        f"could not download {name} to {dest}: every mirror failed:\n" + "\n".join(failures)
    )


def _fetch_gzip(url: str, dest: Path, md5: str, timeout: float, progress: bool) -> None:
    """Stream `url`, gunzip it into a temp file beside `dest`, check the MD5, then rename."""
    request = urllib.request.Request(url, headers={"User-Agent": "scratchnet"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with _progress_bar(total, dest.name, progress) as bar, _atomic_writer(dest) as out:
            counted = _CountingReader(response, bar.update)
            digest = hashlib.md5(usedforsecurity=False)
            written = 0
            with gzip.GzipFile(fileobj=counted, mode="rb") as stream:
                while chunk := stream.read(_CHUNK):
                    written += len(chunk)
                    if written > _MAX_FILE_BYTES:
                        raise MNISTError(f"more than {_MAX_FILE_BYTES} bytes: not MNIST")
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                raise MNISTError(
                    f"checksum mismatch: MD5 of the decompressed data is "
                    f"{digest.hexdigest()}, expected {md5}"
                )


class _CountingReader:
    """A file-like wrapper that reports every chunk read (to drive a progress bar)."""

    def __init__(self, stream: BinaryIO, on_read: Callable[[int], object]) -> None:
        self._stream = stream
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._on_read(len(chunk))
        return chunk


def _progress_bar(total: int | None, desc: str, progress: bool):
    """A tqdm bar over compressed bytes; off when progress=False or stderr is not a terminal."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a `train` extra, not a core dependency
        return _NoBar()
    # disable=None lets tqdm switch itself off when stderr is not a TTY.
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=None if progress else True,
    )


class _NoBar:
    """Stands in for tqdm when it is not installed."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _atomic_writer(dest: Path) -> Iterator[BinaryIO]:
    """Yield a temp file beside `dest`; on success fsync and os.replace it, else delete it.

    Readers therefore see either the old file, the complete new one, or nothing: never a
    partial download.
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX only; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MNIST:
    """The MNIST arrays: images (N, 28, 28) uint8 and labels (N,) int64."""

    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"MNIST(train_images={self.train_images.shape}, test_images={self.test_images.shape})"
        )


def load_mnist(
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
) -> MNIST:
    """Load MNIST from `data_dir` (see resolve_data_dir), downloading it first if `download`.

    With download=True the files are MD5-verified (see download_mnist). With download=False
    the raw file or its .gz is read as is; the IDX checks still apply: images must be
    (N, 28, 28) with magic 2051, labels (N,) with magic 2049, and the counts must match.
    """
    directory = resolve_data_dir(data_dir)
    if download:
        paths = download_mnist(directory, mirrors, progress, checksums=checksums)
    else:
        paths = {key: _find_local(directory, name) for key, name in MNIST_FILES.items()}

    arrays = {}
    for split in ("train", "test"):
        images_path = paths[f"{split}_images"]
        labels_path = paths[f"{split}_labels"]
        images = read_idx(images_path, expected_magic=IDX_IMAGES_MAGIC)
        labels = read_idx(labels_path, expected_magic=IDX_LABELS_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise MNISTError(f"{images_path}: images have shape {images.shape}, not (N, 28, 28)")
        if labels.ndim != 1:
            raise MNISTError(f"{labels_path}: labels have shape {labels.shape}, not (N,)")
        if len(images) != len(labels):
            raise MNISTError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise MNISTError(f"{labels_path}: label {labels.max()} is not a digit 0-9")
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    return MNIST(**arrays)


def _find_local(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise MNISTError(
        f"{directory / name} (or .gz) not found: run `python -m scratchnet.mnist.data` or pass "
        "download=True"
    )


# --------------------------------------------------------------------------------------------
# Normalisation, split and batches
# --------------------------------------------------------------------------------------------

# uint8 -> float32 through a 256-entry table: exact, and faster than arithmetic on the batch.
_NORMALIZE_LUT = ((np.arange(256) / 255.0 - MNIST_MEAN) / MNIST_STD).astype(np.float32)


def normalize(images: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """(x / scale - MNIST_MEAN) / MNIST_STD as float32 of shape (N, 1, H, W).

    `images` holds pixel values on the 0..scale scale: uint8 (0..255), float after augmentation
    (0..255), or float prepared digits (scale 1, scratchnet.mnist.inference). Shape (N, H, W) or
    (N, 1, H, W). This is the one place where MNIST's normalisation is written.
    """
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {images.shape}")
    if images.dtype == np.uint8 and scale == 255.0:
        return _NORMALIZE_LUT[images]
    scaled = (images.astype(np.float64) / scale - MNIST_MEAN) / MNIST_STD
    return scaled.astype(np.float32)


def train_val_split(n: int, val_size: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split range(n) into disjoint (train_idx, val_idx), each sorted, by a seeded permutation.

    The default on MNIST's 60,000 training images gives 54,000 / 6,000.
    """
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must be in [0, {n}], got {val_size}")
    permutation = np.random.default_rng(seed).permutation(n)
    return np.sort(permutation[val_size:]), np.sort(permutation[:val_size])


Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class DataLoader:
    """Mini-batches (x, y): x float32 (B, 1, 28, 28) normalised, y int64 (B,).

    Each pass over the loader is one epoch. The order of epoch e depends only on (seed, e), so
    `set_epoch(e)` before iterating reproduces epoch e exactly, for instance when resuming a
    run. Iterating advances the epoch counter by one. `augment(images_uint8, rng)`, if given,
    transforms each batch before normalisation, with a generator also seeded by (seed, e).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        augment: Augment | None = None,
    ) -> None:
        if images.ndim != 3:
            raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch `epoch` (its order and augmentations)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.images) // self.batch_size
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        shuffle_seed, augment_seed = np.random.SeedSequence([self.seed, epoch]).spawn(2)
        n = len(self.images)
        shuffle_rng = np.random.default_rng(shuffle_seed)
        order = shuffle_rng.permutation(n) if self.shuffle else np.arange(n)
        augment_rng = np.random.default_rng(augment_seed)

        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if self.augment is not None:
                images = self.augment(images, augment_rng)
            yield normalize(images), self.labels[index].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Command line: python -m scratchnet.mnist.data
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Download (if needed) and verify MNIST, printing what was done."""
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.mnist.data", description="Download and verify MNIST."
    )
    parser.add_argument(
        "--data-dir", default=None, help=f"default: ${DATA_DIR_ENV} or <repo>/data/mnist"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    directory = resolve_data_dir(args.data_dir)
    print(f"MNIST folder: {directory}")
    try:
        download_mnist(directory, progress=not args.no_progress)
        mnist = load_mnist(directory, download=False)
    except MNISTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"ok: {len(mnist.train_images)} training and {len(mnist.test_images)} test images, "
        "all four files verified"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
