"""The OpenAPI 3.0 schema of the API, written by hand so that it says exactly what the server does.

tests/server/test_schemathesis.py generates requests from this schema and checks every response
against it, so a change to an endpoint that is not reflected here fails the tests.
"""

from __future__ import annotations

from typing import Any

import scratchnet
from scratchnet.mnist.explain import CLASSES, ENCODINGS
from server.config import ServerConfig
from server.inference import DEFAULT_MODEL, EXPORT_FORMATS, MODEL_NAMES
from server.params import DEFAULT_TOP_K, TOP_K_MAX, TOP_K_MIN


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


def _multipart(schema: dict[str, Any]) -> dict[str, Any]:
    return {"multipart/form-data": {"schema": schema}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


# A 28x28 PNG of a hand-drawn 7: the example that /docs and schema-based tools send.
EXAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAS0lEQVR42sXSQQoAIAgEQDf6"
    "/5ftEqVW0l7Ki6COIAiVcxR536w9w5c1k8ia6tbqwvYSY5Q8ZUJSGshJCynpICM9JGSA9zJCwYe/bVcbDTk2PeiEAAAAA"
    "ElFTkSuQmCC"
)

PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
DIGIT = {"type": "integer", "minimum": 0, "maximum": 9}
SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
# How /models and /models/{name} name a model: its registry name and its class.
MODEL_IDENTITY = {
    "name": {"type": "string", "enum": list(MODEL_NAMES)},
    "class_name": {"type": "string", "example": "CNNClassifier"},
}
# The options of a prediction, sent as JSON or form fields (or, for an upload, query parameters).
PREDICT_OPTIONS = {
    "model_type": {"type": "string", "default": DEFAULT_MODEL, "enum": list(MODEL_NAMES)},
    "top_k": {
        "type": "integer",
        "minimum": TOP_K_MIN,
        "maximum": TOP_K_MAX,
        "default": DEFAULT_TOP_K,
    },
    "preview": {"type": "boolean", "default": False},
}

