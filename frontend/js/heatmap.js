/* Maps of numbers painted on canvases, one canvas pixel per value, in the theme's colours.
 *
 * Signed maps (gradients, weights, contributions) use a diverging scale: zero is the card's
 * colour, and a value v becomes mix(surface, red, v / scale) above zero and
 * mix(surface, blue, -v / scale) below. One scale per view (its largest |v|) keeps the two sides
 * and the maps of one view comparable. Feature maps, never negative after ReLU, fade from the
 * card's colour to the accent colour the same way.
 */

let colors = null; // the theme's colours as [r, g, b], read once per theme
let probe = null; // a 1x1 canvas that turns any CSS colour into numbers

/** A CSS colour, in any syntax the browser knows, as [r, g, b]. */
function rgb(css) {
  probe ??= document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = css;
  probe.fillRect(0, 0, 1, 1);
  return Array.from(probe.getImageData(0, 0, 1, 1).data.subarray(0, 3));
}

function themeColors() {
  const css = getComputedStyle(document.documentElement);
  const read = (name) => rgb(css.getPropertyValue(name).trim());
  return {
    zero: read("--surface"),
    positive: read("--heat-pos"),
    negative: read("--heat-neg"),
    active: read("--accent"),
    ink: read("--text"),
  };
}

/** Forget the colours: the theme changed. */
export function refreshColors() {
  colors = null;
}

function palette() {
  colors ??= themeColors();
  return colors;
}

function mix(a, b, t) {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** The largest |v|, at least a tiny positive number so that dividing by it is safe. */
export function maxAbs(data) {
  let m = 0;
  for (const v of data) m = Math.max(m, Math.abs(v));
  return m || 1e-12;
}

/** Paints a width x height canvas, pixel i in colorAt(i) = [r, g, b]. */
function paintPixels(canvas, width, height, colorAt) {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    image.data.set(colorAt(i), i * 4);
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/**
 * A signed map: red above zero, blue below, full colour at |v| = scale. With `ink` (0..1 per
 * pixel), the drawing shows faintly underneath, so the map reads as lying over the input.
 */
export function paintSigned(canvas, data, { width, height, scale = maxAbs(data), ink = null }) {
  const { zero, positive, negative, ink: inkColor } = palette();
  paintPixels(canvas, width, height, (i) => {
    const base = ink ? mix(zero, inkColor, 0.3 * ink[i]) : zero;
    const t = Math.min(1, Math.abs(data[i]) / scale);
    return mix(base, data[i] >= 0 ? positive : negative, t);
  });
}

/** A map of values >= 0: the card's colour at 0, the accent colour at `scale`. */
export function paintActivation(canvas, data, { width, height, scale }) {
  const { zero, active } = palette();
  paintPixels(canvas, width, height, (i) => mix(zero, active, Math.min(1, data[i] / scale)));
}

/** The largest value of a map, at least a tiny positive number. */
export function maxOf(data) {
  let m = 0;
  for (const v of data) m = Math.max(m, v);
  return m || 1e-12;
}
