/* The "Inside the network" card: the selected model's explanation of the current drawing.
 *
 * It reads `state` and never writes it. Painting a few hundred small canvases is the costly
 * part, so the canvases are painted again only when what they show has changed.
 */

import { maxAbs, maxOf, paintActivation, paintSigned } from "./heatmap.js";
import { MODEL_LABELS, forCurrentDrawing, hasInk, state } from "./store.js";

const SIDE = 28; // the model's input is SIDE x SIDE

function $(selector, root = document) {
  return root.querySelector(selector);
}

const card = $("[data-testid=explain]");

export const explainEl = {
  card,
  note: $("[data-testid=explain-note]", card),
  saliency: $("[data-testid=saliency]", card),
  picker: $(".class-picker", card),
  contributions: $("[data-testid=contributions]", card),
  templates: $("[data-testid=templates]", card),
  featureMaps: $("[data-testid=feature-maps]", card),
  layers: $(".layers", card),
  zoom: $("[data-testid=map-zoom]", card),
  zoomClose: $(".map-zoom-close", card),
  filters: $("[data-testid=filters]", card),
};

// What the canvases last showed; a render with the same inputs leaves them alone.
let painted = { data: null, digit: null, enlarged: null };
let layerSignature = "";

/** The next render paints every canvas again (the theme's colours changed). */
export function repaintExplain() {
  painted = { data: null, digit: null, enlarged: null };
}

// ---------------------------------------------------------------- building the DOM

/** "Top guess" then the digits 0-9: the class whose saliency and contributions are shown. */
export function buildClassPicker() {
  const buttons = [pickerButton("", "Top guess", "Show the maps for the predicted digit")];
  for (let d = 0; d < 10; d++) buttons.push(pickerButton(String(d), String(d), `Digit ${d}`));
  explainEl.picker.replaceChildren(...buttons);
}

function pickerButton(value, text, label) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "class-button";
  button.dataset.class = value;
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.setAttribute("aria-pressed", "false");
  return button;
}

/** `count` tiles in `grid`, made by makeTile(i), unless it already holds that many. */
function ensureTiles(grid, count, makeTile) {
  if (grid.children.length === count) return;
  grid.replaceChildren(...Array.from({ length: count }, (_, i) => makeTile(i)));
}

function canvasTile(label, caption, className) {
  const figure = document.createElement("figure");
  figure.className = "tile";
  const canvas = document.createElement("canvas");
  canvas.className = `map ${className}`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  figure.append(canvas);
  if (caption) {
    const text = document.createElement("figcaption");
    text.className = "tile-label";
    text.textContent = caption;
    text.setAttribute("aria-hidden", "true");
    figure.append(text);
  }
  return figure;
}

/** One feature map: a button (focusable, Enter or a click enlarges it) around its canvas. */
function mapButton(layer, channel) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "fmap";
  button.dataset.layer = layer.name;
  button.dataset.channel = String(channel);
  button.tabIndex = channel === 0 ? 0 : -1; // one tab stop per block; arrow keys move within
  button.setAttribute("aria-pressed", "false");
  button.setAttribute("aria-label", `${layer.name}, channel ${channel + 1}: enlarge`);
  const canvas = document.createElement("canvas");
  canvas.className = "map map-fmap";
  button.append(canvas);
  return button;
}

function layerBlock(layer) {
  const [channels, height, width] = layer.shape;
  const block = document.createElement("div");
  block.className = "layer";
  const title = document.createElement("h4");
  title.textContent = `${layer.name} · ${channels} maps of ${height}×${width}`;
  const grid = document.createElement("div");
  grid.className = "map-grid fmap-grid";
  grid.setAttribute("role", "group");
  grid.setAttribute("aria-label", `${layer.name}: ${channels} feature maps`);
  grid.append(...Array.from({ length: channels }, (_, c) => mapButton(layer, c)));
  block.append(title, grid);
  return block;
}

/** The blocks of feature maps, built again only when the model's layers differ. */
function ensureLayers(layers) {
  const signature = layers.map((l) => `${l.name}:${l.shape.join("x")}`).join(",");
  if (signature === layerSignature) return;
  layerSignature = signature;
  explainEl.layers.replaceChildren(...layers.map(layerBlock));
}

// ---------------------------------------------------------------- keyboard

