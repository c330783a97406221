/* The view: the page's state rendered into the DOM. It reads `state` and never writes it. */

import {
  accuracyOf,
  barPercent,
  confidenceLevel,
  formatCount,
  paramsOf,
  percent,
  sentence,
} from "./format.js";
import { MODEL_LABELS, MODELS, forCurrentDrawing, hasInk, state } from "./store.js";
import { renderExplain } from "./explainview.js";

const NO_VALUE = "–";

function $(selector) {
  return document.querySelector(selector);
}

export const el = {
  canvas: $("[data-testid=canvas]"),
  canvasWrap: $(".canvas-wrap"),
  badge: $(".canvas-badge"),
  brush: $("[data-testid=brush-size]"),
  brushOut: $("#brush-size-value"),
  undo: $("[data-testid=undo]"),
  clear: $("[data-testid=clear]"),
  predict: $("[data-testid=predict]"),
  live: $("[data-testid=live]"),
  modelSelect: $("[data-testid=model-select]"),
  result: $("[data-testid=result]"),
  prediction: $("[data-testid=prediction]"),
  confidence: $("[data-testid=confidence]"),
  resultMeta: $("[data-testid=result-meta]"),
  preview: $("[data-testid=preview]"),
  bars: $("[data-testid=probabilities]"),
  message: $("[data-testid=message]"),
  status: $("[data-testid=api-status]"),
  statusLabel: $(".api-status-label"),
  announcer: $("#announcer"),
  settingsForm: $("#settings-form"),
  apiInput: $("[data-testid=api-base]"),
  apiReset: $("#api-reset"),
};

// What the DOM last showed, so that the pop animation and the screen reader's announcement
// play once per new answer rather than on every render.
let shownDigit = null;
let lastAnnouncement = "";

export function liveMode() {
  return el.live.checked;
}

export function showsPending() {
  return el.result.dataset.status === "pending";
}

export function buildBars() {
  const frag = document.createDocumentFragment();
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.className = "bar";
    li.dataset.digit = String(d);
    li.dataset.probability = "0";
    li.innerHTML =
      '<span class="bar-value">0%</span>' +
      '<span class="bar-track"><span class="bar-fill"></span></span>' +
      `<span class="bar-label">${d}</span>`;
    li.setAttribute("aria-label", `${d}: 0%`);
    frag.appendChild(li);
  }
  el.bars.replaceChildren(frag);
}

export function renderButtons() {
  const ink = hasInk();
  el.undo.disabled = !ink;
  el.clear.disabled = !ink;
  el.predict.disabled = !ink;
  el.canvasWrap.classList.toggle("has-ink", ink);
}

export function showMessage(text, kind = "info") {
  if (!text) {
    el.message.hidden = true;
    el.message.textContent = "";
    delete el.message.dataset.kind;
    return;
  }
  el.message.hidden = false;
  el.message.dataset.kind = kind;
  if (el.message.textContent !== text) el.message.textContent = text;
}

// ---------------------------------------------------------------- the result card

function popIn(node) {
  node.classList.remove("pop");
  void node.offsetWidth; // restart the animation
  node.classList.add("pop");
}

function timing(result) {
  return typeof result.inference_ms === "number" ? ` · ${result.inference_ms.toFixed(1)} ms` : "";
}

function renderAnswer(model, result) {
  const digit = String(result.predicted_class);
  const key = `${model}:${digit}`;
  if (el.prediction.textContent !== digit || shownDigit !== key) {
    el.prediction.textContent = digit;
    popIn(el.prediction.parentElement);
  }
  shownDigit = key;
  el.confidence.textContent = percent(result.confidence);
  el.confidence.dataset.level = confidenceLevel(result.confidence);
  el.resultMeta.textContent = `${MODEL_LABELS[model]}${timing(result)}`;
}

