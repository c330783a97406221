/* The drawing canvas: strokes from mouse, pen and touch (pointer events), undo and clear,
 * painting at the screen's resolution, and the PNG sent to the server.
 *
 * Strokes live in logical coordinates 0..280 whatever the canvas's size on screen. The server
 * crops, scales and centres the PNG into the 28x28 image the models read (MNIST's recipe), and
 * sends that image back as the preview.
 */

import {
  beginStroke,
  endStroke,
  extendStroke,
  hasInk,
  removeAllStrokes,
  removeLastStroke,
  state,
} from "./store.js";

export const SIZE = 280;

let canvas = null;
let ctx = null;
let scale = 1; // backing-store pixels per logical unit
let colors = { paper: "#fff", ink: "#000" };

/** 10..34 px on the 280 px canvas for sizes 1..5: MNIST-like strokes after downscaling. */
export function brushWidth(size) {
  return size * 6 + 4;
}

function themeColors() {
  const css = getComputedStyle(document.documentElement);
  return {
    paper: css.getPropertyValue("--paper").trim() || "#fff",
    ink: css.getPropertyValue("--ink").trim() || "#000",
  };
}

function setPen(c, size, color) {
  c.strokeStyle = color;
  c.fillStyle = color;
  c.lineWidth = brushWidth(size);
  c.lineCap = "round";
  c.lineJoin = "round";
}

/** One path per stroke; a single point (a tap) is a dot. */
function paintStroke(c, stroke, color) {
  const pts = stroke.points;
  setPen(c, stroke.size, color);
  c.beginPath();
  if (pts.length === 1) {
    c.arc(pts[0][0], pts[0][1], brushWidth(stroke.size) / 2, 0, Math.PI * 2);
    c.fill();
    return;
  }
  c.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) c.lineTo(pts[i][0], pts[i][1]);
  c.stroke();
}

function paintAll(c, paper, ink) {
  c.save();
  c.fillStyle = paper;
  c.fillRect(0, 0, SIZE, SIZE);
  for (const stroke of state.strokes) paintStroke(c, stroke, ink);
  c.restore();
}

export function redraw() {
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  paintAll(ctx, colors.paper, colors.ink);
}

/** Crisp on HiDPI: the backing store follows the CSS size times devicePixelRatio. */
function resizeCanvas() {
  const cssSize = canvas.clientWidth || SIZE; // the content box, without the border
  const dpr = window.devicePixelRatio || 1;
  const pixels = Math.max(1, Math.round(cssSize * dpr));
  if (canvas.width !== pixels || canvas.height !== pixels) {
    canvas.width = pixels;
    canvas.height = pixels;
  }
  scale = pixels / SIZE;
  redraw();
}

/** The drawing as a 280x280 PNG data URL, black ink on white, whatever the theme or DPR. */
export function exportPNG() {
  const off = document.createElement("canvas");
  off.width = SIZE;
  off.height = SIZE;
  paintAll(off.getContext("2d"), "#ffffff", "#000000");
  return off.toDataURL("image/png");
}

/** Removes the last stroke; false when there is none or a stroke is being drawn. */
export function undo() {
  if (!hasInk() || state.pointerId !== null) return false;
  removeLastStroke();
  redraw();
  return true;
}

/** Removes every stroke; false while a stroke is being drawn. */
export function clear() {
  if (state.pointerId !== null) return false;
  removeAllStrokes();
  redraw();
  return true;
}

function pointFromEvent(event) {
  const rect = canvas.getBoundingClientRect();
  const size = canvas.clientWidth || rect.width;
  const x = ((event.clientX - rect.left - canvas.clientLeft) / size) * SIZE;
  const y = ((event.clientY - rect.top - canvas.clientTop) / size) * SIZE;
  return [Math.min(SIZE, Math.max(0, x)), Math.min(SIZE, Math.max(0, y))];
}

function capture(pointerId) {
  try {
    canvas.setPointerCapture(pointerId);
  } catch {
    /* synthetic pointers cannot always be captured */
  }
}

/** Pointer handlers; `onChange({ schedule, moving })` follows every change to the strokes. */
function pointerHandlers(brushSize, onChange) {
  function down(event) {
    if (state.pointerId !== null) return; // one stroke at a time (ignore a second finger)
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    capture(event.pointerId);
    beginStroke(event.pointerId, brushSize(), pointFromEvent(event));
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    paintStroke(ctx, state.current, colors.ink);
    onChange({ schedule: false });
  }

  function move(event) {
    if (event.pointerId !== state.pointerId || !state.current) return;
    event.preventDefault();
    const coalesced = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const events = coalesced.length ? coalesced : [event];
    extendStroke(events.map(pointFromEvent));
    // Repaint everything (cheap at this size): one path per stroke keeps the joints smooth,
    // where painting segment by segment leaves faint ridges at each overlap.
    redraw();
    onChange({ schedule: true, moving: true });
  }

  function up(event) {
    if (event.pointerId !== state.pointerId) return;
    endStroke();
    onChange({ schedule: true });
  }

  return { down, move, up };
}

/** Draws on `element`; `brushSize()` gives the size (1..5) of a new stroke. */
export function attachCanvas(element, { brushSize, onChange }) {
  canvas = element;
  ctx = canvas.getContext("2d");
  colors = themeColors();

  const { down, move, up } = pointerHandlers(brushSize, onChange);
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("lostpointercapture", up);
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  if ("ResizeObserver" in window) new ResizeObserver(resizeCanvas).observe(canvas);
  window.addEventListener("resize", resizeCanvas);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    colors = themeColors();
    redraw();
  });
  resizeCanvas();
}
