/* scratchnet drawing page: plain JavaScript, no framework, no build step.
 *
 * Draw on a 280x280 canvas (mouse, pen, touch via pointer events); the drawing is sent as a PNG
 * (black ink on white) to POST /predict/base64 for both models; the selected model's answer is
 * shown large with a bar chart of the ten probabilities, the other model's beside it.
 */
(() => {
  "use strict";

  const SIZE = 280; // logical canvas size: stroke coordinates live in 0..280
  const DEBOUNCE_MS = 250;
  const MODELS = ["cnn", "linear"];
  const MODEL_LABELS = { cnn: "CNN", linear: "Linear" };
  const STORAGE = { api: "scratchnet.api", model: "scratchnet.model", brush: "scratchnet.brush" };

  const params = new URLSearchParams(location.search);
  const POLL_MS = clampInt(params.get("poll"), 250, 60000, 5000);

  // ---------------------------------------------------------------- helpers

  function clampInt(value, lo, hi, fallback) {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
  }

  function $(selector) {
    return document.querySelector(selector);
  }

  function storageGet(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null || value === "") localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch {
      /* private mode: settings just don't persist */
    }
  }

  function brushWidth(size) {
    return size * 6 + 4; // 10..34 px on the 280 px canvas: MNIST-like strokes after downscaling
  }

  function percent(p, digits = 1) {
    return `${(p * 100).toFixed(digits)}%`;
  }

  function normalizeBase(url) {
    return (url || "").trim().replace(/\/+$/, "");
  }

  // ---------------------------------------------------------------- elements

  const el = {
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
  const ctx = el.canvas.getContext("2d");

  // ---------------------------------------------------------------- state

  const state = {
    strokes: [], // [{ size, points: [[x, y], ...] }] in logical coordinates
    current: null, // the stroke being drawn
    pointerId: null,
    version: 0, // bumped on every change to the drawing
    selected: MODEL_LABELS[storageGet(STORAGE.model)] ? storageGet(STORAGE.model) : "cnn",
    available: MODELS.slice(), // models the server has loaded
    results: {}, // model -> { body, version }: the latest answer (maybe for an older drawing)
    errors: {}, // model -> { kind, text, version }
    preview: null, // { src, version }
    pending: 0,
    controller: null,
    debounce: null,
    online: null,
    pollTimer: null,
    healthCheck: null,
    offlineDelay: 1000,
    apiBase: "",
    lastDigit: null,
    lastAnnouncement: "",
  };

  // API base URL: ?api=... for this visit, else the saved setting, else the page's own origin
  // (or a local server when the page was opened from a file).
  const defaultBase = location.protocol === "file:" ? "http://127.0.0.1:8000" : "";
  state.apiBase = normalizeBase(params.get("api") || storageGet(STORAGE.api) || defaultBase);

  function apiUrl(path) {
    return `${state.apiBase}${path}`;
  }

  // ---------------------------------------------------------------- canvas

  let scale = 1; // backing-store pixels per logical unit

  function themeColors() {
    const css = getComputedStyle(document.documentElement);
    return {
      paper: css.getPropertyValue("--paper").trim() || "#fff",
      ink: css.getPropertyValue("--ink").trim() || "#000",
    };
  }
  let colors = themeColors();

  function resizeCanvas() {
    const cssSize = el.canvas.clientWidth || SIZE; // the content box, without the border
    const dpr = window.devicePixelRatio || 1;
    const pixels = Math.max(1, Math.round(cssSize * dpr));
    if (el.canvas.width !== pixels || el.canvas.height !== pixels) {
      el.canvas.width = pixels;
      el.canvas.height = pixels;
    }
    scale = pixels / SIZE;
    redraw();
  }

  function strokeStyle(c, size, color) {
    c.strokeStyle = color;
    c.fillStyle = color;
    c.lineWidth = brushWidth(size);
    c.lineCap = "round";
    c.lineJoin = "round";
  }

  function paintStroke(c, stroke, color) {
    const pts = stroke.points;
    strokeStyle(c, stroke.size, color);
    if (pts.length === 1) {
      c.beginPath();
      c.arc(pts[0][0], pts[0][1], brushWidth(stroke.size) / 2, 0, Math.PI * 2);
      c.fill();
      return;
    }
    c.beginPath();
    c.moveTo(pts[0][0], pts[0][1]);
    for (let i = 1; i < pts.length; i++) c.lineTo(pts[i][0], pts[i][1]);
    c.stroke();
  }

  function paintAll(c, paper, ink) {
    c.save();
    c.fillStyle = paper;
    c.fillRect(0, 0, SIZE, SIZE);
    for (const stroke of state.strokes) paintStroke(c, stroke, ink);
    if (state.current && !state.strokes.includes(state.current)) paintStroke(c, state.current, ink);
    c.restore();
  }

  function redraw() {
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    paintAll(ctx, colors.paper, colors.ink);
  }

  /** The drawing as a 280x280 PNG data URL, black ink on white, whatever the theme or DPR. */
  function exportPNG() {
    const off = document.createElement("canvas");
    off.width = SIZE;
    off.height = SIZE;
    paintAll(off.getContext("2d"), "#ffffff", "#000000");
    return off.toDataURL("image/png");
  }

  function pointFromEvent(event) {
    const rect = el.canvas.getBoundingClientRect();
    const size = el.canvas.clientWidth || rect.width;
    const x = ((event.clientX - rect.left - el.canvas.clientLeft) / size) * SIZE;
    const y = ((event.clientY - rect.top - el.canvas.clientTop) / size) * SIZE;
    return [Math.min(SIZE, Math.max(0, x)), Math.min(SIZE, Math.max(0, y))];
  }

  function onPointerDown(event) {
    if (state.pointerId !== null) return; // one stroke at a time (ignore a second finger)
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    try {
      el.canvas.setPointerCapture(event.pointerId);
    } catch {
      /* synthetic pointers cannot always be captured */
    }
    state.pointerId = event.pointerId;
    const size = Number(el.brush.value);
    state.current = { size, points: [pointFromEvent(event)] };
    state.strokes.push(state.current);
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    paintStroke(ctx, state.current, colors.ink);
    drawingChanged(false);
  }

  function onPointerMove(event) {
    if (event.pointerId !== state.pointerId || !state.current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const list = events.length ? events : [event];
    for (const e of list) state.current.points.push(pointFromEvent(e));
    // Repaint everything (cheap at this size): one path per stroke keeps the joints smooth,
    // where painting segment by segment leaves faint ridges at each overlap.
    redraw();
    drawingChanged(true, true);
  }

  function onPointerUp(event) {
    if (event.pointerId !== state.pointerId) return;
    state.pointerId = null;
    state.current = null;
    drawingChanged(true);
  }

  // ---------------------------------------------------------------- drawing changes

  function hasInk() {
    return state.strokes.length > 0;
  }

  function updateButtons() {
    const ink = hasInk();
    el.undo.disabled = !ink;
    el.clear.disabled = !ink;
    el.predict.disabled = !ink;
    el.canvasWrap.classList.toggle("has-ink", ink);
  }

  /** The drawing changed: results are stale; schedule a live prediction when asked. */
  function drawingChanged(schedule, moving = false) {
    state.version += 1;
    updateButtons();
    cancelDebounce();
    if (!hasInk()) {
      abortRequests();
      resetResults();
      return;
    }
    // Live mode predicts ~250 ms after the pointer lifts or pauses mid-stroke.
    if (schedule && el.live.checked) state.debounce = setTimeout(predict, DEBOUNCE_MS);
    // Mid-stroke, the result panel is already marked pending: spare the DOM work per move.
    if (!moving || el.result.dataset.status !== "pending") render();
  }

  function cancelDebounce() {
    if (state.debounce !== null) {
      clearTimeout(state.debounce);
      state.debounce = null;
    }
  }

  function undo() {
    if (!hasInk() || state.pointerId !== null) return;
    state.strokes.pop();
    redraw();
    drawingChanged(true);
  }

  function clearDrawing() {
    if (state.pointerId !== null) return;
    state.strokes = [];
    state.current = null;
    redraw();
    drawingChanged(false);
    showMessage("");
  }

  // ---------------------------------------------------------------- requests

  function abortRequests() {
    if (state.controller) state.controller.abort();
    state.controller = null;
    state.pending = 0;
    el.result.classList.remove("is-busy");
  }

  class ApiError extends Error {
    constructor(status, error, detail, body) {
      super(detail || error || `HTTP ${status}`);
      this.body = body;
      this.status = status;
      this.error = error;
      this.detail = detail;
    }
  }

  async function fetchJSON(path, options = {}) {
    const response = await fetch(apiUrl(path), {
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const detail = body && (body.detail ?? body.message);
      throw new ApiError(
        response.status,
        body && body.error,
        typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : "",
        body,
      );
    }
    return body;
  }

  /** The selected model always (a 503 then says why it cannot answer), then the others loaded. */
  function modelsToQuery() {
    const others = MODELS.filter((m) => m !== state.selected && state.available.includes(m));
    return [state.selected, ...others];
  }

  /** Ask every loaded model about the current drawing; the selected one first. */
  async function predict() {
    cancelDebounce();
    if (!hasInk()) return;
    abortRequests();
    const controller = new AbortController();
    state.controller = controller;
    const version = state.version;
    const image = exportPNG();
    const models = modelsToQuery();
    state.pending = models.length;
    el.result.classList.add("is-busy");
    render();

    await Promise.all(
      models.map(async (model) => {
        const primary = model === state.selected;
        try {
          const body = await fetchJSON("/predict/base64", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ image, model_type: model, top_k: 3, preview: primary }),
            signal: controller.signal,
          });
          if (controller.signal.aborted) return;
          // Kept even when the drawing has moved on meanwhile: shown dimmed until the next answer.
          state.results[model] = { body, version };
          delete state.errors[model];
          if (body && body.input_preview) state.preview = { src: body.input_preview, version };
          setOnline(true);
        } catch (error) {
          if (controller.signal.aborted || error.name === "AbortError") return;
          state.errors[model] = { ...describeError(error), version };
          delete state.results[model];
          if (!(error instanceof ApiError)) {
            setOnline(false);
            checkHealth(); // find out at once whether the whole API is down
          } else {
            setOnline(true);
          }
        } finally {
          if (state.controller === controller) {
            state.pending -= 1;
            render();
          }
        }
      }),
    );
    if (state.controller === controller) {
      state.controller = null;
      el.result.classList.remove("is-busy");
      render();
    }
  }

  function sentence(text) {
    const t = String(text || "").trim();
    return t && !/[.!?]$/.test(t) ? `${t}.` : t;
  }

  function describeError(error) {
    if (error instanceof ApiError) {
      const detail = error.detail || error.error || "";
      if (error.status === 422 && error.error === "no_ink") {
        return {
          kind: "refused",
          text: "The server found no ink in this drawing. Draw a larger, bolder digit.",
        };
      }
      if (error.status === 422 || error.status === 400 || error.status === 413) {
        return { kind: "refused", text: `The server could not use this drawing: ${sentence(detail)}` };
      }
      if (error.status === 503 || error.status === 404) {
        return { kind: "refused", text: `That model is not available: ${sentence(detail)}` };
      }
      const reason = detail ? `: ${sentence(detail)}` : ".";
      return { kind: "server", text: `The server failed (${error.status})${reason}` };
    }
    return {
      kind: "network",
      text: `Cannot reach the prediction API${state.apiBase ? ` at ${state.apiBase}` : ""}. Retrying…`,
    };
  }

  // ---------------------------------------------------------------- rendering

  function buildBars() {
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

  function setStatus(status) {
    el.result.dataset.status = status;
  }

  function resetResults() {
    state.results = {};
    state.errors = {};
    state.preview = null;
    state.lastDigit = null;
    render();
  }

  function current(entry) {
    return entry && entry.version === state.version ? entry : null;
  }

  function render() {
    const model = state.selected;
    const result = state.results[model] ? state.results[model].body : null;
    const fresh = current(state.results[model]);
    const error = current(state.errors[model]);
    el.result.dataset.model = model;
    el.result.classList.toggle("is-stale", Boolean(result) && !fresh);
    el.result.classList.toggle("no-result", !result);

    // The selected model's answer.
    if (result) {
      const digit = String(result.predicted_class);
      if (el.prediction.textContent !== digit || state.lastDigit !== `${model}:${digit}`) {
        el.prediction.textContent = digit;
        popIn(el.prediction.parentElement);
      }
      state.lastDigit = `${model}:${digit}`;
      el.confidence.textContent = percent(result.confidence);
      el.confidence.dataset.level =
        result.confidence >= 0.9 ? "high" : result.confidence >= 0.6 ? "medium" : "low";
      const ms = typeof result.inference_ms === "number" ? ` · ${result.inference_ms.toFixed(1)} ms` : "";
      el.resultMeta.textContent = `${MODEL_LABELS[model]}${ms}`;
    } else {
      el.prediction.textContent = "–";
      el.confidence.textContent = "–";
      delete el.confidence.dataset.level;
      state.lastDigit = null;
      el.resultMeta.textContent = hasInk()
        ? state.pending
          ? `Asking the ${MODEL_LABELS[model]}…`
          : error
            ? "No answer"
            : el.live.checked
              ? "Waiting for you to pause…"
              : "Press Predict"
        : "Draw a digit to start";
    }
    renderBars(result ? result.probabilities : null, result ? result.predicted_class : null);

    // A compact copy over the canvas, for phones where the result card is below the fold.
    el.badge.hidden = !result;
    if (result) {
      el.badge.querySelector(".canvas-badge-digit").textContent = String(result.predicted_class);
      el.badge.querySelector(".canvas-badge-conf").textContent = percent(result.confidence, 0);
    }

    // The image the model sees.
    if (state.preview) {
      if (el.preview.getAttribute("src") !== state.preview.src) el.preview.src = state.preview.src;
      el.preview.hidden = false;
    } else {
      el.preview.hidden = true;
      el.preview.removeAttribute("src");
    }

    // Both models, side by side.
    for (const m of MODELS) {
      const item = document.querySelector(`.compare-item[data-model="${m}"]`);
      const r = state.results[m] ? state.results[m].body : null;
      const available = state.available.includes(m);
      item.setAttribute("aria-pressed", String(m === model));
      item.classList.toggle("unavailable", !available);
      item.querySelector(".compare-digit").textContent = r ? String(r.predicted_class) : "–";
      item.querySelector(".compare-conf").textContent = r
        ? percent(r.confidence)
        : !available
          ? "not loaded"
          : current(state.errors[m])
            ? "error"
            : "–";
      item.querySelector(".compare-meter > span").style.transform = `scaleX(${r ? r.confidence : 0})`;
      item.dataset.agree = String(Boolean(r && result && r.predicted_class === result.predicted_class));
    }

    // Status for tests and assistive technology.
    // data-status: empty | pending (a request or a live prediction is on its way) | done |
    // error | stale (live prediction off and the drawing changed since the last answer).
    if (!hasInk()) setStatus("empty");
    else if (state.pending > 0 || state.debounce !== null || state.pointerId !== null)
      setStatus("pending");
    else if (fresh) setStatus("done");
    else if (error) setStatus("error");
    else setStatus("stale");

    // Messages: the selected model's error first, then the other's.
    const errorList = [model, ...MODELS.filter((m) => m !== model)]
      .map((m) => current(state.errors[m]))
      .filter(Boolean);
    if (hasInk() && errorList.length && state.pending === 0) {
      const first = errorList[0];
      showMessage(first.text, first.kind === "refused" ? "warning" : "error");
    } else if (!hasInk() || (state.pending === 0 && !errorList.length)) {
      if (state.online !== false) showMessage("");
    }

    announce(result, model);
  }

  function renderBars(probabilities, predicted) {
    const items = el.bars.children;
    for (let d = 0; d < 10; d++) {
      const p = probabilities ? Number(probabilities[d]) || 0 : 0;
      const li = items[d];
      li.dataset.probability = p.toFixed(4);
      li.classList.toggle("top", predicted !== null && d === Number(predicted));
      li.querySelector(".bar-fill").style.transform = `scaleY(${p})`;
      const text = probabilities ? (p >= 0.995 ? "100%" : p < 0.005 ? "0%" : `${Math.round(p * 100)}%`) : "";
      li.querySelector(".bar-value").textContent = text;
      li.setAttribute("aria-label", `${d}: ${probabilities ? percent(p) : "no value"}`);
    }
  }

  function popIn(node) {
    node.classList.remove("pop");
    void node.offsetWidth; // restart the animation
    node.classList.add("pop");
  }

  function announce(result, model) {
    let text = "";
    if (result && el.result.dataset.status === "done") {
      const confidence = percent(result.confidence, 0);
      text = `${MODEL_LABELS[model]} predicts ${result.predicted_class}, ${confidence} confident.`;
    }
    if (text && text !== state.lastAnnouncement) {
      state.lastAnnouncement = text;
      el.announcer.textContent = text;
    } else if (!hasInk()) {
      state.lastAnnouncement = "";
    }
  }

  function showMessage(text, kind = "info") {
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

  // ---------------------------------------------------------------- model selection

  function selectModel(model, { predictNow = true } = {}) {
    if (!MODEL_LABELS[model]) return;
    const changed = model !== state.selected;
    state.selected = model;
    storageSet(STORAGE.model, model);
    const radio = el.modelSelect.querySelector(`input[value="${model}"]`);
    if (radio && !radio.checked) radio.checked = true;
    for (const option of el.modelSelect.querySelectorAll(".model-option")) {
      option.classList.toggle("selected", option.dataset.model === model);
    }
    render();
    // Ask again with the new model as the primary request (it also fetches the preview).
    if (changed && predictNow && hasInk()) predict();
  }

  function renderModels(list) {
    for (const m of MODELS) {
      const info = list.find((x) => x.name === m);
      const meta = el.modelSelect.querySelector(`[data-accuracy-for="${m}"]`);
      const option = el.modelSelect.querySelector(`.model-option[data-model="${m}"]`);
      const radio = option.querySelector("input");
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
      const acc = accuracyOf(info);
      const nParams = paramsOf(info);
      meta.replaceChildren();
      const accLine = document.createElement("span");
      accLine.className = "model-accuracy";
      // A no-break space keeps "test accuracy" together when a narrow card wraps the line.
      accLine.textContent =
        acc === null ? "test accuracy n/a" : `${acc.toFixed(2)}% test\u00a0accuracy`;
      meta.append(accLine);
      if (nParams !== null) {
        const paramLine = document.createElement("span");
        paramLine.textContent = `${formatCount(nParams)} parameters`;
        meta.append(paramLine);
      }
      if (info.class_name || info.class) option.title = String(info.class_name || info.class);
      radio.disabled = false;
    }
  }

  function accuracyOf(info) {
    const candidates = [
      info.test_accuracy,
      info.accuracy,
      info.metrics && info.metrics.test_accuracy,
      info.metadata && info.metadata.metrics && info.metadata.metrics.test_accuracy,
    ];
    for (const value of candidates) {
      const n = Number(value);
      if (value !== null && value !== undefined && Number.isFinite(n)) return n <= 1 ? n * 100 : n;
    }
    return null;
  }

  function paramsOf(info) {
    for (const value of [info.parameters, info.num_parameters, info.n_parameters, info.params]) {
      const n = Number(value);
      if (value !== null && value !== undefined && Number.isFinite(n)) return n;
    }
    return null;
  }

  function formatCount(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
    return String(n);
  }

  async function loadModels() {
    try {
      const body = await fetchJSON("/models");
      const list = Array.isArray(body) ? body : (body && (body.models || body.data)) || [];
      if (!Array.isArray(list)) return;
      renderModels(list);
      const loaded = list.filter((m) => m.loaded !== false).map((m) => m.name).filter((m) => MODEL_LABELS[m]);
      if (loaded.length) state.available = loaded;
      render();
    } catch {
      /* /health drives the online state; /models is decoration */
    }
  }

  // ---------------------------------------------------------------- API status

  function setOnline(online, reason = "") {
    if (state.online === online && !reason) return;
    const wasOffline = state.online === false;
    state.online = online;
    el.status.dataset.state = online ? "online" : "offline";
    el.statusLabel.textContent = online ? "API online" : reason ? "API unavailable" : "API offline";
    el.status.title = online
      ? `Prediction API reachable${state.apiBase ? ` at ${state.apiBase}` : ""}`
      : `Cannot reach the prediction API${state.apiBase ? ` at ${state.apiBase}` : ""}`;
    if (!online) {
      showMessage(
        reason
          ? `The prediction API is unavailable: ${sentence(reason)} Retrying…`
          : `The prediction API is offline${state.apiBase ? ` (${state.apiBase})` : ""}. Retrying…`,
        "error",
      );
    } else if (wasOffline) {
      showMessage("");
      loadModels();
      // Recover: ask again for a drawing that got no answer while the API was down.
      if (hasInk() && !current(state.results[state.selected]) && !state.pending) predict();
    }
  }

  /** Poll GET /health; one check at a time (a failed prediction asks for one at once). */
  function checkHealth() {
    if (!state.healthCheck) {
      state.healthCheck = runHealthCheck().finally(() => {
        state.healthCheck = null;
      });
    }
    return state.healthCheck;
  }

  async function runHealthCheck() {
    clearTimeout(state.pollTimer);
    let online = false;
    let reason = "";
    try {
      const body = await fetchJSON("/health", { signal: AbortSignal.timeout(4000), cache: "no-store" });
      online = true;
      if (body && Array.isArray(body.models_loaded)) {
        const loaded = body.models_loaded.filter((m) => MODEL_LABELS[m]);
        if (loaded.length) state.available = loaded;
      }
    } catch (error) {
      // 5xx: the server answers but cannot predict (503: no model loaded).
      if (error instanceof ApiError && error.status >= 500) {
        const unhealthy = error.body && error.body.status === "unhealthy";
        reason = unhealthy ? "the server has no model loaded" : error.detail || `HTTP ${error.status}`;
      } else {
        online = error instanceof ApiError; // a 4xx still means the server is up
      }
    }
    const first = state.online === null;
    setOnline(online, reason);
    if (first && online) loadModels();
    state.offlineDelay = online ? 1000 : Math.min(state.offlineDelay * 2, POLL_MS);
    state.pollTimer = setTimeout(checkHealth, online ? POLL_MS : Math.min(state.offlineDelay, POLL_MS));
  }

  // ---------------------------------------------------------------- settings

  function initSettings() {
    el.apiInput.value = state.apiBase;
    el.settingsForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = normalizeBase(el.apiInput.value);
      storageSet(STORAGE.api, value);
      changeApiBase(value);
    });
    el.apiReset.addEventListener("click", () => {
      storageSet(STORAGE.api, null);
      el.apiInput.value = "";
      changeApiBase(defaultBase);
    });
  }

  function changeApiBase(value) {
    state.apiBase = value;
    state.online = null;
    el.status.dataset.state = "checking";
    el.statusLabel.textContent = "Connecting…";
    checkHealth().then(() => {
      if (state.online && hasInk()) predict();
    });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    buildBars();
    const savedBrush = clampInt(storageGet(STORAGE.brush), 1, 5, 3);
    el.brush.value = String(savedBrush);
    el.brushOut.textContent = String(savedBrush);
    el.brush.addEventListener("input", () => {
      el.brushOut.textContent = el.brush.value;
      storageSet(STORAGE.brush, el.brush.value);
    });

    el.canvas.addEventListener("pointerdown", onPointerDown);
    el.canvas.addEventListener("pointermove", onPointerMove);
    el.canvas.addEventListener("pointerup", onPointerUp);
    el.canvas.addEventListener("pointercancel", onPointerUp);
    el.canvas.addEventListener("lostpointercapture", onPointerUp);
    el.canvas.addEventListener("contextmenu", (e) => e.preventDefault());

    el.undo.addEventListener("click", undo);
    el.clear.addEventListener("click", clearDrawing);
    el.predict.addEventListener("click", predict);
    el.live.addEventListener("change", () => {
      if (el.live.checked && hasInk() && !current(state.results[state.selected])) predict();
      render();
    });

    el.modelSelect.addEventListener("change", (event) => {
      if (event.target.name === "model") selectModel(event.target.value);
    });
    for (const item of document.querySelectorAll(".compare-item")) {
      item.addEventListener("click", () => selectModel(item.dataset.model));
    }

    document.addEventListener("keydown", (event) => {
      const target = event.target;
      const typing = target && target.tagName === "INPUT" && /^(text|url|search)$/.test(target.type);
      if (typing) return; // keep the text field's own undo and Escape
      if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
        event.preventDefault();
        undo();
      } else if (event.key === "Escape" && hasInk()) {
        clearDrawing();
      } else if (event.key === "Enter" && target === document.body && hasInk()) {
        predict();
      }
    });

    // Crisp on HiDPI: the backing store follows the CSS size times devicePixelRatio.
    if ("ResizeObserver" in window) new ResizeObserver(resizeCanvas).observe(el.canvas);
    window.addEventListener("resize", resizeCanvas);
    const scheme = window.matchMedia("(prefers-color-scheme: dark)");
    scheme.addEventListener("change", () => {
      colors = themeColors();
      redraw();
    });

    initSettings();
    selectModel(state.selected, { predictNow: false });
    resizeCanvas();
    updateButtons();
    render();
    checkHealth();
    window.addEventListener("online", checkHealth);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") checkHealth();
    });
  }

  init();
})();
