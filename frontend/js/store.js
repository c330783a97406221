/* The page's state, and every change to it.
 *
 * Any module may read `state`; only the functions below write it, so that each change has a
 * name. Each change to the drawing bumps `version`: an answer remembers the version it was
 * asked for, and it is current only while the drawing has not changed since.
 */

export const MODELS = ["cnn", "linear"];
export const MODEL_LABELS = { cnn: "CNN", linear: "Linear" };

export function isModel(name) {
  return Object.hasOwn(MODEL_LABELS, name);
}

export const state = {
  strokes: [], // [{ size, points: [[x, y], ...] }] in the canvas's logical coordinates
  current: null, // the stroke being drawn (also the last of `strokes`)
  pointerId: null, // the pointer drawing it
  version: 0,
  selected: "cnn", // the model whose answer is shown large
  available: MODELS.slice(), // the models the server has loaded
  results: {}, // model -> { body, version }: its latest answer, maybe for an older drawing
  errors: {}, // model -> { kind, text, version }
  preview: null, // { src, version }: the 28x28 image the selected model saw
  pending: 0, // prediction requests on their way
  explanation: null, // { model, data, version }: data as explanation.parseExplanation gives it
  explainError: null, // { kind, text, version }
  explaining: false, // an /explain request is on its way
  explainClass: null, // the class whose maps the person picked; null follows the prediction
  enlarged: null, // { layer, channel }: the feature map shown large
  scheduled: false, // a live prediction waits for the pointer to pause
  online: null, // null while the first health check runs
  apiBase: "",
};

export function hasInk() {
  return state.strokes.length > 0;
}

/** The entry (an answer or an error) when it is about the drawing as it is now, else null. */
export function forCurrentDrawing(entry) {
  return entry && entry.version === state.version ? entry : null;
}

// ---------------------------------------------------------------- the drawing

export function beginStroke(pointerId, size, point) {
  state.pointerId = pointerId;
  state.current = { size, points: [point] };
  state.strokes.push(state.current);
  state.version += 1;
}

export function extendStroke(points) {
  state.current.points.push(...points);
  state.version += 1;
}

export function endStroke() {
  state.pointerId = null;
  state.current = null;
  state.version += 1;
}

export function removeLastStroke() {
  state.strokes.pop();
  state.version += 1;
}

export function removeAllStrokes() {
  state.strokes = [];
  state.current = null;
  state.version += 1;
}

// ---------------------------------------------------------------- answers

export function startRequests(count) {
  state.pending = count;
}

export function finishRequest() {
  state.pending -= 1;
}

export function stopRequests() {
  state.pending = 0;
}

export function setScheduled(scheduled) {
  state.scheduled = scheduled;
}

export function recordResult(model, body, version) {
  state.results[model] = { body, version };
  delete state.errors[model];
  if (body && body.input_preview) state.preview = { src: body.input_preview, version };
}

/** `described` is { kind, text }, as api.describeError gives it. */
export function recordError(model, described, version) {
  state.errors[model] = { ...described, version };
  delete state.results[model];
}

export function forgetResults() {
  state.results = {};
  state.errors = {};
  state.preview = null;
  state.explanation = null;
  state.explainError = null;
}

// ---------------------------------------------------------------- the explanation

export function setExplaining(explaining) {
  state.explaining = explaining;
}

export function recordExplanation(model, data, version) {
  state.explanation = { model, data, version };
  state.explainError = null;
}

/** `described` is { kind, text }, as api.describeError gives it. */
export function recordExplainError(described, version) {
  state.explainError = { ...described, version };
}

/** A digit 0-9, or null to follow the predicted class. */
export function setExplainClass(digit) {
  state.explainClass = digit;
}

/** { layer, channel }, or null to show no map large. */
export function setEnlarged(map) {
  state.enlarged = map;
}

// ---------------------------------------------------------------- models and the server

export function setSelected(model) {
  state.selected = model;
}

/** Keeps the known models among `names`; an empty list leaves the last known set. */
export function setAvailable(names) {
  const loaded = names.filter(isModel);
  if (loaded.length) state.available = loaded;
}

export function setConnection(online) {
  state.online = online;
}

export function setApiBase(base) {
  state.apiBase = base;
}
