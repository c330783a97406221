"""The models the server holds, and one prediction from image bytes to class probabilities.

Nothing here knows about HTTP: the web layer (server/app.py) turns the exceptions raised here
(ImageError subclasses from scratchnet.mnist.imageprep, UnknownModelError) into JSON error
responses.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scratchnet.checkpoint import CheckpointError
from scratchnet.mnist import explain as explanation
from scratchnet.mnist import imageprep, inference
from scratchnet.mnist.export import FORMATS as EXPORT_FORMATS
from scratchnet.mnist.models import MODELS, load_model
from scratchnet.runtime import threads

logger = logging.getLogger("server.inference")

MODEL_NAMES = tuple(MODELS)  # ("linear", "cnn"), in the order the library defines them
DEFAULT_MODEL = "cnn"


class UnknownModelError(LookupError):
    """A model name the server does not know, or knows but could not load."""

    def __init__(self, name: str, available: list[str], known: bool) -> None:
        self.name = name
        self.available = available
        self.known = known
        if known:
            message = f"model {name!r} is not loaded on this server"
        else:
            message = f"unknown model {name!r}"
        listing = ", ".join(available) if available else "none"
        super().__init__(f"{message}; available models: {listing}")


class NonFiniteOutputError(ArithmeticError):
    """A model whose scores for an image are NaN or infinite: its weights are damaged."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"model {name!r} gave non-finite scores (NaN or infinity) for this image: "
            "its checkpoint is probably damaged"
        )


@dataclass
class LoadedModel:
    name: str
    model: Any  # a scratchnet.nn.Module in eval mode: /explain, /model/{type}/info
    predictor: Any  # inference.for_inference(model): the same logits, BatchNorms folded
    metadata: dict[str, Any]
    path: Path
    parameters: int
    load_seconds: float


@dataclass
class ModelStatus:
    """What /models reports about a model, loaded or not."""

    name: str
    class_name: str
    path: Path
    loaded: bool = False
    error: str | None = None
    entry: LoadedModel | None = field(default=None, repr=False)


