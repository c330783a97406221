/* What the page does: live and on-demand predictions, the API's health, model selection.
 *
 * Each action changes the state through store.js and then renders it with view.js.
 */

import {
  ApiError,
  describeError,
  explainDigit,
  getHealth,
  getModels,
  predictDigit,
} from "./api.js";
import { clear, exportPNG, undo } from "./canvas.js";
import { parseExplanation } from "./explanation.js";
import { STORAGE_KEYS, save } from "./storage.js";
import {
  MODELS,
  finishRequest,
  forCurrentDrawing,
  forgetResults,
  hasInk,
  isModel,
  recordError,
  recordExplainError,
  recordExplanation,
  recordResult,
  setApiBase,
  setAvailable,
  setConnection,
  setEnlarged,
  setExplainClass,
  setExplaining,
  setScheduled,
  setSelected,
  startRequests,
  state,
  stopRequests,
} from "./store.js";
import {
  liveMode,
  render,
  renderButtons,
  renderConnecting,
  renderConnection,
  renderModels,
  renderSelection,
  showMessage,
  showsPending,
} from "./view.js";

const DEBOUNCE_MS = 250;

let liveTimer = null;
let requests = null; // the AbortController of the predictions on their way
let explaining = null; // the AbortController of the explanation on its way
let healthCheck = null; // the health check running, if any
let pollTimer = null;
let pollMs = 5000;
let offlineDelay = 1000; // doubles while the API stays down, up to pollMs

// ---------------------------------------------------------------- the drawing

function cancelLive() {
  clearTimeout(liveTimer);
  liveTimer = null;
  setScheduled(false);
}

function abortExplanation() {
  if (explaining) explaining.abort();
  explaining = null;
  setExplaining(false);
}

function abortRequests() {
  if (requests) requests.abort();
  requests = null;
  stopRequests();
  abortExplanation();
}

/** The drawing changed: answers are stale; schedule a live prediction when asked. */
export function drawingChanged({ schedule = false, moving = false } = {}) {
  renderButtons();
  cancelLive();
  if (!hasInk()) {
    abortRequests();
    forgetResults();
    render();
    return;
  }
  // Live mode predicts ~250 ms after the pointer lifts or pauses mid-stroke.
  if (schedule && liveMode()) {
    liveTimer = setTimeout(predict, DEBOUNCE_MS);
    setScheduled(true);
  }
  // Mid-stroke, the result panel is already marked pending: spare the DOM work per move.
  if (!moving || !showsPending()) render();
}

export function undoStroke() {
  if (undo()) drawingChanged({ schedule: true });
}

export function clearDrawing() {
  if (!clear()) return;
  drawingChanged();
  showMessage("");
}

export function liveToggled() {
  if (liveMode() && hasInk() && !forCurrentDrawing(state.results[state.selected])) predict();
  render();
}

// ---------------------------------------------------------------- predictions

/** The selected model always (a 503 then says why it cannot answer), then the others loaded. */
function modelsToQuery() {
  const others = MODELS.filter((m) => m !== state.selected && state.available.includes(m));
  return [state.selected, ...others];
}

async function askModel(model, { image, version, controller }) {
  const { signal } = controller;
  try {
    const preview = model === state.selected;
    const body = await predictDigit(state.apiBase, { image, model, preview, signal });
    if (signal.aborted) return;
    // Kept even when the drawing has moved on meanwhile: shown dimmed until the next answer.
    recordResult(model, body, version);
    setOnline(true);
  } catch (error) {
    if (signal.aborted || error.name === "AbortError") return;
    recordError(model, describeError(error, state.apiBase), version);
    const reachable = error instanceof ApiError;
    setOnline(reachable);
    if (!reachable) checkHealth(); // find out at once whether the whole API is down
  } finally {
    if (requests === controller) {
      finishRequest();
      render();
    }
  }
}

/** Saliency for all ten classes once the person has picked one, else for the predicted. */
function classesToExplain() {
  return state.explainClass === null ? "predicted" : "all";
}

