"""Checkpoints: a model's state_dict as .npz plus JSON metadata, never pickled.

A checkpoint `cnn.npz` has its metadata beside it in `cnn.json`:

    cnn.npz   every state_dict array under its dotted key (`conv1.weight`, ...), and, in a
              resumable checkpoint, the optimizer's arrays under `optimizer/...`
    cnn.json  {"format": ..., "architecture": {...}, "metrics": {...}, "npz_sha256": ..., ...}

The JSON records the SHA-256 of the .npz, so a pair torn apart by a crash, or a file damaged
later, is detected at load time. Both files are written atomically: to a temporary file in the
same folder, then renamed over the old one, so a crash mid-save leaves the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "scratchnet-checkpoint-v1"
OPTIMIZER_PREFIX = "optimizer/"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not fit the model."""


def metadata_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file readable by its owner only; give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _join_tree(tree: Any, arrays: Any) -> Any:
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


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, np.ndarray],
    metadata: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Save a state_dict (and optionally an optimizer state) with its metadata, atomically."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in state_dict.items()}
    meta = dict(metadata)
    meta["format"] = FORMAT
    if optimizer_state is not None:
        opt_arrays: dict[str, np.ndarray] = {}
        meta["optimizer_state"] = _split_tree(optimizer_state, OPTIMIZER_PREFIX, opt_arrays)
        arrays.update(opt_arrays)

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    meta["npz_sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(path, data)
    text = json.dumps(meta, indent=2, sort_keys=False, default=_json_default)
    atomic_write_bytes(metadata_path(path), text.encode())
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, with a clear error when it is missing or corrupt."""
    meta_file = metadata_path(path)
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint metadata {meta_file} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_file} is corrupt: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_file} is not a scratchnet checkpoint (format {FORMAT})")
    return meta


def load_checkpoint(
    path: str | Path,
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any] | None]:
    """Load (state_dict, metadata, optimizer_state or None), verifying the file's checksum."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is missing") from None
    expected = meta.get("npz_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or does not belong to {metadata_path(path).name}: "
            "its SHA-256 differs from the one recorded at save time"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from None

    state = {k: v for k, v in arrays.items() if not k.startswith(OPTIMIZER_PREFIX)}
    opt_arrays = {k: v for k, v in arrays.items() if k.startswith(OPTIMIZER_PREFIX)}
    optimizer_state = None
    if "optimizer_state" in meta:
        try:
            optimizer_state = _int_keys(_join_tree(meta.pop("optimizer_state"), opt_arrays))
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {path} lacks optimizer array {exc}") from None
    return state, meta, optimizer_state
