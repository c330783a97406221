// The "try it" page of the scratchnet API: one form per endpoint, sent with fetch(), the answer
// shown as pretty-printed JSON (or text) with its status, time and an equivalent curl command.
// No framework and no external asset: the page must work on a machine without network access.
"use strict";

(function () {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");

  // -- the drawing pad -------------------------------------------------------------------------

  function clearPad() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
  }

  function strokeStyle() {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 18;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  function drawSample() {
    clearPad();
    strokeStyle();
    ctx.beginPath();
    ctx.moveTo(80, 70);
    ctx.lineTo(200, 70);
    ctx.lineTo(120, 220);
    ctx.stroke();
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) * pad.width) / rect.width,
      ((event.clientY - rect.top) * pad.height) / rect.height,
    ];
  }

  let drawing = false;
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    pad.setPointerCapture(event.pointerId);
    strokeStyle();
    ctx.beginPath();
    ctx.moveTo(...padPoint(event));
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.lineTo(...padPoint(event));
    ctx.stroke();
  });
  pad.addEventListener("pointerup", () => { drawing = false; });
  pad.addEventListener("pointercancel", () => { drawing = false; });
  document.getElementById("clear-pad").addEventListener("click", clearPad);
  document.getElementById("sample-pad").addEventListener("click", drawSample);
  drawSample();

  function padBlob() {
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  }

  // -- sending a form --------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child);
    return node;
  }

  function shellQuote(text) {
    return "'" + String(text).replace(/'/g, "'\\''") + "'";
  }

  async function buildRequest(form) {
    const method = form.dataset.method;
    const kind = form.dataset.kind || "none";
    const data = new FormData(form);
    let path = form.dataset.path;
    const headers = {};
    let body;
    let curl = `curl -s -X ${method}`;

    path = path.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(data.get(name) || ""));
    if (data.has("__accept")) {
      headers.Accept = data.get("__accept");
      curl += ` -H ${shellQuote("Accept: " + headers.Accept)}`;
    }
    if (kind === "json") {
      headers["Content-Type"] = "application/json";
      body = data.get("__body");
      const shown = body.length > 200 ? body.slice(0, 200) + "…" : body;
      curl += ` -H 'Content-Type: application/json' -d ${shellQuote(shown)}`;
    } else if (kind === "multipart") {
      body = new FormData();
      const file = data.get("file");
      if (file && file.size > 0) {
        body.append("file", file, file.name);
        curl += ` -F ${shellQuote("file=@" + file.name)}`;
      } else {
        body.append("file", await padBlob(), "drawing.png");
        curl += " -F file=@drawing.png";
      }
      for (const name of ["model_type", "top_k"]) {
        const value = data.get(name);
        if (value !== null && value !== "") {
          body.append(name, value);
          curl += ` -F ${shellQuote(name + "=" + value)}`;
        }
      }
      const preview = data.get("preview") ? "true" : "false";
      body.append("preview", preview);
      curl += ` -F preview=${preview}`;
    }
    curl += " " + shellQuote(location.origin + path);
    return { method, path, headers, body, curl };
  }

  function showResult(box, { status, ok, ms, contentType, text, curl }) {
    box.hidden = false;
    box.replaceChildren();
    const statusLine = el("div", { className: "status" + (ok ? "" : " bad") },
      `${status} · ${ms.toFixed(1)} ms · ${contentType || "no content type"}`);
    box.append(statusLine);

    let shown = text;
    if (contentType.includes("json")) {
      try {
        const parsed = JSON.parse(text);
        if (typeof parsed.input_preview === "string"
            && parsed.input_preview.startsWith("data:image/png;base64,")) {
          box.append(el("div", {}, "model input (28×28): ",
            el("img", { className: "preview", src: parsed.input_preview, alt: "model input" })));
        }
        shown = JSON.stringify(parsed, null, 2);
      } catch (err) {
        /* not JSON after all: show the text as it is */
      }
    } else if (contentType.includes("text/html")) {
      shown = text.length > 2000 ? text.slice(0, 2000) + "\n…" : text;
    }
    box.append(el("pre", {}, shown));
    box.append(el("details", {}, el("summary", {}, "curl"), el("pre", {}, curl)));
  }

  async function send(form) {
    const box = form.parentElement.querySelector(".result");
    const request = await buildRequest(form);
    const start = performance.now();
    try {
      const response = await fetch(request.path, {
        method: request.method,
        headers: request.headers,
        body: request.body,
      });
      const text = await response.text();
      showResult(box, {
        status: `${response.status} ${response.statusText}`,
        ok: response.ok,
        ms: performance.now() - start,
        contentType: response.headers.get("content-type") || "",
        text,
        curl: request.curl,
      });
    } catch (err) {
      showResult(box, {
        status: "network error",
        ok: false,
        ms: performance.now() - start,
        contentType: "",
        text: String(err),
        curl: request.curl,
      });
    }
  }

  for (const form of document.querySelectorAll("form[data-path]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form);
    });
  }

  // -- the JSON body of /predict/base64 --------------------------------------------------------

  const jsonBox = document.querySelector('textarea[name="__body"]');

  function fillJson() {
    const body = {
      image: pad.toDataURL("image/png"),
      model_type: "cnn",
      top_k: 3,
      preview: true,
    };
    jsonBox.value = JSON.stringify(body, null, 2);
  }
  document.getElementById("fill-json").addEventListener("click", fillJson);
  fillJson();

  // -- the schema's summary --------------------------------------------------------------------

  fetch("/openapi.json")
    .then((response) => response.json())
    .then((schema) => {
      const count = Object.keys(schema.paths || {}).length;
      document.getElementById("schema-info").textContent =
        `${schema.info.title} ${schema.info.version} · OpenAPI ${schema.openapi} · ` +
        `${count} paths`;
    })
    .catch(() => {
      document.getElementById("schema-info").textContent = "The schema could not be loaded.";
    });
})();