# What /explain adds to /predict's options.
EXPLAIN_OPTIONS = {
    "classes": {
        "type": "string",
        "enum": list(CLASSES),
        "default": "predicted",
        "description": "The saliency of the predicted class only, or of all ten.",
    },
    "encoding": {
        "type": "string",
        "enum": list(ENCODINGS),
        "default": "base64",
        "description": (
            "How the `values` of activations, filters and templates are sent: base64 of their "
            "little-endian float32 bytes in C order (the default: about 10 ms faster to encode "
            "than the 13,700 floats as JSON), or nested lists."
        ),
    },
}
MAP28 = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 28, "maxItems": 28},
    "minItems": 28,
    "maxItems": 28,
}
CLASS_MAPS = {
    "type": "object",
    "additionalProperties": MAP28,
    "description": "One 28x28 map per class, keyed by the digit ('7').",
}
ARRAY = {
    "type": "object",
    "required": ["shape", "encoding", "values"],
    "properties": {
        "name": {"type": "string"},
        "shape": SHAPE,
        "encoding": {"type": "string", "enum": list(ENCODINGS)},
        "values": {
            "oneOf": [{"type": "array"}, {"type": "string", "format": "byte"}],
            "description": "Nested lists of the shape, or a base64 string (encoding=base64).",
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every error response. `error` is a short code, `detail` a message.",
        "required": ["error", "detail"],
        "properties": {
            "error": {
                "type": "string",
                "example": "no_ink",
                "description": (
                    "bad_request, invalid_multipart, invalid_json, invalid_base64, invalid_image, "
                    "image_too_large, payload_too_large, unsupported_media_type, validation_error, "
                    "no_ink, unknown_model, model_not_loaded, not_found, method_not_allowed, "
                    "internal_error"
                ),
            },
            "detail": {"type": "string"},
            "parameter": {"type": "string", "description": "The parameter at fault (422)."},
            "available_models": {"type": "array", "items": {"type": "string"}},
        },
        "example": {
            "error": "no_ink",
            "detail": "the image has no ink: draw or upload a digit",
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "models_loaded", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
            "models_loaded": {"type": "array", "items": {"type": "string"}},
            "version": {"type": "string"},
        },
        "example": {"status": "healthy", "models_loaded": ["linear", "cnn"], "version": "0.1.0"},
    },
    "TopKPrediction": {
        "type": "object",
        "required": ["class", "probability"],
        "properties": {"class": DIGIT, "probability": PROBABILITY},
    },
    "Prediction": {
        "type": "object",
        "required": [
            "predicted_class",
            "confidence",
            "top_k_predictions",
            "model_type",
            "model_parameters",
            "probabilities",
            "inference_ms",
        ],
        "properties": {
            "predicted_class": DIGIT,
            "confidence": PROBABILITY,
            "top_k_predictions": {
                "type": "array",
                "items": _ref("TopKPrediction"),
                "minItems": TOP_K_MIN,
                "maxItems": TOP_K_MAX,
                "description": "The top_k classes, most probable first.",
            },
            "model_type": {"type": "string", "enum": list(MODEL_NAMES)},
            "model_parameters": {"type": "integer", "minimum": 0},
            "probabilities": {
                "type": "array",
                "items": PROBABILITY,
                "minItems": 10,
                "maxItems": 10,
                "description": "Softmax probability of each digit 0..9.",
            },
            "inference_ms": {
                "type": "number",
                "minimum": 0,
                "description": "Time of the model's forward pass alone, in milliseconds.",
            },
            "input_preview": {
                "type": "string",
                "pattern": "^data:image/png;base64,",
                "description": "With preview=true: the prepared 28x28 input as a PNG data URL.",
            },
        },
        "example": {
            "predicted_class": 7,
            "confidence": 0.9999994,
            "top_k_predictions": [
                {"class": 7, "probability": 0.9999994},
                {"class": 1, "probability": 3.6e-07},
                {"class": 9, "probability": 2.3e-07},
            ],
            "model_type": "cnn",
            "model_parameters": 102026,
            "probabilities": [0, 3.6e-07, 2.8e-08, 2.1e-09, 1.4e-09, 0, 0, 0.9999994, 0, 2.3e-07],
            "inference_ms": 0.52,
        },
    },
    "PredictBase64Request": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {
                "type": "string",
                "description": (
                    "Base64 of a PNG/JPEG/... file, raw (as the published client sends it) or "
                    "as a data: URL."
                ),
                "example": EXAMPLE_IMAGE,
            },
            **PREDICT_OPTIONS,
        },
        "example": {"image": EXAMPLE_IMAGE, "model_type": DEFAULT_MODEL, "top_k": 5},
    },
    "PredictUpload": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The image file."},
            **PREDICT_OPTIONS,
        },
    },
    "ExplainBase64Request": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {
                "type": "string",
                "description": "Base64 of an image file, raw or as a data: URL.",
                "example": EXAMPLE_IMAGE,
            },
            **PREDICT_OPTIONS,
            **EXPLAIN_OPTIONS,
        },
    },
    "ExplainUpload": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The image file."},
            **PREDICT_OPTIONS,
            **EXPLAIN_OPTIONS,
        },
    },
    "Explanation": {
        "allOf": [
            _ref("Prediction"),
            {
                "type": "object",
                "required": ["input", "saliency", "gradient_x_input", "activations"],
                "properties": {
                    "input": {
                        **MAP28,
                        "description": "The MNIST-normalised 28x28 input the model saw.",
                    },
                    "saliency": {
                        **CLASS_MAPS,
                        "description": (
                            "d logit[class] / d input, by scratchnet's backward(): the predicted "
                            "class, or all ten with classes=all."
                        ),
                    },
                    "gradient_x_input": {**CLASS_MAPS, "description": "saliency * input."},
                    "activations": {
                        "type": "array",
                        "items": ARRAY,
                        "description": (
                            "CNN: block1 (32x14x14), block2 (64x7x7), block3 (128x7x7, before "
                            "the final pool) and features (128 per cell of that pool: 1152 for "
                            "the bundled CNN's 3x3). Linear: none."
                        ),
                    },
                    "filters": {**ARRAY, "description": "CNN: conv1.weight (32x1x3x3)."},
                    "templates": {**ARRAY, "description": "Linear: fc.weight as 10x28x28."},
                    "contributions": {
                        **CLASS_MAPS,
                        "description": (
                            "Linear: weight[class] * input, which sum with the bias to the logit."
                        ),
                    },
                },
            },
        ],
    },
    "ModelSummary": {
        "type": "object",
        "required": ["name", "type", "class_name", "loaded", "parameters", "test_accuracy"],
        "properties": {
            **MODEL_IDENTITY,
            "type": {
                "type": "string",
                "example": "CNNClassifier",
                "description": "The published API's name for class_name.",
            },
            "loaded": {"type": "boolean"},
            "parameters": {"type": "integer", "minimum": 0, "nullable": True},
            "test_accuracy": {**PROBABILITY, "nullable": True},
            "load_seconds": {"type": "number", "minimum": 0, "nullable": True},
            "error": {
                "type": "string",
                "nullable": True,
                "description": "Why the model is not loaded.",
            },
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["models", "default_model"],
        "properties": {
            "models": {"type": "array", "items": _ref("ModelSummary")},
            "default_model": {"type": "string"},
        },
        "example": {
            "models": [
                {
                    "name": "linear",
                    "type": "LinearClassifier",
                    "class_name": "LinearClassifier",
                    "loaded": True,
                    "parameters": 7850,
                    "test_accuracy": 0.9279,
                    "load_seconds": 0.0143,
                    "error": None,
                },
                {
                    "name": "cnn",
                    "type": "CNNClassifier",
                    "class_name": "CNNClassifier",
                    "loaded": True,
                    "parameters": 102026,
                    "test_accuracy": 0.9945,
                    "load_seconds": 0.41,
                    "error": None,
                },
            ],
            "default_model": "cnn",
        },
    },
    "Layer": {
        "type": "object",
        "required": ["name", "type", "parameters", "parameter_shapes"],
        "properties": {
            "name": {"type": "string", "example": "conv1"},
            "type": {"type": "string", "example": "Conv2d"},
            "parameters": {"type": "integer", "minimum": 0},
            "parameter_shapes": {"type": "object", "additionalProperties": SHAPE},
            "buffer_shapes": {"type": "object", "additionalProperties": SHAPE},
            "description": {"type": "string"},
        },
    },
    "ModelInfo": {
        "type": "object",
        "required": [
            "name",
            "model_type",
            "class_name",
            "layers",
            "total_parameters",
            "trainable_parameters",
            "test_accuracy",
            "export_formats",
        ],
        "properties": {
            **MODEL_IDENTITY,
            "model_type": {
                "type": "string",
                "enum": list(MODEL_NAMES),
                "description": "The published API's name for name.",
            },
            "architecture": {"type": "object"},
            "layers": {"type": "array", "items": _ref("Layer")},
            "total_parameters": {"type": "integer", "minimum": 0},
            "trainable_parameters": {
                "type": "integer",
                "minimum": 0,
                "description": "The parameters with requires_grad.",
            },
            "total_layers": {"type": "integer", "minimum": 0},
            "input_shape": SHAPE,
            "output_shape": SHAPE,
            "test_accuracy": {**PROBABILITY, "nullable": True},
            "metrics": {"type": "object"},
            "training_config": {"type": "object"},
            "load_seconds": {"type": "number", "minimum": 0},
            "export_formats": {
                "type": "array",
                "items": {"type": "string", "enum": list(EXPORT_FORMATS)},
                "description": (
                    "What `python -m scratchnet.export --model NAME --format FORMAT` writes."
                ),
            },
        },
        "example": {
            "name": "linear",
            "model_type": "linear",
            "class_name": "LinearClassifier",
            "architecture": {"name": "linear", "kwargs": {"dropout_rate": 0.0}},
            "layers": [
                {
                    "name": "flatten",
                    "type": "Flatten",
                    "parameters": 0,
                    "parameter_shapes": {},
                    "buffer_shapes": {},
                    "description": "start_dim=1, end_dim=-1",
                },
                {
                    "name": "fc",
                    "type": "Linear",
                    "parameters": 7850,
                    "parameter_shapes": {"weight": [10, 784], "bias": [10]},
                    "buffer_shapes": {},
                    "description": "in_features=784, out_features=10, bias=True",
                },
            ],
            "total_parameters": 7850,
            "trainable_parameters": 7850,
            "total_layers": 2,
            "input_shape": [1, 1, 28, 28],
            "output_shape": [1, 10],
            "test_accuracy": 0.9279,
            "metrics": {"test_accuracy": 0.9279, "test_loss": 0.2646},
            "training_config": {"model": "linear", "epochs": 20, "optimizer": "adam"},
            "load_seconds": 0.0143,
            "export_formats": list(EXPORT_FORMATS),
        },
    },
}


