"""Move weights between scratchnet checkpoints (.npz + .json) and PyTorch state_dicts (.pt).

Both frameworks name every array the same way (`conv1.weight`, `bn1.running_mean`, ...), so a
conversion copies arrays by key and checks that they fit the model:

    load_scratchnet_checkpoint(path)           scratchnet .npz -> reference model (torch, eval)
    export_to_scratchnet(model, path, meta)    torch model or state_dict -> scratchnet .npz

and from the shell:

    python -m reference.convert to-torch runs/cnn-.../best.npz cnn.pt
    python -m reference.convert to-scratchnet cnn.pt cnn.npz

`to-torch` writes a plain state_dict with torch.save, and the scratchnet metadata (the
architecture, the metrics) beside it as cnn.pt.json. `to-scratchnet` reads the .pt with
torch.load(weights_only=True), so no pickled code ever runs; it takes the architecture from
that .pt.json when there is one, and otherwise recognises it from the state_dict's keys.
An optimizer state stored in a resumable checkpoint (last.npz) is not converted.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reference.models import MODELS, build_model
from scratchnet.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
)

# Metadata that describes one .npz file rather than the model: dropped when converting.
_FILE_KEYS = ("format", "npz_sha256", "optimizer_state", "rng_state", "scheduler_state")


def sidecar_path(path: str | Path) -> Path:
    """Where the metadata of a .pt file goes: cnn.pt -> cnn.pt.json.

    Not cnn.json, which would overwrite the metadata of a scratchnet cnn.npz in the same folder.
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


