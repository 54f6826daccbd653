// The latent explorer on the book's website: every move of a control decodes a latent code in
// the browser with the model's real decoder (an ONNX file run by onnxruntime-web) and redraws a
// canvas. The page (helpers/explorer_page.py) embeds the endpoint codes and principal
// directions as JSON; the decoders and the runtime are served from _static/ with the book.
// When the runtime or a decoder cannot load, the page says why and shows its saved animation.
//
// State for tests, on each .latent-explorer element: data-state ("loading", "ready", "failed"),
// data-draws (redraws so far) and data-decode-ms (the last decode's time in milliseconds); each
// control carries data-control (model, mode, from, to, kind, t, pc1, pc2, ...).
(function () {
  "use strict";
  const STATIC = document.currentScript.src.replace(/[^/]*$/, "");  // the site's _static/ folder
  const RUNTIME = STATIC + "onnxruntime/";
  let runtime = null;  // one promise for the page: onnxruntime-web, loaded once

  function loadRuntime() {
    runtime = runtime || new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = RUNTIME + "ort.wasm.min.js";
      script.onload = () => {
        // One thread: threads need cross-origin isolation headers that static hosts cannot send.
        // wasmPaths: the runtime's own .wasm next to it, never a CDN.
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.wasmPaths = RUNTIME;
        resolve(ort);
      };
      script.onerror = () => reject(new Error(`could not load ${script.src}`));
      document.head.appendChild(script);
    });
    return runtime;
  }

  async function fetchJson(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  // Paths between codes (arrays of D numbers), as helpers.explore.interpolate computes them.
  function interpolate(z0, z1, t, kind) {
    if (kind === "spherical") {
      let dot = 0, n0 = 0, n1 = 0;
      for (let i = 0; i < z0.length; i++) { dot += z0[i] * z1[i]; n0 += z0[i] * z0[i]; n1 += z1[i] * z1[i]; }
      const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(n0 * n1))));
      if (omega >= 1e-4) {
        const a = Math.sin((1 - t) * omega) / Math.sin(omega), b = Math.sin(t * omega) / Math.sin(omega);
        return z0.map((v, i) => a * v + b * z1[i]);
      }
    }
    return z0.map((v, i) => (1 - t) * v + t * z1[i]);
  }

  function control(parent, label, key, element) {
    const row = document.createElement("label");
    row.className = "latent-explorer-control";
    row.style.cssText = "display:flex; gap:0.5em; align-items:center; margin:0.15em 0";
    const name = document.createElement("span");
    name.textContent = label;
    name.style.minWidth = "9em";
    element.dataset.control = key;  // how tests find it
    row.append(name, element);
    if (element.type === "range") {  // show a slider's value next to it
      const value = document.createElement("span");
      const show = () => { value.textContent = (+element.value).toFixed(2); };
      element.addEventListener("input", show);
      show();
      row.appendChild(value);
    }
    parent.appendChild(row);
    return element;
  }

  function select(options) {
    const element = document.createElement("select");
    options.forEach((text, i) => element.add(new Option(text, String(i))));
    return element;
  }

  function slider(min, max, step, value) {
    const element = document.createElement("input");
    Object.assign(element, { type: "range", min, max, step, value });
    element.style.width = "16em";
    return element;
  }

  // A decoded image (1 x C x H x W floats in [0, 1], channel after channel) as canvas pixels: grey for
  // C = 1, red, green and blue for C = 3. The canvas takes the size of the model's images.
  function imageData(values, [channels, height, width]) {
    const pixels = new ImageData(width, height), plane = width * height;
    const level = (v) => Math.round(Math.min(1, Math.max(0, v)) * 255);
    const rgb = channels === 1 ? [0, 0, 0] : [0, 1, 2];
    for (let p = 0; p < plane; p++) {
      pixels.data.set([...rgb.map((c) => level(values[c * plane + p])), 255], 4 * p);
    }
    return pixels;
  }

  async function start(root) {
    const data = JSON.parse(root.querySelector(".latent-explorer-data").textContent);
    const status = root.querySelector(".latent-explorer-status");
    const fallback = root.querySelector(".latent-explorer-fallback");
    root.dataset.state = "loading";
    status.textContent = "Loading the decoders into your browser…";
    let sessions;
    try {
      const ort = await loadRuntime();
      const exported = await fetchJson(STATIC + "explorer/decoders.json");
      sessions = await Promise.all(data.models.map(async (model) => {
        const file = exported[model.name];
        if (!file) throw new Error(`no decoder for ${model.label} was built (no shipped weights?)`);
        if (file.weights !== model.weights) {
          throw new Error(`the ${model.label} decoder comes from other weights than this page's codes; rebuild the book`);
        }
        return ort.InferenceSession.create(STATIC + "explorer/" + file.file, { executionProviders: ["wasm"] });
      }));
    } catch (error) {
      root.dataset.state = "failed";
      status.textContent = `The in-browser decoders could not load (${error.message}). ` +
        "Here is the same interpolation, frame by frame:";
      return;
    }

    fallback.hidden = true;
    const panel = document.createElement("div");
    panel.style.cssText = "display:flex; gap:1.5em; align-items:flex-start; flex-wrap:wrap";
    const controls = document.createElement("div");
    const canvas = document.createElement("canvas");
    canvas.style.cssText = "width:192px; height:192px; image-rendering:pixelated; border:1px solid #888";
    panel.append(controls, canvas);
    root.insertBefore(panel, status);

    const ui = {
      model: control(controls, "model", "model", select(data.models.map((m) => m.label))),
      mode: control(controls, "mode", "mode", select(["interpolate", "principal directions"])),
      from: control(controls, "from", "from", select([])),
      to: control(controls, "to", "to", select([])),
      kind: control(controls, "path", "kind", select(data.kinds)),
      t: control(controls, "t", "t", slider(0, 1, 0.01, 0.5)),
      pcs: Array.from({ length: Math.max(0, ...data.models.map((m) => (m.pca ? m.pca.scales.length : 0))) },
        (_, k) => control(controls, `PC ${k + 1} (sd)`, `pc${k + 1}`, slider(-3, 3, 0.05, 0))),
    };

    function fillEndpoints() {
      const model = data.models[+ui.model.value];
      for (const [element, chosen] of [[ui.from, 0], [ui.to, 1]]) {
        element.replaceChildren(...model.endpoints.map((e, i) => new Option(e.label, String(i))));
        element.value = String(chosen);
      }
      ui.mode.options[1].disabled = !model.pca;
      if (!model.pca) ui.mode.value = "0";
      showMode();
    }

    // Only the controls of the current mode are active.
    function showMode() {
      const interpolating = ui.mode.value === "0";
      for (const element of [ui.from, ui.to, ui.kind, ui.t]) element.disabled = !interpolating;
      for (const element of ui.pcs) element.disabled = interpolating;
    }

    function code() {
      const model = data.models[+ui.model.value];
      if (ui.mode.value === "0") {
        return interpolate(model.endpoints[+ui.from.value].code, model.endpoints[+ui.to.value].code,
          +ui.t.value, data.kinds[+ui.kind.value]);
      }
      const { mean, directions, scales } = model.pca;
      return mean.map((m, i) => m + directions.reduce((sum, v, k) => sum + +ui.pcs[k].value * scales[k] * v[i], 0));
    }

    // One decode at a time; moves made meanwhile collapse into one more decode of the latest state.
    let busy = false, again = false, draws = 0;
    async function redraw() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do {
          again = false;
          const model = data.models[+ui.model.value];
          const began = performance.now();
          const input = new ort.Tensor("float32", Float32Array.from(code()), [1, model.latent_dim]);
          const { image } = await sessions[+ui.model.value].run({ code: input });
          const ms = performance.now() - began;
          [canvas.height, canvas.width] = model.image_shape.slice(1);
          canvas.getContext("2d").putImageData(imageData(image.data, model.image_shape), 0, 0);
          root.dataset.decodeMs = ms.toFixed(2);
          root.dataset.draws = String(++draws);
          status.textContent = `${model.label}: decoded in your browser in ${ms.toFixed(1)} ms.`;
        } while (again);
      } catch (error) {
        status.textContent = `Decoding failed: ${error.message}`;
        throw error;
      } finally {
        busy = false;
      }
    }

    ui.model.addEventListener("change", () => { fillEndpoints(); redraw(); });
    ui.mode.addEventListener("change", () => { showMode(); redraw(); });
    for (const element of [ui.from, ui.to, ui.kind]) element.addEventListener("change", redraw);
    for (const element of [ui.t, ...ui.pcs]) element.addEventListener("input", redraw);
    fillEndpoints();
    await redraw();
    root.dataset.state = "ready";
  }

  function startAll() {
    document.querySelectorAll(".latent-explorer").forEach((root) => start(root));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
