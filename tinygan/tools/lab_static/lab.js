// tinygan lab: polls the server's /api/state and draws it. Plain JavaScript, no library.
// Every number drawn here was computed by tinygan in the server (tinygan/tools/lab.py);
// this file only draws and sends the controls' values.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 60;              // pause between a frame drawn and the next request
const lab = { frames: 0, state: null, fps: 0, polls: 0, errors: 0 };
window.lab = lab;                // for the browser test and the curious

// --- talking to the server -------------------------------------------------------------------
function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function post(path, body) {
  try {
    const r = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const data = await r.json();
    if (!r.ok) { showError(data.error || `${r.status} ${r.statusText}`); return null; }
    showError("");
    return data;
  } catch (e) {
    showError(`the lab server does not answer (${e.message}): is tinygan lab still running?`);
    return null;
  }
}

function valueOf(el) {
  // numbers as numbers, anything else as typed (the server says what is wrong with it)
  if (el.tagName === "SELECT") return el.value;
  const text = el.value.trim();
  return text !== "" && isFinite(Number(text)) ? Number(text) : text;
}

document.querySelectorAll("[data-setting]").forEach((el) => {
  el.addEventListener("change", async () => {
    const name = el.dataset.setting;
    await post("/api/settings", { [name]: valueOf(el) });
    lastSettingsKey = "";                // refresh the controls from the server's settings
  });
});
$("play").onclick = () => post("/api/start");
$("pause").onclick = () => post("/api/pause");
$("step").onclick = () => post("/api/step", { steps: 1 });
$("reset").onclick = () => post("/api/reset", { seed: valueOf($("seed")) });
$("gradcheck").onclick = async () => {
  const out = $("gradcheck-out");
  out.hidden = false;
  out.textContent = "checking the gradients (float64 copies of G and D)…";
  const r = await post("/api/gradcheck");
  out.textContent = r ? r.text + `\n\n${r.passed ? "all pass" : "FAIL (see above)"}` : "the check did not run";
  lab.gradcheck = r;
};

let lastSettingsKey = "";
function syncControls(s) {
  const key = JSON.stringify(s);
  if (key === lastSettingsKey) return;
  lastSettingsKey = key;
  document.querySelectorAll("[data-setting]").forEach((el) => {
    if (document.activeElement === el) return;
    el.value = String(s[el.dataset.setting]);
  });
  if (document.activeElement !== $("seed")) $("seed").value = s.seed;
}

// --- the poll loop ---------------------------------------------------------------------------
const stamps = [];
async function poll() {
  const both = $("both").checked ? 1 : 0;
  try {
    const r = await fetch(`/api/state?both=${both}`, { cache: "no-store" });
    const s = await r.json();
    lab.polls++;
    if (!r.ok) { showError(s.error); }
    else { draw(s); }
  } catch (e) {
    lab.errors++;
    $("status").textContent = "the server does not answer";
  }
  setTimeout(poll, POLL_MS);
}

function draw(s) {
  lab.state = s;
  lab.frames++;
  const now = performance.now();
  stamps.push(now);
  while (stamps.length && stamps[0] < now - 2000) stamps.shift();
  lab.fps = stamps.length > 1 ? (stamps.length - 1) / ((now - stamps[0]) / 1000) : 0;
  $("fps").textContent = `${lab.fps.toFixed(1)} frames/s`;
  $("status").textContent = `step ${s.step} · ${s.playing ? "training" : "paused"} · ${s.backend}`;
  $("play").classList.toggle("on", s.playing);
  $("pause").classList.toggle("on", !s.playing);
  if (s.error) showError(s.error);
  syncControls(s.settings);

  const kinds = Object.keys(s.arrows);
  const current = s.settings.objective;
  const other = kinds.find((k) => k !== current);
  drawField($("field"), s, current);
  $("field-caption").textContent = `${label(current)} (trained with): arrows −dl_i/dx_i from grad_through_d`;
  $("field2-fig").hidden = !other;
  if (other) {
    drawField($("field2"), s, other);
    $("field2-caption").textContent = `${label(other)} (not trained with), same D, same samples, same arrow scale`;
  }
  $("arrow-scale").textContent = `· longest arrow = ${s.arrow_scale.toPrecision(3)}`;
  drawCharts(s);
}

