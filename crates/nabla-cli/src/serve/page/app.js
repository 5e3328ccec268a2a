// The live page: the pad sends each stroke as a PNG to /api/explain, and
// every view is redrawn from the one JSON report that comes back (nabla's
// own forward and backward pass; nothing is computed here but colours).
'use strict';

const $ = (id) => document.getElementById(id);
const pad = $('pad');
const pen = pad.getContext('2d');
const state = { models: [], model: null, target: null, inFlight: false, dirty: false, hasInk: false };
// For tests and the curious: how many reports were drawn and how long each took.
window.nabla = {
  updates: 0,
  timings: [],
  last: null,
  error: null,
  // True when no stroke is waiting for its report.
  settled: () => !state.inFlight && !state.dirty,
};

const UP = [232, 89, 12];
const DOWN = [28, 126, 214];
const INK = [33, 37, 41];
const WHITE = [255, 255, 255];
// 0.42, or 3.1e-6 for what would print as 0.00.
const num = (v) => (v === 0 || Math.abs(v) >= 0.01 ? v.toFixed(2) : v.toExponential(1));
const mix = (a, b, t) => [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));

// ---- drawing --------------------------------------------------------------

function clearPad() {
  pen.fillStyle = '#000';
  pen.fillRect(0, 0, pad.width, pad.height);
  state.hasInk = false;
}

function at(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}

let last = null;
pen.lineWidth = 20;
pen.lineCap = 'round';
pen.lineJoin = 'round';

pad.addEventListener('pointerdown', (e) => {
  pad.setPointerCapture(e.pointerId);
  last = at(e);
  pen.fillStyle = '#fff';
  pen.beginPath();
  pen.arc(last[0], last[1], pen.lineWidth / 2, 0, 2 * Math.PI);
  pen.fill();
  changed();
});
pad.addEventListener('pointermove', (e) => {
  if (!last) return;
  const p = at(e);
  pen.strokeStyle = '#fff';
  pen.beginPath();
  pen.moveTo(last[0], last[1]);
  pen.lineTo(p[0], p[1]);
  pen.stroke();
  last = p;
  changed();
});
const lift = () => {
  if (last) {
    last = null;
    changed();
  }
};
pad.addEventListener('pointerup', lift);
pad.addEventListener('pointercancel', lift);

function changed() {
  state.hasInk = true;
  state.dirty = true;
  send();
}

// ---- talking to nabla ---------------------------------------------------

// One request in flight at a time; strokes made meanwhile are sent together next.
async function send() {
  if (state.inFlight || !state.dirty || !state.hasInk || !state.model) return;
  state.dirty = false;
  state.inFlight = true;
  const t0 = performance.now();
  try {
    const blob = await new Promise((done) => pad.toBlob(done, 'image/png'));
    const body = await blob.arrayBuffer();
    const t1 = performance.now();
    const target = state.target === null ? 'auto' : state.target;
    const resp = await fetch(`/api/explain?model=${encodeURIComponent(state.model)}&target=${target}`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/png' },
      body,
    });
    const text = await resp.text();
    const t2 = performance.now();
    if (!resp.ok) {
      let message = text;
      try { message = JSON.parse(text).error; } catch (_) { /* not JSON: show as is */ }
      showError(`${resp.status}: ${message}`);
      if (resp.status === 429) setTimeout(() => { state.dirty = true; send(); }, 1000);
      return;
    }
    const report = JSON.parse(text);
    const t3 = performance.now();
    render(report);
    const t4 = performance.now();
    const server = serverTiming(resp.headers.get('Server-Timing'));
    const timing = { model: report.model, encode: t1 - t0, request: t2 - t1, parse: t3 - t2, render: t4 - t3, total: t4 - t0, server };
    window.nabla.timings.push(timing);
    showTiming(timing);
    setStatus(`${report.model}: predicted ${report.predicted}, target ${report.target}, C = ${report.loss.toFixed(3)}`);
  } catch (err) {
    showError(String(err));
  } finally {
    state.inFlight = false;
    if (state.dirty) send();
  }
}

function serverTiming(header) {
  const out = {};
  for (const part of (header || '').split(',')) {
    const m = part.trim().match(/^(\w+);dur=([\d.]+)$/);
    if (m) out[m[1]] = parseFloat(m[2]);
  }
  return out;
}

function setStatus(text) {
  const s = $('status');
  s.textContent = text;
  s.className = '';
  window.nabla.error = null;
}

function showError(text) {
  const s = $('status');
  s.textContent = text;
  s.className = 'error';
  window.nabla.error = text;
}

