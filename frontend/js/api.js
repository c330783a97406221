/* The prediction API's client: fetch calls, and their failures in words for the page. */

import { sentence } from "./format.js";

/** The server answered with an error status; `error` and `detail` come from its JSON body. */
export class ApiError extends Error {
  constructor(status, error, detail, body) {
    super(detail || error || `HTTP ${status}`);
    this.body = body;
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

/** The error body's detail (or message) as text: a structured detail is shown as JSON. */
function detailText(body) {
  const detail = body && (body.detail ?? body.message);
  if (!detail) return "";
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function fetchJSON(base, path, options = {}) {
  const response = await fetch(`${base}${path}`, {
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body && body.error, detailText(body), body);
  return body;
}

/** One model's answer for a PNG data URL; `preview` asks for the 28x28 image it saw. */
export function predictDigit(base, { image, model, preview, signal }) {
  return fetchJSON(base, "/predict/base64", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image, model_type: model, top_k: 3, preview }),
    signal,
  });
}

/**
 * What the model computes for a PNG data URL: its answer plus the input, saliency, activations
 * and weights (POST /explain/base64). `classes` is "predicted" or "all"; arrays come as base64.
 */
export function explainDigit(base, { image, model, classes, signal }) {
  return fetchJSON(base, "/explain/base64", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image, model_type: model, top_k: 3, classes, encoding: "base64" }),
    signal,
  });
}

/** The server's list of models, or null when its answer holds none. */
export async function getModels(base) {
  const body = await fetchJSON(base, "/models");
  const list = Array.isArray(body) ? body : (body && (body.models || body.data)) || [];
  return Array.isArray(list) ? list : null;
}

/** Why a failed health check failed: a 5xx means up but unable to predict, a 4xx still up. */
function healthFailure(error) {
  if (error instanceof ApiError && error.status >= 500) {
    const unhealthy = error.body && error.body.status === "unhealthy";
    const reason = unhealthy ? "the server has no model loaded" : error.detail;
    return { online: false, reason: reason || `HTTP ${error.status}`, modelsLoaded: null };
  }
  return { online: error instanceof ApiError, reason: "", modelsLoaded: null };
}

/** GET /health as { online, reason, modelsLoaded }; it never throws. */
export async function getHealth(base) {
  try {
    const body = await fetchJSON(base, "/health", {
      signal: AbortSignal.timeout(4000),
      cache: "no-store",
    });
    const modelsLoaded = body && Array.isArray(body.models_loaded) ? body.models_loaded : null;
    return { online: true, reason: "", modelsLoaded };
  } catch (error) {
    return healthFailure(error);
  }
}

/** What the server's refusal means for the person drawing. */
function describeApiError(error) {
  const detail = error.detail || error.error || "";
  if (error.status === 422 && error.error === "no_ink") {
    return {
      kind: "refused",
      text: "The server found no ink in this drawing. Draw a larger, bolder digit.",
    };
  }
  if ([400, 413, 422].includes(error.status)) {
    return { kind: "refused", text: `The server could not use this drawing: ${sentence(detail)}` };
  }
  if (error.status === 503 || error.status === 404) {
    return { kind: "refused", text: `That model is not available: ${sentence(detail)}` };
  }
  const reason = detail ? `: ${sentence(detail)}` : ".";
  return { kind: "server", text: `The server failed (${error.status})${reason}` };
}

/** A failed prediction as { kind, text }: kind is refused, server or network. */
export function describeError(error, base) {
  if (error instanceof ApiError) return describeApiError(error);
  const where = base ? ` at ${base}` : "";
  return { kind: "network", text: `Cannot reach the prediction API${where}. Retrying…` };
}
