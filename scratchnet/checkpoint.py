"""Checkpoints: a model's state_dict and its metadata in one self-verifying .npz, never pickled.

A checkpoint `cnn.npz` is a zip archive, as np.savez writes it, with one more member:

    conv1.weight.npy, ...     every state_dict array under its dotted key, and, in a resumable
                              checkpoint, the optimizer's arrays under `optimizer/...`
    metadata.json             {"format": ..., "architecture": {...}, "metrics": {...},
                               "array_sha256": {key: SHA-256 of that member}, ...}

Why one file: a save is then one rename, so a crash at any instant leaves either the previous
checkpoint or the new one, whole. (Two files renamed one after the other leave, in between, new
arrays beside old metadata.) np.load still reads the arrays of a checkpoint.

Loading trusts nothing in the file. Before any array is read, it checks that the path is a
regular file of bounded size, that the metadata is bounded JSON of bounded depth, and, from the
.npy headers, that every array has a plain numeric dtype, that the sizes add up to a bounded
total, and, when the caller gives the model's state_dict, that keys, shapes and dtypes are the
model's. Then each array's SHA-256 must match the metadata and every float must be finite.
Every refusal is a CheckpointError with a one-line message.

`python -m scratchnet.checkpoint FILE.npz` prints a checkpoint's metadata.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import secrets
import stat
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

FORMAT = "scratchnet-checkpoint-v2"
OPTIMIZER_PREFIX = "optimizer/"
METADATA_MEMBER = "metadata.json"

# Bounds on what a checkpoint may make the loader read: far above the bundled CNN's resumable
# last.npz (about 1.3 MB, 100 members, metadata of 20 KB), far below what exhausts a machine.
MAX_FILE_BYTES = 256 * 2**20
MAX_ARRAY_BYTES = 256 * 2**20  # all arrays together, uncompressed
MAX_MEMBERS = 10_000
MAX_JSON_BYTES = 8 * 2**20
MAX_JSON_DEPTH = 64
MAX_NPY_HEADER_BYTES = 10_000
ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: no objects, no records

_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, hostile, or does not fit the model."""


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def save_step(step: str, path: Path) -> None:
    """Called after each filesystem step of a save; does nothing.

    The crash tests replace it, in a child process, to kill the save after each step in turn
    (tests/test_checkpoint_faults.py).
    """


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers see the old file or the new one, never a mix.

    The data goes to a temporary file in the same folder, reaches the disk (fsync), and is then
    renamed over path; the folder is synced last, so that the rename itself survives a power
    cut. A crash leaves at most a `.<name>.<random>.tmp` file behind, which
    remove_temporary_files deletes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_path(path)
    # 0o666 with O_CREAT: the process's umask applies, as for any other file it creates.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    save_step("create", tmp)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        save_step("write", tmp)
        os.fsync(fd)
        save_step("fsync", tmp)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    save_step("close", tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    save_step("rename", path)
    _sync_folder(path.parent)
    save_step("sync folder", path.parent)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files that saves interrupted by a crash left in folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def open_regular_file(path: str | Path, max_bytes: int) -> BinaryIO:
    """Open path for reading if it is a regular file of at most max_bytes, else raise OSError.

    Symbolic links are followed, but what they lead to must be a regular file too: a link to
    /dev/zero is refused, not read until memory runs out. O_NONBLOCK keeps open() from waiting
    forever for a writer when path is a FIFO.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            code = errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL
            raise OSError(code, f"it is {kind}, not a regular file", str(path))
        if info.st_size > max_bytes:
            raise OSError(
                errno.EFBIG, f"it is larger than the limit of {max_bytes:,} bytes", str(path)
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings set aside)."""
    brackets = np.frombuffer(_JSON_STRING.sub(b'""', text), dtype=np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(brackets, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def parse_json(data: bytes, what: str) -> Any:
    """Parse bounded JSON: at most MAX_JSON_BYTES and MAX_JSON_DEPTH levels, else CheckpointError.

    The depth is measured before parsing, so that 100,000 nested brackets are a clear error
    rather than a RecursionError, in json or in the code that walks the result.
    """
    if len(data) > MAX_JSON_BYTES:
        raise CheckpointError(f"{what} is larger than the limit of {MAX_JSON_BYTES:,} bytes")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} is not valid JSON: {exc}") from None


def read_json(path: str | Path) -> Any:
    """A bounded JSON file (see parse_json); a missing or unreadable file is a CheckpointError."""
    try:
        with open_regular_file(path, MAX_JSON_BYTES) as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_json(data, str(path))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


# ---------------------------------------------------------------------------------------------
# Optimizer state: nested dicts and lists of arrays, split into arrays and JSON
# ---------------------------------------------------------------------------------------------


def _split_tree(tree: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """Move the arrays of a nested dict/list into `arrays`, leaving {"__array__": key}."""
    if isinstance(tree, np.ndarray):
        key = prefix.rstrip("/")
        arrays[key] = tree
        return {"__array__": key}
    if isinstance(tree, dict):
        return {str(k): _split_tree(v, f"{prefix}{k}/", arrays) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_split_tree(v, f"{prefix}{i}/", arrays) for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _join_tree(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        return {k: _join_tree(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join_tree(v, arrays) for v in tree]
    return tree


def _int_keys(tree: Any) -> Any:
    """JSON turns int dict keys into strings; optimizer state is keyed by parameter index."""
    if isinstance(tree, dict):
        return {
            (int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v)
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [_int_keys(v) for v in tree]
    return tree


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------

# A fixed timestamp in every member: the same arrays and metadata give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def checkpoint_bytes(
    state_dict: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> bytes:
    """The bytes of a checkpoint file (see the module docstring)."""
    arrays = {k: np.asarray(v) for k, v in state_dict.items()}
    meta = dict(metadata)
    meta["format"] = FORMAT
    if optimizer_state is not None:
        opt_arrays: dict[str, np.ndarray] = {}
        meta["optimizer_state"] = _split_tree(optimizer_state, OPTIMIZER_PREFIX, opt_arrays)
        arrays.update(opt_arrays)

    members = {f"{key}.npy": _npy_bytes(value) for key, value in arrays.items()}
    meta["array_sha256"] = {
        key: hashlib.sha256(members[f"{key}.npy"]).hexdigest() for key in arrays
    }
    text = json.dumps(meta, indent=2, allow_nan=True, default=_json_default)
    members[METADATA_MEMBER] = text.encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data)
    return buffer.getvalue()


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Save a state_dict (and optionally an optimizer state) with its metadata, atomically."""
    path = Path(path)
    atomic_write_bytes(path, checkpoint_bytes(state_dict, metadata, optimizer_state))
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class CheckpointFile:
    """An open checkpoint whose metadata and array headers have been checked, arrays unread.

    with CheckpointFile(path) as checkpoint:
        checkpoint.metadata        # the metadata, without the file's own bookkeeping
        checkpoint.headers         # {key: (shape, dtype)} of every array, optimizer's too
        state, optimizer_state = checkpoint.read(expected=model.state_dict())
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = open_regular_file(self.path, MAX_FILE_BYTES)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {self.path} is missing") from None
        except OSError as exc:
            raise self._error(f"cannot be opened: {exc.strerror or exc}") from None
        try:
            self._open_archive()
        except BaseException:
            self._file.close()
            raise

    def _error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path} {problem}")

    def _open_archive(self) -> None:
        if not zipfile.is_zipfile(self._file):
            if self._file.seek(0) == 0 and self._file.read(6) == b"\x93NUMPY":
                raise self._error("is a bare .npy array: a checkpoint is an .npz archive")
            raise self._error("is not a checkpoint: not a zip (.npz) archive")
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            raise self._error(f"is a corrupt archive: {exc}") from None
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._error(f"has more than {MAX_MEMBERS:,} members")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise self._error("has two members of the same name")
        self._infos = {info.filename: info for info in infos}
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._error(f"uses an unsupported compression for {info.filename}")
        if METADATA_MEMBER not in self._infos:
            raise self._error(
                f"has no {METADATA_MEMBER}: it is not a scratchnet checkpoint (format {FORMAT})"
            )
        meta = parse_json(
            self._read_member(METADATA_MEMBER, MAX_JSON_BYTES), f"{self.path} metadata"
        )
        self._check_metadata(meta)
        self._offsets: dict[str, int] = {}  # where each member's data starts, after its header
        self.headers = {key: self._read_header(key) for key in self._hashes}
        total = sum(_nbytes(shape, dtype) for shape, dtype in self.headers.values())
        if total > MAX_ARRAY_BYTES:
            raise self._error(
                f"declares {total:,} bytes of arrays, more than the limit of {MAX_ARRAY_BYTES:,}"
            )

    def _read_member(self, name: str, limit: int) -> bytes:
        """A member's bytes, reading at most limit + 1 of them whatever its header declares."""
        info = self._infos[name]
        if info.file_size > limit:
            raise self._error(f"member {name} is larger than the limit of {limit:,} bytes")
        try:
            with self._zip.open(info) as member:
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise self._error(f"is corrupt: {name} cannot be read ({exc})") from None
        if len(data) > limit:
            raise self._error(f"member {name} is larger than the limit of {limit:,} bytes")
        return data

    def _check_metadata(self, meta: Any) -> None:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise self._error(f"is not a scratchnet checkpoint (format {FORMAT})")
        hashes = meta.pop("array_sha256", None)
        if not isinstance(hashes, dict) or not all(
            isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) for v in hashes.values()
        ):
            raise self._error("has no valid array_sha256 table: its integrity cannot be checked")
        members = set(self._infos) - {METADATA_MEMBER}
        listed = {f"{key}.npy" for key in hashes}
        if members != listed:
            odd = sorted(members ^ listed)
            shown = ", ".join(odd[:3]) + (", ..." if len(odd) > 3 else "")
            raise self._error(f"does not hold the arrays its metadata lists ({shown})")
        if not isinstance(meta.get("optimizer_state", {}), dict):
            raise self._error("has an optimizer_state that is not an object")
        self._hashes: dict[str, str] = hashes
        self.metadata: dict[str, Any] = meta

    def _read_header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        name = f"{key}.npy"
        try:
            with self._zip.open(self._infos[name]) as member:
                version = npy_format.read_magic(member)
                if version == (1, 0):
                    header = npy_format.read_array_header_1_0(member, MAX_NPY_HEADER_BYTES)
                elif version in ((2, 0), (3, 0)):
                    header = npy_format.read_array_header_2_0(member, MAX_NPY_HEADER_BYTES)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                offset = member.tell()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, SyntaxError) as exc:
            raise self._error(f"has a bad .npy header for {key}: {exc}") from None
        shape, fortran_order, dtype = header
        if any(n < 0 for n in shape):
            raise self._error(f"declares a negative dimension for {key}: {shape}")
        if dtype.hasobject or dtype.kind not in ARRAY_KINDS or dtype.fields is not None:
            raise self._error(f"stores {key} as {dtype}: only numeric arrays are allowed")
        if fortran_order:
            raise self._error(f"stores {key} in Fortran order: scratchnet writes C order")
        declared = offset + _nbytes(shape, dtype)
        if declared != self._infos[name].file_size:
            raise self._error(
                f"is corrupt: {key} declares shape {shape} ({declared:,} bytes with its header) "
                f"but its member holds {self._infos[name].file_size:,} bytes"
            )
        self._offsets[key] = offset
        return tuple(shape), dtype

    def check_fits(self, expected: Mapping[str, np.ndarray]) -> None:
        """Raise unless the state_dict arrays have exactly expected's keys, shapes and dtypes."""
        stored = {
            key: (shape, dtype, str(dtype))
            for key, (shape, dtype) in self.headers.items()
            if not key.startswith(OPTIMIZER_PREFIX)
        }
        problem = fit_problem(stored, expected)
        if problem:
            raise self._error(f"does not fit the model: {problem}")

    def read(
        self, expected: Mapping[str, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """(state_dict, optimizer_state or None), verified; expected: see check_fits."""
        if expected is not None:
            self.check_fits(expected)
        arrays = {key: self._read_array(key) for key in self.headers}
        state = {k: v for k, v in arrays.items() if not k.startswith(OPTIMIZER_PREFIX)}
        opt_arrays = {k: v for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)}
        optimizer_state = None
        if "optimizer_state" in self.metadata:
            try:
                tree = _join_tree(self.metadata.pop("optimizer_state"), opt_arrays)
            except (KeyError, TypeError) as exc:
                raise self._error(f"lacks optimizer array {exc}") from None
            optimizer_state = _int_keys(tree)
        return state, optimizer_state

    def _read_array(self, key: str) -> np.ndarray:
        shape, dtype = self.headers[key]
        name = f"{key}.npy"
        data = self._read_member(name, self._infos[name].file_size)
        if hashlib.sha256(data).hexdigest() != self._hashes[key]:
            raise self._error(
                f"is corrupt: the SHA-256 of {key} differs from the one recorded at save time"
            )
        offset = self._offsets[key]
        array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).copy()
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise self._error(f"holds non-finite values (NaN or infinity) in {key}")
        return array

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def __enter__(self) -> CheckpointFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fit_problem(
    stored: Mapping[str, tuple[tuple[int, ...], np.dtype | None, str]],
    expected: Mapping[str, np.ndarray],
) -> str | None:
    """Why the stored arrays do not fit a model's state_dict `expected`; None when they do.

    stored maps each key to (shape, dtype, the file's name for that dtype). They fit when the
    keys are exactly expected's and each array has the shape and dtype of expected's array.
    A dtype of None (one numpy has no match for) fits nothing. Shared by both file formats.
    """
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        return "; ".join(parts)
    for key, value in expected.items():
        shape, dtype, dtype_name = stored[key]
        want = np.asarray(value)
        if shape != want.shape or dtype != want.dtype:
            return (
                f"{key} is {dtype_name} of shape {shape}, "
                f"the model expects {want.dtype} of shape {want.shape}"
            )
    return None


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for n in shape:
        count *= int(n)
    return count * dtype.itemsize


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint, checked, without reading its arrays."""
    with CheckpointFile(path) as checkpoint:
        return checkpoint.metadata


def load_checkpoint(
    path: str | Path, expected: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any] | None]:
    """(state_dict, metadata, optimizer_state or None), verified.

    expected, a model's state_dict, makes the checkpoint's keys, shapes and dtypes its own, checked
    from the headers before any array is read.
    """
    with CheckpointFile(path) as checkpoint:
        state, optimizer_state = checkpoint.read(expected)
        return state, checkpoint.metadata, optimizer_state


def main(argv: list[str] | None = None) -> int:
    """`python -m scratchnet.checkpoint FILE.npz`: print the checkpoint's metadata as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m scratchnet.checkpoint FILE.npz", file=sys.stderr)
        return 2
    try:
        meta = read_metadata(args[0])
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
