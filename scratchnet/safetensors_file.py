"""A state_dict and its metadata as one .safetensors file, read with a checkpoint's checks.

A .safetensors file is an 8-byte little-endian header length, a JSON header, then the raw
tensor bytes. scratchnet writes

    header["conv1.weight"] = {"dtype": "F32", "shape": [32, 1, 3, 3], "data_offsets": [...]}
                              one entry per state_dict key, which are PyTorch's keys
    header["__metadata__"] = {"format": "pt", "scratchnet": the metadata as JSON}
                              (the format allows string values only; "format": "pt" is what
                              Hugging Face's loaders look for)

so `safetensors.torch.load_file(path)` gives a dict that a torch twin loads with
load_state_dict(strict=True). SafetensorsFile reads one back with the interface of
scratchnet.checkpoint.CheckpointFile, so that scratchnet.mnist.models.load_model opens either
with the same checks: a regular file of bounded size, bounded JSON, keys, shapes and dtypes
checked from the header before any tensor is decoded, finite floats. The format cannot hold
Python objects: nothing is ever unpickled. The `safetensors` package (the `export` extra) is
imported only when a file is written or decoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scratchnet.checkpoint import (
    MAX_FILE_BYTES,
    MAX_JSON_BYTES,
    CheckpointError,
    fit_problem,
    open_regular_file,
    parse_json,
)

METADATA_KEY = "scratchnet"

# safetensors' dtype codes for the dtypes a state_dict holds.
DTYPES = {
    "F16": np.dtype(np.float16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16),
    "I32": np.dtype(np.int32),
    "I64": np.dtype(np.int64),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}


def safetensors_bytes(state_dict: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> bytes:
    """The bytes of a .safetensors file of state_dict and metadata (see the module docstring).

    A checkpoint's "format" entry is left out: it names the .npz container, not this one.
    """
    from safetensors.numpy import save

    # np.asarray, not np.ascontiguousarray, which turns 0-d arrays (num_batches_tracked) 1-d.
    tensors = {key: np.asarray(value, order="C") for key, value in state_dict.items()}
    text = json.dumps({k: v for k, v in metadata.items() if k != "format"})
    return save(tensors, metadata={"format": "pt", METADATA_KEY: text})


class SafetensorsFile:
    """A .safetensors file whose header and metadata have been checked, tensors undecoded.

    with SafetensorsFile(path) as checkpoint:
        checkpoint.metadata        # the metadata written beside the state_dict
        state, _ = checkpoint.read(expected=model.state_dict())
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open_regular_file(self.path, MAX_FILE_BYTES) as f:
                self._data: bytes = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {self.path} is missing") from None
        except OSError as exc:
            raise self._error(f"cannot be opened: {exc.strerror or exc}") from None
        self.headers = self._read_header()
        strings = self.headers.pop("__metadata__", None)
        if not isinstance(strings, dict) or not isinstance(strings.get(METADATA_KEY), str):
            raise self._error(
                "has no scratchnet metadata: it was not written by `python -m scratchnet.export`"
            )
        metadata = parse_json(strings[METADATA_KEY].encode(), f"{self.path} metadata")
        if not isinstance(metadata, dict):
            raise self._error("has metadata that is not an object")
        self.metadata: dict[str, Any] = metadata

    def _error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path} {problem}")

    def _read_header(self) -> dict[str, Any]:
        if len(self._data) < 8:
            raise self._error("is not a safetensors file: it is too short")
        length = int.from_bytes(self._data[:8], "little")
        if length > min(len(self._data) - 8, MAX_JSON_BYTES):
            raise self._error(
                f"is not a safetensors file: its header length {length:,} does not fit in it"
            )
        header = parse_json(self._data[8 : 8 + length], f"{self.path} header")
        if not isinstance(header, dict):
            raise self._error("is not a safetensors file: its header is not an object")
        return header

    def check_fits(self, expected: Mapping[str, np.ndarray]) -> None:
        """Raise unless the tensors have exactly expected's keys, shapes and dtypes."""
        stored = {}
        for key, info in self.headers.items():
            if not isinstance(info, dict) or not isinstance(info.get("shape"), list):
                raise self._error(f"is not a safetensors file: bad header entry for {key}")
            name = info.get("dtype")
            dtype = DTYPES.get(name) if isinstance(name, str) else None  # a list is unhashable
            stored[key] = (tuple(info["shape"]), dtype, str(name))
        problem = fit_problem(stored, expected)
        if problem:
            raise self._error(f"does not fit the model: {problem}")

    def read(
        self, expected: Mapping[str, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], None]:
        """(state_dict, None), verified; None where a checkpoint has its optimizer state."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        if expected is not None:
            self.check_fits(expected)
        try:
            state = load(self._data)
        except SafetensorError as exc:
            raise self._error(f"is corrupt: {exc}") from None
        for key, array in state.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise self._error(f"holds non-finite values (NaN or infinity) in {key}")
        return state, None

    def close(self) -> None:
        self._data = b""

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