def _form_fallback_query(name: str) -> dict[str, Any]:
    """The query parameter an upload falls back on when its form lacks the field `name`."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"Used when the form has no {name} field.",
        "schema": {**PREDICT_OPTIONS, **EXPLAIN_OPTIONS}[name],
    }


_PREDICT_ERRORS = {
    "400": _error(
        "The body is not valid multipart/JSON/base64, or the file is not an image PIL can "
        "read (not an image, truncated, unsupported format)."
    ),
    "408": _error(
        "The body did not arrive within the body timeout (request_timeout); the connection "
        "is closed."
    ),
    "413": _error(
        "The body is over the upload limit (payload_too_large), or the image's declared "
        "dimensions or decoded size are over the pixel or decoded-bytes limit "
        "(image_too_large: a decompression bomb is rejected from its header, before any "
        "pixel is decoded)."
    ),
    "415": _error("Wrong Content-Type for this endpoint."),
    "422": _error(
        "A parameter is missing or invalid (validation_error, with `parameter`), the model is "
        "unknown (validation_error, with `available_models`), or the image has no ink (no_ink)."
    ),
    "503": _error(
        "The requested model exists but is not loaded on this server (model_not_loaded), or "
        "its scores for this image are not finite: damaged weights (invalid_model_output)."
    ),
}


def _predict_200() -> dict[str, Any]:
    return {"description": "The prediction.", "content": _json(_ref("Prediction"))}


def _explain_200() -> dict[str, Any]:
    return {
        "description": "The prediction and its explanation.",
        "content": _json(_ref("Explanation")),
    }


def _image_post(
    operation_id: str,
    summary: str,
    description: str,
    content: dict[str, Any],
    ok: dict[str, Any],
    query: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A POST path item that takes an image in a body of `content` and answers `ok` (200) or
    one of _PREDICT_ERRORS; an upload's options in `query` may come as query parameters."""
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
    }
    if query is not None:
        operation["parameters"] = [_form_fallback_query(name) for name in query]
    operation["requestBody"] = {"required": True, "content": content}
    operation["responses"] = {"200": ok, **_PREDICT_ERRORS}
    return {"post": operation}


