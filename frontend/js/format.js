/* Pure helpers: numbers and server answers into the words and figures the page shows. */

export function clampInt(value, lo, hi, fallback) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
}

export function percent(p, digits = 1) {
  return `${(p * 100).toFixed(digits)}%`;
}

/** A bar's label: whole percents, with 0% and 100% only for values that round to them. */
export function barPercent(p) {
  if (p >= 0.995) return "100%";
  if (p < 0.005) return "0%";
  return `${Math.round(p * 100)}%`;
}

/** high (>= 90%), medium (>= 60%) or low: the colour of the confidence figure. */
export function confidenceLevel(confidence) {
  if (confidence >= 0.9) return "high";
  if (confidence >= 0.6) return "medium";
  return "low";
}

/** The text with a full stop at its end, unless it already ends a sentence. */
export function sentence(text) {
  const t = String(text || "").trim();
  return t && !/[.!?]$/.test(t) ? `${t}.` : t;
}

export function formatCount(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** An API base URL without surrounding spaces or trailing slashes ("" is the page's origin). */
export function normalizeBase(url) {
  return (url || "").trim().replace(/\/+$/, "");
}

function firstNumber(values) {
  for (const value of values) {
    const n = Number(value);
    if (value !== null && value !== undefined && Number.isFinite(n)) return n;
  }
  return null;
}

/** A model's test accuracy in percent, wherever its /models entry keeps it (a fraction or %). */
export function accuracyOf(info) {
  const n = firstNumber([
    info.test_accuracy,
    info.accuracy,
    info.metrics && info.metrics.test_accuracy,
    info.metadata && info.metadata.metrics && info.metadata.metrics.test_accuracy,
  ]);
  if (n === null) return null;
  return n <= 1 ? n * 100 : n;
}

/** A model's parameter count, under whichever name its /models entry uses. */
export function paramsOf(info) {
  return firstNumber([info.parameters, info.num_parameters, info.n_parameters, info.params]);
}