function focusMap(buttons, index) {
  for (const button of buttons) button.tabIndex = -1;
  buttons[index].tabIndex = 0;
  buttons[index].focus();
}

/** Buttons in one row of the wrapped grid: those as high up as the first. */
function columnsOf(buttons) {
  const top = buttons[0].offsetTop;
  return Math.max(1, buttons.filter((b) => b.offsetTop === top).length);
}

/** Where an arrow, Home or End key moves the focus in a grid of maps, or null. */
function nextIndex(key, index, buttons) {
  const last = buttons.length - 1;
  const moves = {
    ArrowLeft: index - 1,
    ArrowRight: index + 1,
    ArrowUp: index - columnsOf(buttons),
    ArrowDown: index + columnsOf(buttons),
    Home: 0,
    End: last,
  };
  if (!Object.hasOwn(moves, key)) return null;
  return Math.min(last, Math.max(0, moves[key]));
}

/** Arrow keys within a block of feature maps (a roving tab stop). */
export function moveMapFocus(event) {
  const button = event.target.closest(".fmap");
  if (!button) return;
  const buttons = Array.from(button.parentElement.children);
  const index = nextIndex(event.key, buttons.indexOf(button), buttons);
  if (index === null) return;
  event.preventDefault();
  focusMap(buttons, index);
}

/** The map button that the enlarged view shows, for the focus to return to. */
export function enlargedButton() {
  const map = state.enlarged;
  if (!map) return null;
  return explainEl.layers.querySelector(
    `.fmap[data-layer="${map.layer}"][data-channel="${map.channel}"]`,
  );
}

// ---------------------------------------------------------------- painting

/** The digit whose saliency and contributions are shown. */
function shownDigit(data) {
  return state.explainClass === null ? data.predicted : state.explainClass;
}

function saliencySentence(digit, linear) {
  const text = `Red pixels would raise the score for ${digit} if they were darker; blue ones would lower it.`;
  if (!linear) return text;
  return `${text} For the linear model this map is its weight template, whatever you draw.`;
}

function paintSaliency(data, digit) {
  const view = explainEl.saliency;
  const caption = $(".explain-caption", view);
  const map = data.saliency.get(digit);
  if (!map) {
    caption.textContent = `Asking for the map of ${digit}…`;
    return;
  }
  const canvas = $("canvas", view);
  paintSigned(canvas, map, { width: SIDE, height: SIDE, ink: data.ink });
  canvas.setAttribute("aria-label", `Saliency map for ${digit} over your drawing`);
  caption.textContent = saliencySentence(digit, Boolean(data.templates));
}

function paintContributions(data, digit) {
  const view = explainEl.contributions;
  const map = data.contributions.get(digit);
  view.hidden = !map;
  if (!map) return;
  const canvas = $("canvas", view);
  paintSigned(canvas, map, { width: SIDE, height: SIDE });
  canvas.setAttribute("aria-label", `Each pixel's contribution to the score for ${digit}`);
  $(".explain-caption", view).textContent =
    `Each pixel's share of the score for ${digit}, its weight times its input: red pixels add ` +
    "to the score, blue ones take away, and with the bias they sum to it.";
}

/** Maps i = 0..n-1 of an [n, ..., h, w] tensor, one per tile, on one shared scale. */
function paintTiles(grid, tensor, { label, caption, className }) {
  const [count] = tensor.shape;
  const [height, width] = tensor.shape.slice(-2);
  ensureTiles(grid, count, (i) => canvasTile(label(i), caption(i), className));
  const scale = maxAbs(tensor.data);
  const size = height * width;
  Array.from(grid.children).forEach((tile, i) => {
    const map = tensor.data.subarray(i * size, (i + 1) * size);
    paintSigned($("canvas", tile), map, { width, height, scale });
  });
}

function paintTemplates(data, digit) {
  const grid = $(".templates-grid", explainEl.templates);
  const label = (d) => `Weight template for ${d}`;
  paintTiles(grid, data.templates, { label, caption: String, className: "map-template" });
  Array.from(grid.children).forEach((tile, d) => tile.classList.toggle("chosen", d === digit));
}

function paintFilters(data) {
  const grid = $(".filters-grid", explainEl.filters);
  const label = (i) => `Filter ${i + 1}`;
  paintTiles(grid, data.filters, { label, caption: () => "", className: "map-filter" });
}

function channelOf(layer, channel) {
  const [, height, width] = layer.shape;
  return layer.data.subarray(channel * height * width, (channel + 1) * height * width);
}