def build_openapi(config: ServerConfig | None = None) -> dict[str, Any]:
    limit = config.max_upload_bytes if config else None
    limit_text = f" Bodies over {limit} bytes are rejected with 413." if limit else ""
    health_responses = {
        "200": {"description": "At least one model is loaded.", "content": _json(_ref("Health"))},
        "503": {"description": "No model is loaded.", "content": _json(_ref("Health"))},
    }
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Health JSON for API clients, the drawing page for browsers",
                "description": (
                    "Content negotiation on Accept: a client that names text/html and prefers "
                    "it to application/json gets the HTML page; anything else (application/json, "
                    "*/*, no Accept) gets the health JSON."
                ),
                "operationId": "root",
                "responses": {
                    "200": {
                        "description": "Health JSON, or the drawing page.",
                        "content": {
                            "application/json": {"schema": _ref("Health")},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "503": health_responses["503"],
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Health check (always JSON)",
                "operationId": "health",
                "responses": health_responses,
            }
        },
        "/predict": _image_post(
            "predict",
            "Classify an uploaded image",
            "Multipart upload in field `file`. model_type, top_k and preview may be form fields "
            "or query parameters; a form field wins over a query parameter." + limit_text,
            _multipart(_ref("PredictUpload")),
            _predict_200(),
            query=PREDICT_OPTIONS,
        ),
        "/predict/base64": _image_post(
            "predictBase64",
            "Classify a base64-encoded image",
            "The image as base64 or a data: URL, in a JSON body." + limit_text,
            _json(_ref("PredictBase64Request")),
            _predict_200(),
        ),
        "/explain": _image_post(
            "explain",
            "Classify an uploaded image and show what the model computed",
            "The same upload as /predict, plus classes and encoding. The answer adds the input, "
            "the saliency maps, the activations and the filters or templates." + limit_text,
            _multipart(_ref("ExplainUpload")),
            _explain_200(),
            query={**PREDICT_OPTIONS, **EXPLAIN_OPTIONS},
        ),
        "/explain/base64": _image_post(
            "explainBase64",
            "Explain a base64-encoded image",
            "The same JSON as /predict/base64, plus classes and encoding." + limit_text,
            _json(_ref("ExplainBase64Request")),
            _explain_200(),
        ),
        "/models": {
            "get": {
                "summary": "Every known model, loaded or not",
                "operationId": "listModels",
                "responses": {
                    "200": {"description": "The models.", "content": _json(_ref("ModelList"))}
                },
            }
        },
        "/model/{model_type}/info": {
            "get": {
                "summary": "A model's layers, parameter shapes, accuracy and training config",
                "operationId": "modelInfo",
                "parameters": [
                    {
                        "name": "model_type",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": DEFAULT_MODEL,
                    }
                ],
                "responses": {
                    "200": {"description": "The model.", "content": _json(_ref("ModelInfo"))},
                    "404": _error("Unknown model: `available_models` lists the loaded ones."),
                    "503": _error("The model exists but is not loaded on this server."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This schema",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object"},
                                "example": {"openapi": "3.0.3", "info": {}, "paths": {}},
                            }
                        },
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "summary": "Swagger UI on this schema (its assets served here: no CDN)",
                "operationId": "docs",
                "responses": {"200": _html("Swagger UI")},
            }
        },
        "/docs/draw": {
            "get": {
                "summary": "A page to try every endpoint with a drawn digit",
                "operationId": "docsDraw",
                "responses": {"200": _html("The page, with a drawing pad")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format 0.0.4",
                        "content": {
                            "text/plain": {
                                "schema": {"type": "string"},
                                "example": (
                                    'scratchnet_predictions_total{model="cnn",'
                                    'predicted_class="7"} 3.0\n'
                                ),
                            }
                        },
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "scratchnet digit classifier",
            "version": scratchnet.__version__,
            "description": (
                "Classify hand-drawn digits with scratchnet's from-scratch NumPy models. Every "
                "error is JSON {error, detail}. To try the endpoints with a digit drawn by hand, "
                "see [/docs/draw](/docs/draw)."
            ),
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