/** What the card says while the selected model has no answer to show. */
function waitingText(model, error) {
  if (!hasInk()) return "Draw a digit to start";
  if (state.pending) return `Asking the ${MODEL_LABELS[model]}…`;
  if (error) return "No answer";
  if (liveMode()) return "Waiting for you to pause…";
  return "Press Predict";
}

function renderNoAnswer(model, error) {
  el.prediction.textContent = NO_VALUE;
  el.confidence.textContent = NO_VALUE;
  delete el.confidence.dataset.level;
  shownDigit = null;
  el.resultMeta.textContent = waitingText(model, error);
}

function renderBars(result) {
  const probabilities = result ? result.probabilities : null;
  const predicted = result ? Number(result.predicted_class) : null;
  const items = el.bars.children;
  for (let d = 0; d < 10; d++) {
    const p = probabilities ? Number(probabilities[d]) || 0 : 0;
    const li = items[d];
    li.dataset.probability = p.toFixed(4);
    li.classList.toggle("top", d === predicted);
    li.querySelector(".bar-fill").style.transform = `scaleY(${p})`;
    li.querySelector(".bar-value").textContent = probabilities ? barPercent(p) : "";
    li.setAttribute("aria-label", `${d}: ${probabilities ? percent(p) : "no value"}`);
  }
}

/** A compact copy over the canvas, for phones where the result card is below the fold. */
function renderBadge(result) {
  el.badge.hidden = !result;
  if (!result) return;
  el.badge.querySelector(".canvas-badge-digit").textContent = String(result.predicted_class);
  el.badge.querySelector(".canvas-badge-conf").textContent = percent(result.confidence, 0);
}

/** The image the model sees. */
function renderPreview() {
  if (!state.preview) {
    el.preview.hidden = true;
    el.preview.removeAttribute("src");
    return;
  }
  if (el.preview.getAttribute("src") !== state.preview.src) el.preview.src = state.preview.src;
  el.preview.hidden = false;
}

/** A comparison card's confidence line. */
function comparisonText(model, answer, available) {
  if (answer) return percent(answer.confidence);
  if (!available) return "not loaded";
  if (forCurrentDrawing(state.errors[model])) return "error";
  return NO_VALUE;
}

/** Both models, side by side; `result` is the selected model's answer. */
function renderComparison(result) {
  for (const model of MODELS) {
    const item = document.querySelector(`.compare-item[data-model="${model}"]`);
    const answer = state.results[model] ? state.results[model].body : null;
    const available = state.available.includes(model);
    const agree = Boolean(answer && result && answer.predicted_class === result.predicted_class);
    item.setAttribute("aria-pressed", String(model === state.selected));
    item.classList.toggle("unavailable", !available);
    item.querySelector(".compare-digit").textContent = answer
      ? String(answer.predicted_class)
      : NO_VALUE;
    item.querySelector(".compare-conf").textContent = comparisonText(model, answer, available);
    const meter = item.querySelector(".compare-meter > span");
    meter.style.transform = `scaleX(${answer ? answer.confidence : 0})`;
    item.dataset.agree = String(agree);
  }
}

/**
 * data-status, for tests and assistive technology: empty | pending (a request or a live
 * prediction is on its way) | done | error | stale (live prediction off and the drawing changed
 * since the last answer).
 */
function resultStatus(fresh, error) {
  if (!hasInk()) return "empty";
  if (state.pending > 0 || state.scheduled || state.pointerId !== null) return "pending";
  if (fresh) return "done";
  if (error) return "error";
  return "stale";
}

/** The selected model's error first, then the other's; an offline message stays up. */
function renderMessages(model) {
  const errors = [model, ...MODELS.filter((m) => m !== model)]
    .map((m) => forCurrentDrawing(state.errors[m]))
    .filter(Boolean);
  if (hasInk() && errors.length && state.pending === 0) {
    const first = errors[0];
    showMessage(first.text, first.kind === "refused" ? "warning" : "error");
  } else if (!hasInk() || (state.pending === 0 && !errors.length)) {
    if (state.online !== false) showMessage("");
  }
}

