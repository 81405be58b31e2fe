"""The web monitor's page: one self-contained HTML document (inline CSS and script, nothing
fetched from elsewhere) that draws the graph of stages, sparklines and a table from the
server-sent events of ``/api/events`` and sends controls to ``/api/control``.

Elements the tests read: ``#state``, ``#message``, ``#ended``, ``#token``, the graph's
``g.node[data-stage]``, the table's ``td[data-stage][data-field]`` and the buttons
``button[data-command]`` (``data-stage`` and ``data-delta`` on the scale ones).
"""

from __future__ import annotations

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipeline web</title>
<style>
:root { --fg: #1d2430; --muted: #6b7585; --line: #d8dde5; --bg: #f5f7fa; --card: #fff;
  --accent: #2f6fde; --ok: #1f9d55; --warn: #d9822b; --bad: #d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 18px;
  background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 17px; margin: 0 8px 0 0; }
.badge { padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff;
  background: var(--muted); text-transform: uppercase; font-size: 12px; }
.badge.running { background: var(--ok); } .badge.paused { background: var(--warn); }
.badge.stopping, .badge.failing, .badge.stopped { background: var(--bad); }
.muted { color: var(--muted); }
.spacer { flex: 1; }
button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 5px;
  background: var(--card); cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); color: var(--accent); }
button:disabled { opacity: .45; cursor: default; }
button.small { padding: 0 7px; min-width: 24px; }
input { font: inherit; padding: 3px 6px; border: 1px solid var(--line); border-radius: 5px;
  width: 13em; }
#message { padding: 6px 18px; min-height: 32px; }
#message.refused { background: #fdecec; color: var(--bad); font-weight: 600; }
#message.done { background: #e8f6ee; color: var(--ok); }
#ended { display: none; padding: 10px 18px; background: var(--bad); color: #fff;
  font-weight: 600; }
