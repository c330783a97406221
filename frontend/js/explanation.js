/* The /explain answer as typed arrays the view can paint (its schema: /openapi.json, /docs).
 *
 * Every array arrives as nested lists or, with encoding "base64", as the base64 of its
 * little-endian float32 bytes in C order; both become one flat Float32Array here.
 */

/** Values (nested lists or base64 float32) as one flat Float32Array. */
export function toFloats(values) {
  if (typeof values !== "string") return Float32Array.from(values.flat(Infinity));
  const binary = atob(values);
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
  const floats = new Float32Array(binary.length / 4);
  for (let i = 0; i < floats.length; i++) floats[i] = view.getFloat32(i * 4, true);
  return floats;
}

/** { "<class>": values } as a Map from the digit to its flat 28x28 map. */
function perClass(maps) {
  const out = new Map();
  for (const [digit, values] of Object.entries(maps || {}))
    out.set(Number(digit), toFloats(values));
  return out;
}

/** { shape, values } as { shape, data }, or null when the answer has none. */
function tensor(entry) {
  if (!entry) return null;
  return { shape: entry.shape.map(Number), data: toFloats(entry.values) };
}

/**
 * The ink of the input in 0..1: the MNIST-normalised input rescaled between its darkest and
 * lightest pixel, so that the page needs no copy of the normalisation's mean and std.
 */
function inkOf(input) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of input) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = hi - lo || 1;
  return input.map((v) => (v - lo) / range);
}

/**
 * The parts of an /explain answer the page shows:
 *   predicted      the predicted class
 *   ink            the 28x28 input the model saw, 0 (paper) to 1 (ink)
 *   saliency       Map digit -> d logit[digit] / d input (28x28)
 *   contributions  Map digit -> weight[digit] * input (linear model; empty for the CNN)
 *   layers         the conv blocks' outputs: [{ name, shape: [c, h, w], data }]
 *   filters        the first conv layer's weights { shape: [32, 1, 3, 3], data } or null
 *   templates      the linear model's weights { shape: [10, 28, 28], data } or null
 */
export function parseExplanation(body) {
  const activations = (body.activations || []).map((a) => ({ name: a.name, ...tensor(a) }));
  return {
    predicted: Number(body.predicted_class),
    ink: inkOf(toFloats(body.input)),
    saliency: perClass(body.saliency),
    contributions: perClass(body.contributions),
    layers: activations.filter((a) => a.shape.length === 3),
    filters: tensor(body.filters),
    templates: tensor(body.templates),
  };
}