def state_dict_to_numpy(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A torch state_dict as NumPy arrays (copies), the form save_checkpoint stores."""
    return {key: value.detach().cpu().numpy().copy() for key, value in state.items()}


def state_dict_to_torch(state: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """NumPy arrays (a scratchnet state_dict) as torch tensors (copies)."""
    return {key: torch.from_numpy(np.array(value, copy=True)) for key, value in state.items()}


def load_state_into(model: nn.Module, state: Mapping[str, np.ndarray], source: Any) -> None:
    """Copy a NumPy state_dict into a torch model, every key and shape checked first.

    Values are cast to the dtype of the model's own tensors (num_batches_tracked stays int64).
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    for key, target in own.items():
        if key in state and tuple(np.shape(state[key])) != tuple(target.shape):
            problems.append(
                f"{key}: the file has shape {tuple(np.shape(state[key]))}, "
                f"the model expects {tuple(target.shape)}"
            )
    if problems:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    converted = {
        key: torch.from_numpy(np.array(state[key], copy=True)).to(own[key].dtype) for key in own
    }
    model.load_state_dict(converted, strict=True)


def model_name_of(model: nn.Module) -> str:
    """ "linear" or "cnn" for a reference model."""
    for name, cls in MODELS.items():
        if isinstance(model, cls):
            return name
    raise TypeError(f"{type(model).__name__} is not one of the reference models")


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """The "architecture" entry of scratchnet's checkpoint metadata, for a reference model."""
    name = model_name_of(model)
    kwargs: dict[str, Any] = {"dropout_rate": model.dropout_rate}
    if getattr(model, "pool_size", 1) != 1:
        kwargs["pool_size"] = model.pool_size
    return {
        "name": name,
        "class": MODELS[name].__name__,
        "kwargs": kwargs,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def guess_architecture(keys: Sequence[str]) -> str:
    """Recognise the model from a state_dict's keys: "cnn" has conv1, "linear" has fc."""
    for name, cls in MODELS.items():
        if set(keys) == set(cls().state_dict()):
            return name
    shown = ", ".join(list(keys)[:6]) + (", ..." if len(keys) > 6 else "")
    raise CheckpointError(
        f"the state_dict ({shown}) is neither a LinearClassifier nor a CNNClassifier"
    )


def options_of(name: str, state: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The constructor options a bare state_dict's shapes tell: the CNN's pool_size K, from
    fc1's 128 * K * K inputs (none when that is not a square, and the shapes are refused)."""
    if name != "cnn" or "fc1.weight" not in state:
        return {}
    cells = state["fc1.weight"].shape[1] // 128
    side = math.isqrt(cells)
    return {"pool_size": side} if side > 1 and side * side == cells else {}


# ---------------------------------------------------------------------------------------------
# scratchnet -> torch
# ---------------------------------------------------------------------------------------------


def load_scratchnet_checkpoint(path: str | Path) -> nn.Module:
    """Build the reference model a scratchnet checkpoint describes, with its weights, in eval."""
    state, meta, _ = load_checkpoint(path)
    architecture = meta.get("architecture") or {}
    if architecture.get("name") not in MODELS:
        raise CheckpointError(
            f"checkpoint {path} names an unknown architecture {architecture.get('name')!r}"
        )
    try:
        model = build_model(architecture["name"], **architecture.get("kwargs", {}))
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path} has bad architecture options: {exc}") from None
    load_state_into(model, state, path)
    return model.eval()


def to_torch(src: str | Path, dst: str | Path) -> Path:
    """scratchnet checkpoint SRC -> torch state_dict DST (.pt), with the metadata beside it."""
    src, dst = Path(src), Path(dst)
    model = load_scratchnet_checkpoint(src)
    _, meta, _ = load_checkpoint(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dst)
    kept = {key: value for key, value in meta.items() if key not in _FILE_KEYS}
    kept["converted_from"] = str(src)
    atomic_write_bytes(sidecar_path(dst), json.dumps(kept, indent=2).encode())
    return dst


# ---------------------------------------------------------------------------------------------
# torch -> scratchnet
# ---------------------------------------------------------------------------------------------


def export_to_scratchnet(
    model: nn.Module | Mapping[str, torch.Tensor],
    path: str | Path,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a reference model (or its state_dict) as a scratchnet checkpoint (.npz + .json).

    metadata["architecture"] is filled in when missing: from the model, or for a bare
    state_dict from its keys (with the model's default options). The arrays are checked
    against scratchnet's own model before anything is written, so the file always loads with
    scratchnet.mnist.models.load_model.
    """
    from scratchnet.mnist.models import build_model as build_scratchnet_model

    meta = dict(metadata or {})
    if isinstance(model, nn.Module):
        state = state_dict_to_numpy(model.state_dict())
        meta.setdefault("architecture", architecture_of(model))
    else:
        state = state_dict_to_numpy(model)
        if "architecture" not in meta:
            name = guess_architecture(list(state))
            meta["architecture"] = architecture_of(build_model(name, **options_of(name, state)))

    arch = meta["architecture"]
    if arch.get("name") not in MODELS:
        raise CheckpointError(f"unknown architecture {arch.get('name')!r} in the metadata")
    try:
        target = build_scratchnet_model(arch["name"], **arch.get("kwargs", {}))
        target.load_state_dict(state)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"the weights do not fit scratchnet's {arch['name']}: {exc}"
        ) from None
    meta.setdefault("framework", "torch")
    return save_checkpoint(path, state, meta)


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict saved with torch.save, loaded with weights_only=True (no pickled code).

    A dict that wraps the state_dict under "state_dict" or "model_state_dict" is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a torch state_dict file: it is not the zip archive that torch.save "
            "writes (another format, or a damaged file)"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a torch state_dict file: it holds pickled objects other than "
            "tensors (a whole nn.Module?), which weights_only=True refuses to run; save "
            "model.state_dict() instead"
        ) from None
    except Exception as exc:  # a damaged archive: zip, storage or unpickling errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a torch state_dict file: {reason}") from None
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model_state_dict"):
            if isinstance(loaded.get(wrapper), Mapping):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}, not a state_dict (a dict of tensors)"
        )
    not_tensors = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: entries {not_tensors[:5]} are not tensors")
    return dict(loaded)


def to_scratchnet(src: str | Path, dst: str | Path) -> Path:
    """torch state_dict SRC (.pt) -> scratchnet checkpoint DST (.npz + .json)."""
    src = Path(src)
    state = read_torch_state_dict(src)
    meta: dict[str, Any] = {}
    sidecar = sidecar_path(src)
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{sidecar} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{sidecar} does not hold a JSON object")
    meta = {key: value for key, value in meta.items() if key not in _FILE_KEYS}
    meta["converted_from"] = str(src)
    return export_to_scratchnet(state, dst, meta)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference.convert",
        description="Convert model weights between scratchnet checkpoints (.npz with its .json) "
        "and PyTorch state_dicts (.pt).",
    )
    sub = parser.add_subparsers(dest="direction", required=True)
    forward = sub.add_parser("to-torch", help="scratchnet .npz -> torch .pt state_dict")
    forward.add_argument("src", type=Path, help="scratchnet checkpoint (.npz, .json beside it)")
    forward.add_argument("dst", type=Path, help="torch state_dict to write (.pt)")
    backward = sub.add_parser("to-scratchnet", help="torch .pt state_dict -> scratchnet .npz")
    backward.add_argument("src", type=Path, help="torch state_dict (.pt)")
    backward.add_argument("dst", type=Path, help="scratchnet checkpoint to write (.npz)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    convert = to_torch if args.direction == "to-torch" else to_scratchnet
    try:
        written = convert(args.src, args.dst)
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