function showTiming(t) {
  const s = t.server;
  const serverTotal = (s.decode || 0) + (s.wait || 0) + (s.net || 0) + (s.json || 0);
  $('timing').textContent =
    `stroke → page ${t.total.toFixed(1)} ms: PNG ${t.encode.toFixed(1)} · server ${serverTotal.toFixed(1)} ` +
    `(decode ${(s.decode || 0).toFixed(1)}, forward+backward ${(s.net || 0).toFixed(1)}, JSON ${(s.json || 0).toFixed(1)}) · ` +
    `transfer ${(t.request - serverTotal).toFixed(1)} · parse ${t.parse.toFixed(1)} · draw ${t.render.toFixed(1)}`;
}

// ---- views ----------------------------------------------------------------

// Paints a canvas from values laid out as tiles: `tiles` maps of h×w values
// each (one map of 28×28, C feature maps, or N units as 1×1 tiles), `cols`
// tiles a row, one pixel apart; `color(i)` gives value i's colour.
function paint(canvas, tiles, h, w, cols, gap, color) {
  const rows = Math.ceil(tiles / cols);
  canvas.width = cols * (w + gap) - gap;
  canvas.height = rows * (h + gap) - gap;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(canvas.width, canvas.height);
  img.data.fill(255);
  for (let t = 0; t < tiles; t++) {
    const x0 = (t % cols) * (w + gap);
    const y0 = Math.floor(t / cols) * (h + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const c = color(t * h * w + y * w + x);
        const o = ((y0 + y) * canvas.width + x0 + x) * 4;
        img.data[o] = c[0];
        img.data[o + 1] = c[1];
        img.data[o + 2] = c[2];
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

// A layer's values as the tiles `paint` takes: maps for [C, H, W], else
// units in rows (each unit a 3×3 square so the rows stay readable).
function layout(shape) {
  if (shape.length === 3) {
    const [c, h, w] = shape;
    const cols = c <= 8 ? c : Math.ceil(Math.sqrt(c));
    return { tiles: c, h, w, cols, gap: 1 };
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const cols = n <= 16 ? n : Math.ceil(Math.sqrt(n * 4));
  return { tiles: n, h: 1, w: 1, cols, gap: 0, unit: 3 };
}

// Draws levels {scale, q} into a canvas laid out for `shape`; `signed`
// colours use orange for positive and blue for negative, `sqrt` compresses.
function drawLevels(canvas, shape, levels, { sqrt }) {
  const q = levels.q;
  const signed = q.some((v) => v < 0);
  const shade = (v) => {
    let t = Math.abs(v) / 127;
    if (sqrt) t = Math.sqrt(t);
    if (!signed) return mix(WHITE, INK, t);
    return mix(WHITE, v > 0 ? UP : DOWN, t);
  };
  const l = layout(shape);
  if (l.unit) {
    // Units: each a unit×unit square with a white gap.
    const u = l.unit;
    paint(canvas, l.tiles, u, u, l.cols, 1, (i) => shade(q[Math.floor(i / (u * u))]));
  } else {
    paint(canvas, l.tiles, l.h, l.w, l.cols, l.gap, (i) => shade(q[i]));
  }
  // Integer magnification to about 290 px wide, kept crisp by CSS.
  const scale = Math.max(1, Math.min(12, Math.floor(290 / canvas.width)));
  canvas.style.width = `${canvas.width * scale}px`;
  canvas.style.height = `${canvas.height * scale}px`;
  canvas.dataset.renders = String(Number(canvas.dataset.renders || 0) + 1);
}

function drawInput(pixels) {
  const c = $('input28');
  paint(c, 1, 28, 28, 1, 0, (i) => [pixels[i], pixels[i], pixels[i]]);
  c.dataset.renders = String(Number(c.dataset.renders || 0) + 1);
}

// −∂C/∂x over a faint copy of the digit.
function drawSensitivity(levels, pixels) {
  const c = $('sensitivity');
  paint(c, 1, 28, 28, 1, 0, (i) => {
    const base = mix(WHITE, [190, 190, 190], pixels[i] / 255);
    const v = levels.q[i];
    const t = Math.sqrt(Math.abs(v) / 127);
    return mix(base, v > 0 ? UP : DOWN, t);
  });
  c.dataset.renders = String(Number(c.dataset.renders || 0) + 1);
}

function bars(el, values, { signed, target }) {
  el.innerHTML = '';
  const peak = signed ? Math.max(1e-12, ...values.map(Math.abs)) : 1;
  values.forEach((v, k) => {
    const label = document.createElement('span');
    label.textContent = String(k);
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('i');
    if (signed) {
      const width = (Math.abs(v) / peak) * 50;
      fill.className = v >= 0 ? 'up' : 'down';
      fill.style.width = `${width}%`;
      if (v < 0) fill.style.left = `${50 - width}%`;
    } else {
      fill.style.width = `${v * 100}%`;
    }
    bar.appendChild(fill);
    const value = document.createElement('span');
    value.textContent = signed ? (v >= 0 ? '+' : '−') + num(Math.abs(v)) : `${(v * 100).toFixed(1)}%`;
    if (k === target) {
      label.className = 'target';
      value.className = 'target';
    }
    el.append(label, bar, value);
  });
  el.dataset.renders = String(Number(el.dataset.renders || 0) + 1);
}

function wishText(r) {
  const others = r.wish
    .map((w, k) => [w, k])
    .filter(([, k]) => k !== r.target)
    .sort((a, b) => a[0] - b[0])
    .slice(0, 3)
    .map(([w, k]) => `lower ${k} by ${num(-w)}`);
  const sure = r.wish[r.target] < 0.01 ? ' The network is already sure, so the wish is tiny; each view below is scaled to its own largest value.' : '';
  return `Target ${r.target}: C = −ln p${r.target} = ${num(r.loss)}. The output wants: raise ${r.target} by ${num(r.wish[r.target])}, ${others.join(', ')}… (−∂C/∂z = y − p). That wish flows back through every layer below, and at the input it becomes the heat map under the pad.${sure}`;
}

function render(r) {
  drawInput(r.input);
  drawSensitivity(r.sensitivity, r.input);
  $('prediction').innerHTML = `<b>${r.predicted}</b> ${(100 * r.probabilities[r.predicted]).toFixed(1)}%`;
  bars($('probabilities'), r.probabilities, { signed: false, target: r.predicted });
  bars($('wish'), r.wish, { signed: true, target: r.target });
  $('wish-text').textContent = wishText(r);
  if (document.querySelectorAll('.layer').length !== r.layers.length) buildLayers(r.layers);
  r.layers.forEach((layer, i) => {
    const card = document.querySelectorAll('.layer')[i];
    card.querySelector('h3 span').textContent = ` ${layer.shape.join('×')} · output up to ${num(layer.activation.scale)}, wish up to ${num(layer.wish.scale)}`;
    drawLevels(card.querySelector('canvas.forward'), layer.shape, layer.activation, { sqrt: false });
    drawLevels(card.querySelector('canvas.backward'), layer.shape, layer.wish, { sqrt: true });
  });
  window.nabla.updates += 1;
  window.nabla.last = { model: r.model, predicted: r.predicted, target: r.target, loss: r.loss };
}

function buildLayers(layers) {
  const list = $('layer-list');
  list.innerHTML = '';
  for (const layer of layers) {
    const card = document.createElement('div');
    card.className = 'layer';
    const title = document.createElement('h3');
    title.textContent = layer.name;
    title.appendChild(document.createElement('span')).textContent = ` ${layer.shape.join('×')}`;
    const views = document.createElement('div');
    views.className = 'views';
    for (const [kind, text] of [['forward', 'forward: the output a'], ['backward', 'back: what the target wants of it, −∂C/∂a']]) {
      const row = document.createElement('div');
      row.className = 'row';
      row.appendChild(document.createElement('span')).textContent = text;
      const canvas = document.createElement('canvas');
      canvas.className = `${kind} layer-view`;
      canvas.width = 1;
      canvas.height = 1;
      row.appendChild(canvas);
      views.appendChild(row);
    }
    card.append(title, views);
    list.appendChild(card);
  }
}

// ---- controls -------------------------------------------------------------

function buttons(container, items, isOn, onPick) {
  container.querySelectorAll('button').forEach((b) => b.remove());
  for (const [label, value] of items) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.dataset.value = value === null ? 'auto' : String(value);
    b.className = isOn(value) ? 'on' : '';
    b.addEventListener('click', () => {
      onPick(value);
      container.querySelectorAll('button').forEach((x) => { x.className = x === b ? 'on' : ''; });
      state.dirty = true;
      send();
    });
    container.appendChild(b);
  }
}

function pickModel(id) {
  const info = state.models.find((m) => m.id === id);
  state.model = id;
  buildLayers(info.layers);
  const targets = [['auto', null], ...info.classes.map((c, k) => [c, k])];
  if (state.target !== null && state.target >= info.classes.length) state.target = null;
  buttons($('targets'), targets, (v) => v === state.target, (v) => { state.target = v; });
  setStatus(`${info.id}: ${info.summary} (${info.source})`);
}

$('clear').addEventListener('click', () => {
  clearPad();
  $('prediction').textContent = 'draw a digit';
});

async function start() {
  clearPad();
  try {
    const resp = await fetch('/api/models');
    state.models = await resp.json();
  } catch (err) {
    showError(`cannot list the models: ${err}`);
    return;
  }
  buttons($('models'), state.models.map((m) => [m.id, m.id]), (v) => v === state.models[0].id, pickModel);
  pickModel(state.models[0].id);
}

start();