function announce(result, model) {
  let text = "";
  if (result && el.result.dataset.status === "done") {
    const confidence = percent(result.confidence, 0);
    text = `${MODEL_LABELS[model]} predicts ${result.predicted_class}, ${confidence} confident.`;
  }
  if (text && text !== lastAnnouncement) {
    lastAnnouncement = text;
    el.announcer.textContent = text;
  } else if (!hasInk()) {
    lastAnnouncement = "";
  }
}

export function render() {
  const model = state.selected;
  const entry = state.results[model];
  const result = entry ? entry.body : null;
  const fresh = forCurrentDrawing(entry);
  const error = forCurrentDrawing(state.errors[model]);
  el.result.dataset.model = model;
  el.result.classList.toggle("is-stale", Boolean(result) && !fresh);
  el.result.classList.toggle("no-result", !result);
  el.result.classList.toggle("is-busy", state.pending > 0);

  if (result) renderAnswer(model, result);
  else renderNoAnswer(model, error);
  renderBars(result);
  renderBadge(result);
  renderPreview();
  renderComparison(result);
  el.result.dataset.status = resultStatus(fresh, error);
  renderMessages(model);
  announce(result, model);
  renderExplain();
}

// ---------------------------------------------------------------- models

export function renderSelection(model) {
  const radio = el.modelSelect.querySelector(`input[value="${model}"]`);
  if (radio && !radio.checked) radio.checked = true;
  for (const option of el.modelSelect.querySelectorAll(".model-option")) {
    option.classList.toggle("selected", option.dataset.model === model);
  }
}

function line(text, className = "") {
  const span = document.createElement("span");
  if (className) span.className = className;
  span.textContent = text;
  return span;
}

/** A loaded model's test accuracy and size under its name. */
function renderSummary(meta, info) {
  const acc = accuracyOf(info);
  const nParams = paramsOf(info);
  // A no-break space keeps "test accuracy" together when a narrow card wraps the line.
  const accText = acc === null ? "test accuracy n/a" : `${acc.toFixed(2)}% test\u00a0accuracy`;
  meta.replaceChildren(line(accText, "model-accuracy"));
  if (nParams !== null) meta.append(line(`${formatCount(nParams)} parameters`));
}

/** The model options, from the server's /models list. */
export function renderModels(list) {
  for (const model of MODELS) {
    const info = list.find((x) => x.name === model);
    const meta = el.modelSelect.querySelector(`[data-accuracy-for="${model}"]`);
    const option = el.modelSelect.querySelector(`.model-option[data-model="${model}"]`);
    if (!info) {
      meta.textContent = "unknown to the server";
      option.classList.add("unavailable");
      continue;
    }
    option.classList.toggle("unavailable", info.loaded === false);
    if (info.loaded === false) {
      meta.textContent = "not loaded on the server";
      continue;
    }
    renderSummary(meta, info);
    if (info.class_name || info.class) option.title = String(info.class_name || info.class);
    option.querySelector("input").disabled = false;
  }
}

// ---------------------------------------------------------------- API status

export function renderConnecting() {
  el.status.dataset.state = "checking";
  el.statusLabel.textContent = "Connecting…";
}

function statusLabel(online, reason) {
  if (online) return "API online";
  return reason ? "API unavailable" : "API offline";
}

/** The status pill, and while offline the message that says so. */
export function renderConnection(online, reason) {
  const base = state.apiBase;
  const at = base ? ` at ${base}` : "";
  el.status.dataset.state = online ? "online" : "offline";
  el.statusLabel.textContent = statusLabel(online, reason);
  el.status.title = online
    ? `Prediction API reachable${at}`
    : `Cannot reach the prediction API${at}`;
  if (online) return;
  const text = reason
    ? `The prediction API is unavailable: ${sentence(reason)} Retrying…`
    : `The prediction API is offline${base ? ` (${base})` : ""}. Retrying…`;
  showMessage(text, "error");
}