main { padding: 8px 18px 18px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; margin-bottom: 14px; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  margin: 0 0 6px; }
#graph svg { width: 100%; display: block; }
.node .box { fill: #f0f5ff; stroke: var(--accent); stroke-width: 1.5; }
.node.ended .box { fill: #eef0f3; stroke: var(--muted); }
.node .track { fill: #e3e8ef; }
.node .name { font-weight: 700; font-size: 14px; }
.node text { font-size: 12px; fill: var(--fg); }
.node .bar { fill: var(--ok); } .node .bar.hot { fill: var(--bad); }
.edge { fill: none; stroke: #9aa6b8; stroke-width: 1.6; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.spark { width: 130px; }
.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.4; }
#errors { color: var(--bad); margin: 6px 0 0; }
#hosts { margin: 6px 0 0; }
#hosts.lost { color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1 id="title">pipeline web</h1>
  <span id="state" class="badge">connecting</span>
  <span id="uptime" class="muted"></span>
  <span id="rescale" class="muted"></span>
  <span class="spacer"></span>
  <button data-command="pause">Pause</button>
  <button data-command="resume">Resume</button>
  <button data-command="stop">Stop</button>
  <label class="muted">token <input id="token" type="password" autocomplete="off"
    placeholder="needed for the controls"></label>
</header>
<div id="ended" role="alert"></div>
<div id="message" role="status"></div>
<main>
  <section id="graph"><h2>Graph</h2><svg id="svg" role="img" aria-label="graph of stages">
    </svg></section>
  <section><h2>Stages</h2>
  <table id="stages"><thead><tr><th>stage</th><th>replicas</th><th>records in</th>
    <th>records out</th><th>in/s</th><th>out/s</th><th>rate, last 2 min</th><th>backlog</th>
    <th>busy</th><th>p50</th><th>p99</th><th>errors</th><th>CPU</th><th>memory</th>
    <th>progress</th></tr></thead><tbody></tbody></table>
  <div id="hosts" class="muted"></div>
  <div id="errors"></div>
  </section>
</main>
<script>
"use strict";
const KEY = "pipeline-web-token", SVGNS = "http://www.w3.org/2000/svg", HISTORY = 120;
const $ = (sel) => document.querySelector(sel);
const tokenField = $("#token");
(function takeToken() {
  const url = new URL(location.href), given = url.searchParams.get("token");
  if (given !== null) {
    sessionStorage.setItem(KEY, given);
    url.searchParams.delete("token");  // keep it out of history and screenshots
    history.replaceState(null, "", url);
  }
  tokenField.value = sessionStorage.getItem(KEY) || "";
  tokenField.addEventListener("input", () => sessionStorage.setItem(KEY, tokenField.value));
})();

let status = null, shape = "", ended = false;
const rates = {};  // stage -> recent rates, oldest first

function short(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return a >= 100 || Number.isInteger(n) ? Math.round(n).toString() : n.toFixed(1);
}
const whole = (n) => Math.round(n).toLocaleString("en-US");
const pct = (x) => Math.round(x * 100) + "%";
const ms = (s) => s == null ? "-" : s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s";
function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function clock(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
  return (h ? h + "h" : "") + (h || m ? m + "m" : "") + r + "s";
}
const rateOf = (s) => s.role === "source" ? s.rate_out : s.rate_in;

function el(tag, attrs, text, ns) {
  const e = ns ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const sv = (tag, attrs, text) => el(tag, attrs, text, true);

function layers(stages) {
  // a stage's layer is the longest path to it from a source
  const names = Object.keys(stages), incoming = {}, layer = {};
  names.forEach((n) => { incoming[n] = 0; layer[n] = 0; });
  names.forEach((n) => stages[n].next.forEach((m) => { if (m in incoming) incoming[m]++; }));
  const queue = names.filter((n) => incoming[n] === 0);
  while (queue.length) {
    const n = queue.shift();
    for (const m of stages[n].next) {
      if (!(m in incoming)) continue;
      layer[m] = Math.max(layer[m], layer[n] + 1);
      if (--incoming[m] === 0) queue.push(m);
    }
  }
  return layer;
}

const W = 200, H = 88, GX = 70, GY = 22, PAD = 12;
function drawGraph(stages) {
  const svg = $("#svg"), layer = layers(stages), cols = [], at = {};
  svg.replaceChildren();
  Object.keys(stages).forEach((n) => (cols[layer[n]] = cols[layer[n]] || []).push(n));
  const rows = Math.max(...cols.map((c) => c.length));
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GX;
  const height = PAD * 2 + rows * H + (rows - 1) * GY;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.maxHeight = Math.max(height, 140) + "px";
  cols.forEach((col, i) => col.forEach((n, j) => {
    const off = (height - PAD * 2 - (col.length * H + (col.length - 1) * GY)) / 2;
    at[n] = [PAD + i * (W + GX), PAD + off + j * (H + GY)];
  }));
  const defs = sv("defs");
  const marker = sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(sv("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa6b8" }));
  defs.append(marker);
  svg.append(defs);
  for (const [n, s] of Object.entries(stages)) {
    for (const m of s.next) {
      if (!(m in at)) continue;
      const [x1, y1] = [at[n][0] + W, at[n][1] + H / 2], [x2, y2] = [at[m][0], at[m][1] + H / 2];
      const dx = (x2 - x1) / 2;
      svg.append(sv("path", { class: "edge", "marker-end": "url(#arrow)",
        d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}` }));
    }
  }
  for (const n of Object.keys(stages)) {
    const g = sv("g", { class: "node", "data-stage": n,
      transform: `translate(${at[n][0]},${at[n][1]})` });
    g.append(sv("rect", { width: W, height: H, rx: 8, class: "box" }));
    g.append(sv("text", { x: 10, y: 20, class: "name" }, n));
    g.append(sv("text", { x: W - 10, y: 20, "text-anchor": "end", "data-f": "replicas" }));
    g.append(sv("text", { x: 10, y: 40, "data-f": "rates" }));
    g.append(sv("text", { x: 10, y: 58, "data-f": "load" }));
    g.append(sv("rect", { x: 10, y: 68, width: W - 20, height: 6, class: "track", rx: 3 }));
    g.append(sv("rect", { x: 10, y: 68, width: 0, height: 6, class: "bar", rx: 3 }));
    svg.append(g);
  }
}

function buildTable(stages) {
  const body = $("#stages tbody");
  body.replaceChildren();
  for (const n of Object.keys(stages)) {
    const tr = el("tr");
    const cell = (field) => el("td", { "data-stage": n, "data-field": field });
    tr.append(el("td", {}, n));
    const repl = cell("replicas");
    const minus = el("button", { class: "small", "data-command": "scale", "data-stage": n,
      "data-delta": "-1", title: "one replica less" }, "\\u2212");
    const plus = el("button", { class: "small", "data-command": "scale", "data-stage": n,
      "data-delta": "1", title: "one replica more" }, "+");
    repl.append(minus, " ", el("span"), " ", plus);
    tr.append(repl);
    for (const f of ["records_in", "records_out", "rate_in", "rate_out"]) tr.append(cell(f));
    const spark = cell("spark");
    spark.className = "spark";
    spark.append(sv("svg", { width: 120, height: 22, viewBox: "0 0 120 22" }));
    spark.firstChild.append(sv("polyline", { points: "" }));
    tr.append(spark);
    for (const f of ["backlog", "busy", "p50", "p99", "errors", "cpu", "rss", "progress"])
      tr.append(cell(f));
    body.append(tr);
  }
}

function put(n, field, text, value) {
  const td = document.querySelector(`td[data-stage="${CSS.escape(n)}"][data-field="${field}"]`);
  if (field === "replicas") td.querySelector("span").textContent = text;
  else td.textContent = text;
  td.dataset.value = value;
}

function render() {
  const st = status;
  const names = Object.keys(st.stages);
  const now = names.map((n) => n + ">" + st.stages[n].next.join(",")).join(";");
  if (now !== shape) { shape = now; drawGraph(st.stages); buildTable(st.stages); }
  document.title = `${st.frame} \\u2014 pipeline web`;
  $("#title").textContent = `frame ${st.frame}`;
  const state = ended ? "stopped" : st.state;
  $("#state").textContent = state;
  $("#state").className = "badge " + state;
  $("#uptime").textContent = `up ${clock(st.uptime)} \\u00b7 pid ${st.pid}`;
  const r = st.rescale;
  $("#rescale").textContent = r ? `scaling ${r.stage} ${r.from} \\u2192 ${r.to}: ${r.phase}` : "";
  for (const n of names) {
    const s = st.stages[n];
    const repl = s.ended ? "ended" : `${s.alive}/${s.desired}`;
    const g = document.querySelector(`g.node[data-stage="${CSS.escape(n)}"]`);
    g.classList.toggle("ended", s.ended);
    g.querySelector('[data-f="replicas"]').textContent = s.ended ? "ended" : `\\u00d7 ${repl}`;
    g.querySelector('[data-f="rates"]').textContent =
      `in ${short(s.rate_in)}/s \\u00b7 out ${short(s.rate_out)}/s`;
    g.querySelector('[data-f="load"]').textContent =
      `backlog ${s.backlog} \\u00b7 busy ${pct(s.busy)}`;
    const load = Math.min(1, s.busy / Math.max(1, s.alive));
    const bar = g.querySelector(".bar");
    bar.setAttribute("width", (W - 20) * load);
    bar.classList.toggle("hot", load > 0.8);
    put(n, "replicas", repl, s.desired);
    put(n, "records_in", whole(s.records_in), s.records_in);
    put(n, "records_out", whole(s.records_out), s.records_out);
    put(n, "rate_in", short(s.rate_in), s.rate_in);
    put(n, "rate_out", short(s.rate_out), s.rate_out);
    put(n, "backlog", whole(s.backlog), s.backlog);
    put(n, "busy", pct(s.busy), s.busy);
    put(n, "p50", ms(s.p50), s.p50);
    put(n, "p99", ms(s.p99), s.p99);
    put(n, "errors", whole(s.errors), s.errors);
    put(n, "cpu", pct(s.cpu), s.cpu);
    put(n, "rss", bytes(s.rss), s.rss);
    const p = s.progress;
    put(n, "progress", p ? pct(p[0] / p[1]) : "", p ? p[0] / p[1] : "");
    const series = rates[n] || [], top = Math.max(1, ...series);
    const pts = series.map((v, i) => `${120 - (series.length - 1 - i)},${21 - (v / top) * 19}`);
    document.querySelector(`td[data-stage="${CSS.escape(n)}"].spark polyline`)
      .setAttribute("points", pts.join(" "));
    document.querySelector(`td[data-stage="${CSS.escape(n)}"].spark svg`)
      .setAttribute("aria-label", `peak ${short(top)}/s`);
  }
  $("#hosts").textContent = (st.hosts || []).length === 0 ? "" : "hosts: " + st.hosts.map(
    (h) => `${h.name}${h.group ? " (" + h.group + ")" : ""} ${h.state}, ${h.workers} worker(s)`
  ).join(" \\u00b7 ");
  $("#hosts").classList.toggle("lost", (st.hosts || []).some((h) => h.state === "lost"));
  $("#errors").textContent = (st.errors || []).map((e) => "error: " + e).join("\\n");
  document.querySelectorAll("button[data-command]").forEach((b) => {
    const s = st.stages[b.dataset.stage];
    b.disabled = ended || (s !== undefined && (s.ended ||
      (b.dataset.delta === "-1" && s.desired <= 1)));
  });
}

function remember(stages) {
  for (const [n, s] of Object.entries(stages)) {
    const series = rates[n] = rates[n] || [];
    series.push(rateOf(s));
    if (series.length > HISTORY) series.shift();
  }
}

function say(text, kind) {
  const m = $("#message");
  m.textContent = text;
  m.className = kind;
}

async function control(command, args) {
  const headers = { "Content-Type": "application/json" };
  const token = tokenField.value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  let reply;
  try {
    const resp = await fetch("api/control", { method: "POST", headers,
      body: JSON.stringify({ command, args }) });
    reply = await resp.json();
  } catch (err) {
    say(`${command}: no answer from the monitor (${err})`, "refused");
    return;
  }
  if (reply.status === "ok") {
    const r = reply.result || {};
    say(command === "scale" ? `scale: ${r.stage} ${r.from} \\u2192 ${r.to} replicas`
      : `${command}: done`, "done");
  } else {
    say(`${command} refused: ${reply.reason} (code ${reply.code})`, "refused");
  }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-command]");
  if (!b || b.disabled) return;
  const command = b.dataset.command;
  if (command !== "scale") { control(command, {}); return; }
  const s = status.stages[b.dataset.stage];
  control("scale", { stage: b.dataset.stage, replicas: s.desired + Number(b.dataset.delta) });
});

const events = new EventSource("api/events");
events.addEventListener("history", (ev) => {
  for (const h of JSON.parse(ev.data))
    for (const [n, r] of Object.entries(h.rates)) {
      const series = rates[n] = rates[n] || [];
      series.push(r[0] || r[1]);
    }
  for (const n in rates) rates[n] = rates[n].slice(-HISTORY);
});
events.addEventListener("status", (ev) => {
  status = JSON.parse(ev.data);
  remember(status.stages);
  render();
});
events.addEventListener("end", () => {
  ended = true;
  events.close();
  const e = $("#ended");
  e.textContent = "The frame has stopped: these are its last figures. " +
    "The monitor server exits now.";
  e.style.display = "block";
  if (status) render();
});
events.onerror = () => {
  if (!ended) say("lost the connection to the monitor; retrying\\u2026", "refused");
};
events.onopen = () => { if (!ended && $("#message").textContent.startsWith("lost")) say("", ""); };
</script>
</body>
</html>
"""