/** Every block's maps, each block on one scale (its largest value), so channels compare. */
function paintLayers(data) {
  ensureLayers(data.layers);
  data.layers.forEach((layer, i) => {
    const [, height, width] = layer.shape;
    const scale = maxOf(layer.data);
    const buttons = explainEl.layers.children[i].querySelectorAll(".fmap");
    buttons.forEach((button, c) => {
      const canvas = $("canvas", button);
      paintActivation(canvas, channelOf(layer, c), { width, height, scale });
    });
  });
}

/** The enlarged map, when the person chose one that this model has. */
function paintZoom(data) {
  const map = state.enlarged;
  const layer = map && data.layers.find((l) => l.name === map.layer);
  explainEl.zoom.hidden = !layer;
  for (const button of explainEl.layers.querySelectorAll(".fmap[aria-pressed=true]")) {
    button.setAttribute("aria-pressed", "false");
  }
  if (!layer) return;
  const [channels, height, width] = layer.shape;
  const canvas = $("canvas", explainEl.zoom);
  paintActivation(canvas, channelOf(layer, map.channel), {
    width,
    height,
    scale: maxOf(layer.data),
  });
  const title = `${layer.name}, channel ${map.channel + 1} of ${channels} (${height}×${width})`;
  canvas.setAttribute("aria-label", `Enlarged feature map: ${title}`);
  $(".map-zoom-title", explainEl.zoom).textContent = title;
  const button = enlargedButton();
  if (button) button.setAttribute("aria-pressed", "true");
}

function paintViews(data, digit) {
  paintSaliency(data, digit);
  paintContributions(data, digit);
  if (data.templates) paintTemplates(data, digit);
  if (data.filters) paintFilters(data);
  if (data.layers.length) paintLayers(data);
  paintZoom(data);
}

// ---------------------------------------------------------------- the card

function renderPicker(data) {
  for (const button of explainEl.picker.children) {
    const value = button.dataset.class;
    const pressed =
      value === "" ? state.explainClass === null : Number(value) === state.explainClass;
    button.setAttribute("aria-pressed", String(pressed));
    button.classList.toggle("is-predicted", Boolean(data) && Number(value) === data.predicted);
  }
}

/** data-status, as the result card's: empty | pending | done | error | stale. */
function explainStatus(fresh, error) {
  if (!hasInk()) return "empty";
  if (state.explaining || state.scheduled || state.pointerId !== null) return "pending";
  if (fresh) return "done";
  if (error) return "error";
  return "stale";
}

function noteText(entry, error) {
  if (!hasInk()) return "Draw a digit to see what the network computes for it.";
  if (error) return `No explanation: ${error.text}`;
  if (!entry) return `Asking the ${MODEL_LABELS[state.selected]} what it computes…`;
  return "";
}

/** The card's status, its note and the class picker; returns the explanation to show, or null. */
function renderCard() {
  const explanation = state.explanation;
  const entry = explanation && explanation.model === state.selected ? explanation : null;
  const fresh = forCurrentDrawing(entry);
  const error = forCurrentDrawing(state.explainError);
  card.dataset.model = state.selected;
  card.dataset.status = explainStatus(fresh, error);
  card.classList.toggle("is-stale", Boolean(entry) && !fresh);
  card.classList.toggle("is-busy", state.explaining);
  const note = noteText(entry, error);
  explainEl.note.hidden = !note;
  explainEl.note.textContent = note;
  const data = entry ? entry.data : null;
  renderPicker(data);
  return data;
}

/** Each view is shown when the model's explanation has its data. */
function showViews(data) {
  explainEl.saliency.hidden = !data;
  explainEl.templates.hidden = !(data && data.templates);
  explainEl.featureMaps.hidden = !(data && data.layers.length);
  explainEl.filters.hidden = !(data && data.filters);
  if (!data) explainEl.contributions.hidden = true;
}

export function renderExplain() {
  const data = renderCard();
  showViews(data);
  // Painting waits for the pointer to lift: it would stall the stroke being drawn.
  if (!data || state.pointerId !== null) return;
  const digit = shownDigit(data);
  const same = painted.data === data && painted.digit === digit;
  if (same && painted.enlarged === state.enlarged) return;
  painted = { data, digit, enlarged: state.enlarged };
  paintViews(data, digit);
}