/** Ask the selected model what it computes for the drawing (its own request, one at a time). */
async function explain(image, version) {
  abortExplanation();
  const controller = new AbortController();
  explaining = controller;
  const { signal } = controller;
  const model = state.selected;
  setExplaining(true);
  try {
    const classes = classesToExplain();
    const body = await explainDigit(state.apiBase, { image, model, classes, signal });
    if (signal.aborted) return;
    recordExplanation(model, parseExplanation(body), version);
  } catch (error) {
    if (signal.aborted || error.name === "AbortError") return;
    recordExplainError(describeError(error, state.apiBase), version);
  } finally {
    if (explaining === controller) {
      explaining = null;
      setExplaining(false);
      render();
    }
  }
}

/** Ask every loaded model about the current drawing, the selected one first; and explain it. */
export async function predict() {
  cancelLive();
  if (!hasInk()) return;
  abortRequests();
  const controller = new AbortController();
  requests = controller;
  const version = state.version;
  const image = exportPNG();
  const models = modelsToQuery();
  startRequests(models.length);
  render();

  const asked = models.map((model) => askModel(model, { image, version, controller }));
  // Mid-stroke (the pointer paused), the predictions go alone: an explanation costs the server
  // a backward pass and the page a few hundred canvases, which would stall the stroke. The
  // prediction when the pointer lifts brings it.
  if (state.pointerId === null) asked.push(explain(image, version));
  await Promise.all(asked);
  if (requests === controller) {
    requests = null;
    render();
  }
}

/** Show the maps for `digit` (null: the predicted one); ask for all ten if this one is missing. */
export function pickClass(digit) {
  setExplainClass(digit);
  const entry = forCurrentDrawing(state.explanation);
  const current = entry && entry.model === state.selected ? entry.data : null;
  const missing = digit !== null && current && !current.saliency.has(digit);
  // explain() marks its request as on its way before its first await, so render() shows it.
  if (missing) explain(exportPNG(), state.version);
  render();
}

/** Show one feature map large, or none; the same map again closes it. */
export function toggleEnlarged(layer, channel) {
  const shown = state.enlarged;
  const same = shown && shown.layer === layer && shown.channel === channel;
  setEnlarged(same || layer === null ? null : { layer, channel });
  render();
}

// ---------------------------------------------------------------- models

export function selectModel(model, { predictNow = true } = {}) {
  if (!isModel(model)) return;
  const changed = model !== state.selected;
  setSelected(model);
  save(STORAGE_KEYS.model, model);
  renderSelection(model);
  render();
  // Ask again with the new model as the primary request (it also fetches the preview).
  if (changed && predictNow && hasInk()) predict();
}

async function loadModels() {
  try {
    const list = await getModels(state.apiBase);
    if (!list) return;
    renderModels(list);
    setAvailable(list.filter((m) => m.loaded !== false).map((m) => m.name));
    render();
  } catch {
    /* /health drives the online state; /models is decoration */
  }
}

// ---------------------------------------------------------------- API status

function setOnline(online, reason = "") {
  if (state.online === online && !reason) return;
  const wasOffline = state.online === false;
  setConnection(online);
  renderConnection(online, reason);
  if (online && wasOffline) {
    showMessage("");
    loadModels();
    // Recover: ask again for a drawing that got no answer while the API was down.
    const answered = forCurrentDrawing(state.results[state.selected]);
    if (hasInk() && !answered && !state.pending) predict();
  }
}

async function runHealthCheck() {
  clearTimeout(pollTimer);
  const { online, reason, modelsLoaded } = await getHealth(state.apiBase);
  if (modelsLoaded) setAvailable(modelsLoaded);
  const first = state.online === null;
  setOnline(online, reason);
  if (first && online) loadModels();
  offlineDelay = online ? 1000 : Math.min(offlineDelay * 2, pollMs);
  pollTimer = setTimeout(checkHealth, online ? pollMs : offlineDelay);
}

/** Poll GET /health; one check at a time (a failed prediction asks for one at once). */
export function checkHealth() {
  if (!healthCheck) {
    healthCheck = runHealthCheck().finally(() => {
      healthCheck = null;
    });
  }
  return healthCheck;
}

/** Checks the API's health now, and then every `intervalMs` (sooner while it is down). */
export function startHealthChecks(intervalMs) {
  pollMs = intervalMs;
  checkHealth();
}

export function changeApiBase(base) {
  setApiBase(base);
  setConnection(null);
  renderConnecting();
  checkHealth().then(() => {
    if (state.online && hasInk()) predict();
  });
}
