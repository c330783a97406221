/* scratchnet drawing page: plain JavaScript modules, no framework, no build step.
 *
 * Draw on a 280x280 canvas (mouse, pen, touch via pointer events); the drawing is sent as a PNG
 * (black ink on white) to POST /predict/base64 for both models; the selected model's answer is
 * shown large with a bar chart of the ten probabilities, the other model's beside it.
 *
 * This module wires the page's controls to the controller; the modules beside it are the
 * canvas, the API client, the state (store), the view and the controller.
 */

import { attachCanvas } from "./canvas.js";
import {
  changeApiBase,
  checkHealth,
  clearDrawing,
  drawingChanged,
  liveToggled,
  pickClass,
  predict,
  selectModel,
  startHealthChecks,
  toggleEnlarged,
  undoStroke,
} from "./controller.js";
import {
  buildClassPicker,
  enlargedButton,
  explainEl,
  moveMapFocus,
  repaintExplain,
} from "./explainview.js";
import { refreshColors } from "./heatmap.js";
import { clampInt, normalizeBase } from "./format.js";
import { STORAGE_KEYS, load, save } from "./storage.js";
import { hasInk, isModel, setApiBase } from "./store.js";
import { buildBars, el, render, renderButtons } from "./view.js";

const params = new URLSearchParams(location.search);
const POLL_MS = clampInt(params.get("poll"), 250, 60000, 5000);

function initBrush() {
  const saved = clampInt(load(STORAGE_KEYS.brush), 1, 5, 3);
  el.brush.value = String(saved);
  el.brushOut.textContent = String(saved);
  el.brush.addEventListener("input", () => {
    el.brushOut.textContent = el.brush.value;
    save(STORAGE_KEYS.brush, el.brush.value);
  });
}

function initSettings() {
  // The API base URL: ?api=... for this visit, else the saved setting, else "" (the page's own
  // origin: modules do not load from file://, so the page always comes from a server).
  const base = normalizeBase(params.get("api") || load(STORAGE_KEYS.api) || "");
  setApiBase(base);
  el.apiInput.value = base;
  el.settingsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = normalizeBase(el.apiInput.value);
    save(STORAGE_KEYS.api, typed);
    changeApiBase(typed);
  });
  el.apiReset.addEventListener("click", () => {
    save(STORAGE_KEYS.api, null);
    el.apiInput.value = "";
    changeApiBase("");
  });
}

function initControls() {
  el.undo.addEventListener("click", undoStroke);
  el.clear.addEventListener("click", clearDrawing);
  el.predict.addEventListener("click", predict);
  el.live.addEventListener("change", liveToggled);
  el.modelSelect.addEventListener("change", (event) => {
    if (event.target.name === "model") selectModel(event.target.value);
  });
  for (const item of document.querySelectorAll(".compare-item")) {
    item.addEventListener("click", () => selectModel(item.dataset.model));
  }
}

function initExplain() {
  buildClassPicker();
  explainEl.picker.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button) pickClass(button.dataset.class === "" ? null : Number(button.dataset.class));
  });
  explainEl.layers.addEventListener("click", (event) => {
    const button = event.target.closest(".fmap");
    if (button) toggleEnlarged(button.dataset.layer, Number(button.dataset.channel));
  });
  explainEl.layers.addEventListener("keydown", moveMapFocus);
  explainEl.zoomClose.addEventListener("click", () => {
    const button = enlargedButton();
    toggleEnlarged(null, null);
    if (button) button.focus(); // back where the person was
  });
  // The maps are painted in the theme's colours: paint them again when it changes.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    refreshColors();
    repaintExplain();
    render();
  });
}

/** A text field keeps its own undo and Escape. */
function isTyping(target) {
  return target && target.tagName === "INPUT" && /^(text|url|search)$/.test(target.type);
}

function isUndoShortcut(event) {
  return (event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z";
}

function onKeyDown(event) {
  const target = event.target;
  if (isTyping(target)) return;
  if (isUndoShortcut(event)) {
    event.preventDefault();
    undoStroke();
  } else if (event.key === "Escape" && hasInk()) {
    clearDrawing();
  } else if (event.key === "Enter" && target === document.body && hasInk()) {
    predict();
  }
}

function init() {
  buildBars();
  initBrush();
  attachCanvas(el.canvas, { brushSize: () => Number(el.brush.value), onChange: drawingChanged });
  initControls();
  initExplain();
  document.addEventListener("keydown", onKeyDown);
  initSettings();

  const savedModel = load(STORAGE_KEYS.model);
  selectModel(isModel(savedModel) ? savedModel : "cnn", { predictNow: false });
  renderButtons();
  render();
  startHealthChecks(POLL_MS);
  window.addEventListener("online", checkHealth);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") checkHealth();
  });
}

init();