class ModelRegistry:
    """Loads every known model found in a folder once, and runs predictions on them.

    Forward passes are serialised by one lock: one takes about half a millisecond, and
    scratchnet's layers share one set of worker threads (a second forward pass at the same
    time would run its chunks on its own thread anyway). Image decoding and preparation, most
    of a request's work, still run concurrently.
    """

    def __init__(self, model_dir: Path, max_image_pixels: int, numba_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.max_image_pixels = max_image_pixels
        self.numba_threads = numba_threads
        self.statuses: dict[str, ModelStatus] = {
            name: ModelStatus(name, MODELS[name].__name__, self.model_dir / f"{name}.npz")
            for name in MODEL_NAMES
        }
        self._forward_lock = threading.Lock()
        self.loaded_once = False

    # -- loading ---------------------------------------------------------------------------------

    def load_all(self, warmup: bool = True) -> None:
        for status in self.statuses.values():
            self._load(status, warmup)
        if warmup:
            # The preparation's Numba loops (scratchnet.mnist.prepkernels) load from Numba's
            # cache, or compile, at their first call: here, not in the first request.
            self._prepare(_warmup_image())
        self.loaded_once = True

    def _load(self, status: ModelStatus, warmup: bool) -> None:
        if not status.path.exists():
            status.error = f"no checkpoint {status.path.name} in the model folder"
            logger.warning("model %s not loaded: %s (%s)", status.name, status.error, status.path)
            return
        start = time.perf_counter()
        try:
            model, metadata = load_model(status.path, expected=status.name)
            predictor = inference.for_inference(model)
            if warmup:
                for net in (predictor, model):
                    self._forward(net, np.zeros((1, 1, 28, 28), dtype=np.float32))
        except (CheckpointError, OSError, ValueError) as exc:
            # /models shows this message to clients: without the server's folders in it.
            reason = str(exc).replace(f"{status.path.parent}{os.sep}", "")
            status.error = f"checkpoint {status.path.name} could not be loaded: {reason}"
            logger.error("model %s not loaded: %s", status.name, exc)
            return
        except Exception:
            # A bug in the model code must not keep the other model from serving. The client
            # sees no exception class or internal message: the log has the traceback.
            status.error = (
                f"checkpoint {status.path.name} could not be loaded: the model could not be "
                "built from it (the server log has the details)"
            )
            logger.exception("model %s not loaded", status.name)
            return
        elapsed = time.perf_counter() - start
        status.entry = LoadedModel(
            name=status.name,
            model=model,
            predictor=predictor,
            metadata=metadata if isinstance(metadata, dict) else {},
            path=status.path,
            parameters=model.num_parameters(trainable_only=False),
            load_seconds=elapsed,
        )
        status.loaded = True
        status.error = None
        logger.info("model %s loaded from %s in %.3f s", status.name, status.path, elapsed)

    # -- lookup ----------------------------------------------------------------------------------

    @property
    def loaded_names(self) -> list[str]:
        return [name for name, status in self.statuses.items() if status.loaded]

    def get(self, name: str) -> LoadedModel:
        status = self.statuses.get(name)
        if status is None or status.entry is None:
            raise UnknownModelError(name, self.loaded_names, known=status is not None)
        return status.entry

    # -- prediction ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _model_slot(self) -> Iterator[None]:
        """One forward pass (or explanation) at a time, on the configured number of threads.

        For one 28x28 image the layers' loops are tiny, and handing work to a second thread
        costs more than it saves: on the 2-core development machine, under load, the CNN's
        forward pass took a median 0.5 ms on one thread against 25-110 ms on two. The count
        is the calling thread's own and is restored afterwards (scratchnet.runtime.threads).
        """
        most = threads.max_num_threads()
        count = most if self.numba_threads <= 0 else min(self.numba_threads, most)
        with self._forward_lock, threads.num_threads(count):
            yield

    def _forward(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The logits of a normalised batch, one forward pass at a time."""
        with self._model_slot():
            return inference.logits(model, x)

    def _prepare(self, image: bytes | Image.Image) -> np.ndarray:
        """The 28x28 input of an image file, or an ImageError subclass from imageprep.

        `image` is the file's bytes, or the file as server.resources.DecodeBudget.open opened
        it (its header parsed, no pixel decoded yet).
        """
        decoded = imageprep.decode_image(image, max_pixels=self.max_image_pixels)
        return imageprep.prepare_image(decoded)

    def predict(
        self, image: bytes | Image.Image, model_name: str, top_k: int, preview: bool
    ) -> dict[str, Any]:
        """Decode, prepare and classify one image. Blocking: call it from a worker thread.

        Raises UnknownModelError, NonFiniteOutputError, or an ImageError subclass from
        scratchnet.mnist.imageprep (ImageDecodeError, ImageTooLargeError, NoInkError).
        """
        entry = self.get(model_name)
        img28 = self._prepare(image)
        x = inference.normalize(img28)

        start = time.perf_counter()
        logits = self._forward(entry.predictor, x)
        inference_ms = (time.perf_counter() - start) * 1000.0

        # NaN or infinite scores mean nothing, and cannot be written as JSON. Finite scores
        # give finite probabilities: softmax subtracts their maximum first.
        if not np.isfinite(logits).all():
            raise NonFiniteOutputError(entry.name)
        prediction = inference.Prediction(inference.softmax(logits[0]))
        return self._answer(entry, prediction, inference_ms, img28, top_k, preview)

    def explain(
        self,
        image: bytes | Image.Image,
        model_name: str,
        top_k: int,
        preview: bool,
        classes: explanation.Classes,
        encoding: explanation.Encoding,
    ) -> dict[str, Any]:
        """predict's answer plus what the model computed on the way (scratchnet.mnist.explain).

        Raises what predict raises. `inference_ms` times the forward and the backward pass.
        """
        entry = self.get(model_name)
        img28 = self._prepare(image)

        start = time.perf_counter()
        with self._model_slot():
            explained = explanation.explain(entry.model, img28, classes)
        inference_ms = (time.perf_counter() - start) * 1000.0

        if not explained.is_finite():
            raise NonFiniteOutputError(entry.name)
        result = self._answer(entry, explained.prediction, inference_ms, img28, top_k, preview)
        result.update(explained.to_json(encoding))
        return result

    @staticmethod
    def _answer(
        entry: LoadedModel,
        prediction: inference.Prediction,
        inference_ms: float,
        img28: np.ndarray,
        top_k: int,
        preview: bool,
    ) -> dict[str, Any]:
        """The JSON fields of /predict's answer."""
        result: dict[str, Any] = {
            "predicted_class": prediction.digit,
            "confidence": prediction.confidence,
            "top_k_predictions": [
                {"class": digit, "probability": p} for digit, p in prediction.top_k(top_k)
            ],
            "model_type": entry.name,
            "model_parameters": entry.parameters,
            "probabilities": [float(p) for p in prediction.probabilities],
            "inference_ms": round(inference_ms, 4),
        }
        if preview:
            png = imageprep.to_png_bytes(img28)
            result["input_preview"] = "data:image/png;base64," + base64.b64encode(png).decode()
        return result

    # -- description -----------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """One entry of GET /models. `type` is the published API's name for `class_name`."""
        status = self.statuses[name]
        entry = status.entry
        metrics = _section(entry.metadata, "metrics") if entry else {}
        return {
            "name": name,
            "type": status.class_name,
            "class_name": status.class_name,
            "loaded": status.loaded,
            "parameters": entry.parameters if entry else None,
            "test_accuracy": _optional_float(metrics.get("test_accuracy")),
            "load_seconds": round(entry.load_seconds, 4) if entry else None,
            "error": status.error,
        }

    def info(self, name: str) -> dict[str, Any]:
        """GET /model/{name}/info: the layers, their parameter shapes, accuracy, training config.

        `model_type` and `trainable_parameters` are the published API's fields; `name` and
        `total_parameters` (every parameter, trainable or frozen) are ours.
        """
        entry = self.get(name)
        layers = []
        for layer_name, module in entry.model.named_modules():
            if not layer_name or any(True for _ in module.children()):
                continue  # the model itself and containers: their leaves are listed
            shapes = {
                param_name: list(param.shape)
                for param_name, param in module.named_parameters(recurse=False)
            }
            buffers = {
                buf_name: list(np.shape(buf))
                for buf_name, buf in module.named_buffers(recurse=False)
            }
            layers.append(
                {
                    "name": layer_name,
                    "type": type(module).__name__,
                    "parameters": int(sum(int(np.prod(s)) for s in shapes.values())),
                    "parameter_shapes": shapes,
                    "buffer_shapes": buffers,
                    "description": module.extra_repr(),
                }
            )
        metrics = _section(entry.metadata, "metrics")
        architecture = _section(entry.metadata, "architecture")
        return {
            "name": entry.name,
            "model_type": entry.name,
            "class_name": type(entry.model).__name__,
            "architecture": {
                "name": architecture.get("name", entry.name),
                "kwargs": _section(architecture, "kwargs"),
            },
            "layers": layers,
            "total_parameters": entry.parameters,
            "trainable_parameters": entry.model.num_parameters(trainable_only=True),
            "total_layers": len(layers),
            "input_shape": [1, 1, 28, 28],
            "output_shape": [1, 10],
            "test_accuracy": _optional_float(metrics.get("test_accuracy")),
            "metrics": _jsonable(metrics),
            "training_config": _jsonable(_section(entry.metadata, "config")),
            "load_seconds": round(entry.load_seconds, 4),
            "export_formats": list(EXPORT_FORMATS),
        }


def _warmup_image() -> Image.Image:
    """A small picture of a bar, dark on light: the uploads' path through the preparation
    (encoding it as a PNG to decode it again would warm nothing of ours)."""
    image = Image.new("L", (28, 28), 255)
    image.paste(0, (12, 4, 16, 24))
    return image


def _section(metadata: dict[str, Any], key: str) -> dict[str, Any]:
    value = metadata.get(key)
    return value if isinstance(value, dict) else {}


def _optional_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """Checkpoint metadata is JSON already, but NaN/inf are not valid JSON: make them null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