const label = (k) => (k === "minimax" ? "minimax log(1 − D(G(z)))" : "non-saturating −log D(G(z))");

// --- the field: D(x), data, samples, arrows ------------------------------------------------
function heatColor(v) {
  // D = 0 blue (fake), 0.5 light grey, 1 red (real): a diverging map
  const a = [59, 76, 192], m = [242, 242, 242], b = [180, 4, 38];
  const t = Math.min(1, Math.max(0, v));
  const [p, q, u] = t < 0.5 ? [a, m, t * 2] : [m, b, (t - 0.5) * 2];
  return [0, 1, 2].map((i) => Math.round(p[i] + (q[i] - p[i]) * u));
}

function drawField(canvas, s, kind) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, e = s.extent;
  ctx.clearRect(0, 0, W, H);
  if (s.dim === 2) drawField2D(ctx, W, H, e, s, kind);
  else drawField1D(ctx, W, H, e, s, kind);
  ctx.fillStyle = "#1d2330";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(`${kind} · step ${s.step}`, 8, 16);
}

function drawField2D(ctx, W, H, e, s, kind) {
  const px = (x) => ((x + e) / (2 * e)) * W;
  const py = (y) => H - ((y + e) / (2 * e)) * H;
  const n = s.heatmap.n, vals = s.heatmap.values;
  const img = new ImageData(n, n);
  for (let i = 0; i < n; i++) {             // row i of the server's grid: y = ticks[i]
    for (let j = 0; j < n; j++) {
      const [r, g, b] = heatColor(vals[i * n + j]);
      const o = ((n - 1 - i) * n + j) * 4;  // canvas rows run downward
      img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = n; off.height = n;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  const cell = W / (n - 1);
  ctx.drawImage(off, -cell / 2, -cell / 2, W + cell, H + cell);
  ctx.strokeStyle = "rgba(0,0,0,0.35)";
  for (const [cx, cy] of s.modes) {
    ctx.beginPath(); ctx.arc(px(cx), py(cy), 7, 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.fillStyle = "rgba(30,30,30,0.55)";
  for (const [x, y] of s.real) ctx.fillRect(px(x) - 1, py(y) - 1, 2, 2);
  const L = 0.12 * W;
  const arrows = s.arrows[kind] || [];
  ctx.strokeStyle = "rgba(10,10,10,0.75)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  s.samples.forEach(([x, y], i) => {
    const a = arrows[i];
    if (!a) return;
    const x0 = px(x), y0 = py(y), x1 = x0 + a[0] * L, y1 = y0 - a[1] * L;
    ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
    const len = Math.hypot(x1 - x0, y1 - y0);
    if (len > 4) {                           // a small head
      const ux = (x1 - x0) / len, uy = (y1 - y0) / len;
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 4 * ux + 2.5 * uy, y1 - 4 * uy - 2.5 * ux);
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 4 * ux - 2.5 * uy, y1 - 4 * uy + 2.5 * ux);
    }
  });
  ctx.stroke();
  ctx.fillStyle = "#f28e2b";
  ctx.strokeStyle = "#7a3d00";
  for (const [x, y] of s.samples) {
    ctx.beginPath(); ctx.arc(px(x), py(y), 2.2, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
  }
}

function drawField1D(ctx, W, H, e, s, kind) {
  const px = (x) => ((x + e) / (2 * e)) * W;
  const top = 24, base = H - 70;             // densities and D between top and base
  const py = (v) => base - v * (base - top);
  // histograms of data and samples, as densities scaled to the plot
  const bins = 60, width = (2 * e) / bins;
  const hist = (pts) => {
    const h = new Array(bins).fill(0);
    for (const [x] of pts) { const b = Math.floor((x + e) / width); if (b >= 0 && b < bins) h[b]++; }
    return h.map((c) => c / (pts.length * width));
  };
  const [mu, sd] = s.data_pdf;
  const peak = 1 / (sd * Math.sqrt(2 * Math.PI));
  const scale = 0.9 / Math.max(peak, ...hist(s.samples));
  ctx.fillStyle = "rgba(26,150,65,0.35)";
  hist(s.samples).forEach((d, b) => {
    ctx.fillRect(px(-e + b * width), py(d * scale), W / bins - 1, py(0) - py(d * scale));
  });
  ctx.strokeStyle = "#111"; ctx.setLineDash([2, 3]); ctx.beginPath();
  for (let i = 0; i <= 200; i++) {
    const x = -e + (2 * e * i) / 200;
    const d = peak * Math.exp(-0.5 * ((x - mu) / sd) ** 2);
    i ? ctx.lineTo(px(x), py(d * scale)) : ctx.moveTo(px(x), py(d * scale));
  }
  ctx.stroke();
  ctx.strokeStyle = "#2b6cb0"; ctx.setLineDash([6, 4]); ctx.lineWidth = 2; ctx.beginPath();
  const n = s.heatmap.n;
  s.heatmap.values.forEach((v, i) => {
    const x = -e + (2 * e * i) / (n - 1);
    i ? ctx.lineTo(px(x), py(v)) : ctx.moveTo(px(x), py(v));
  });
  ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
  ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(0, py(0.5)); ctx.lineTo(W, py(0.5)); ctx.stroke();
  ctx.fillStyle = "#5b6474"; ctx.fillText("D(x) = 1/2", 4, py(0.5) - 3);
  // samples on a band with their arrows (horizontal: dl_i/dx_i is 1-D)
  const L = 0.12 * W, arrows = s.arrows[kind] || [];
  ctx.strokeStyle = "rgba(10,10,10,0.35)"; ctx.beginPath();
  s.samples.forEach(([x], i) => {
    const y = H - 55 + ((i * 37) % 40);
    const a = arrows[i];
    if (a) { ctx.moveTo(px(x), y); ctx.lineTo(px(x) + a[0] * L, y); }
  });
  ctx.stroke();
  ctx.fillStyle = "#f28e2b";
  s.samples.forEach(([x], i) => ctx.fillRect(px(x) - 1.5, H - 55 + ((i * 37) % 40) - 1.5, 3, 3));
  ctx.fillStyle = "rgba(30,30,30,0.6)";
  s.real.forEach(([x], i) => ctx.fillRect(px(x) - 1, H - 12 - ((i * 13) % 8), 2, 2));
}

// --- charts ----------------------------------------------------------------------------------
const COLORS = ["#2b6cb0", "#f28e2b", "#1a9641", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];

function lineChart(canvas, xs, series, opts = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 46, R = opts.right ? 46 : 10, T = 22, B = 18;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const axes = { left: series.filter((s) => !s.right), right: series.filter((s) => s.right) };
  const range = (ss, log) => {
    let lo = Infinity, hi = -Infinity;
    for (const s of ss) for (const v of s.ys) {
      if (v === null || !isFinite(v) || (log && v <= 0)) continue;
      lo = Math.min(lo, v); hi = Math.max(hi, v);
    }
    if (!isFinite(lo)) return null;
    if (log) { lo = Math.log10(lo); hi = Math.log10(hi); }
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  };
  const x0 = xs.length ? xs[0] : 0, x1 = xs.length ? xs[xs.length - 1] : 1;
  const px = (x) => L + ((x - x0) / Math.max(x1 - x0, 1)) * (W - L - R);
  for (const side of ["left", "right"]) {
    const ss = axes[side];
    if (!ss.length) continue;
    const log = side === "left" ? opts.log : opts.rightLog;
    let r = side === "left" && opts.ylim ? opts.ylim : range(ss, log);
    if (!r) continue;
    const py = (v) => T + (1 - (v - r[0]) / (r[1] - r[0])) * (H - T - B);
    ctx.fillStyle = "#5b6474";
    for (const t of [r[0], (r[0] + r[1]) / 2, r[1]]) {
      const text = log ? Number(Math.pow(10, t).toPrecision(2)).toExponential(1) : t.toPrecision(2);
      ctx.fillText(text, side === "left" ? 2 : W - R + 3, py(t) + 4);
    }
    ss.forEach((s) => {
      ctx.strokeStyle = s.color; ctx.lineWidth = s.width || 1.3; ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      let started = false;
      s.ys.forEach((v, i) => {
        if (v === null || !isFinite(v) || (log && v <= 0)) { started = false; return; }
        const y = py(log ? Math.log10(v) : v);
        if (started) ctx.lineTo(px(xs[i]), y); else ctx.moveTo(px(xs[i]), y);
        started = true;
      });
      ctx.stroke();
    });
    ctx.setLineDash([]);
  }
  ctx.strokeStyle = "#d5dae3"; ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = "#5b6474";
  ctx.fillText(`step ${x0}`, L, H - 5);
  const end = `${x1}`;
  ctx.fillText(end, W - R - ctx.measureText(end).width, H - 5);
  let lx = L;                                        // legend along the top
  series.forEach((s) => {
    ctx.fillStyle = s.color; ctx.fillRect(lx, 9, 10, 3);
    ctx.fillStyle = "#1d2330"; ctx.fillText(s.name, lx + 13, 14);
    lx += 18 + ctx.measureText(s.name).width;
  });
}

function drawCharts(s) {
  const h = s.history, xs = h.step || [];
  const col = (k) => h[k] || xs.map(() => null);
  const layerKeys = Object.keys(h).filter((k) => /^grad_[GD]\./.test(k));
  const norms = layerKeys.map((k, i) => ({
    name: k.replace("grad_", "").replace(".W", ""), ys: col(k), color: COLORS[i % COLORS.length],
    dash: k.startsWith("grad_D") ? [4, 3] : [],
  }));
  norms.push({ name: "dL_G/dx", ys: col("grad_x"), color: "#111", width: 2 });
  lineChart($("norms"), xs, norms, { log: true });
  lineChart($("losses"), xs, [
    { name: "D loss", ys: col("d_loss"), color: COLORS[0] },
    { name: "G loss", ys: col("g_loss"), color: COLORS[1] },
    { name: "D(x)", ys: col("d_real"), color: "#333", dash: [4, 3] },
    { name: "D(G(z))", ys: col("d_fake"), color: "#f28e2b", dash: [4, 3] },
  ]);
  lineChart($("saturation"), xs, [
    { name: "saturated fraction", ys: col("saturated_fraction"), color: "#b40426", width: 2 },
    { name: "minimax / non-sat.", ys: col("grad_ratio"), color: "#9467bd", right: true },
  ], { ylim: [0, 1], rightLog: true, right: true });
  const last = (k) => { const c = col(k); return c.length ? c[c.length - 1] : null; };
  const fmt = (v, d = 3) => (v === null || v === undefined || !isFinite(v) ? "n/a" : Number(v).toPrecision(d));
  if (s.dim === 2) {
    $("modes-caption").textContent = `modes covered of ${s.modes.length}, and the fraction of high-quality samples (within 3 std of a mode), on ${2000} samples`;
    lineChart($("modes"), xs, [
      { name: `modes covered (of ${s.modes.length})`, ys: col("modes_covered"), color: COLORS[2], width: 2 },
      { name: "high-quality fraction", ys: col("high_quality_fraction"), color: COLORS[3], right: true },
    ], { ylim: [0, s.modes.length], right: true });
  } else {
    $("modes-caption").textContent = `1-D: the mean and std of G's samples (data: ${s.data_pdf[0]}, ${s.data_pdf[1]}); mode coverage is for the 2-D mixtures`;
    lineChart($("modes"), xs, [
      { name: "mean of G(z)", ys: col("sample_mean"), color: COLORS[2], width: 2 },
      { name: "std of G(z)", ys: col("sample_std"), color: COLORS[3], right: true },
    ], { right: true });
  }
  $("numbers").textContent =
    `D loss ${fmt(last("d_loss"))} · G loss ${fmt(last("g_loss"))} · ` +
    `saturated ${fmt(100 * (last("saturated_fraction") ?? NaN), 3)}% · ` +
    `‖dL_G/dx‖ minimax / non-saturating ${fmt(last("grad_ratio"))}` +
    (s.dim === 2 ? ` · modes covered ${fmt(last("modes_covered"), 2)}/${s.modes.length}` +
      ` · high-quality ${fmt(100 * (last("high_quality_fraction") ?? NaN), 3)}%` : "");
}

poll();
