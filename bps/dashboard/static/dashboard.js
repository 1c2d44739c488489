// skybatch dashboard: polls the JSON API and redraws what changed. No libraries, no network but
// this server. Every value from the API is inserted as text (never as HTML): log tails and
// configs can hold anything.
"use strict";

const REFRESH_MS = Math.max(500, 1000 * Number(document.body.dataset.refresh || 2));
const TOKEN = new URLSearchParams(location.search).get("token");
const STATES = ["UNREADY", "READY", "PENDING", "RUNNING", "HELD", "SUCCEEDED", "FAILED", "PRUNED", "DELETED"];
const last = { list: "", detail: "", selected: null };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function badge(state) {
  return h("span", { className: "state state-" + state, "data-state": state }, state);
}

function bar(counts, total) {
  const el = h("div", { className: "bar", title: STATES.filter(st => counts[st]).map(st => `${st} ${counts[st]}`).join(", ") });
  for (const st of STATES) {
    if (counts[st]) el.append(h("span", { className: "seg-" + st, style: { width: (100 * counts[st] / total) + "%" } }));
  }
  return el;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

async function getJSON(path) {
  const headers = TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

function selectRun(runId) {
  if (runId && location.hash !== "#run=" + runId) location.hash = "run=" + runId;
}

function selectedFromHash() {
  const match = /^#run=([\w-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

// -- the list of runs -------------------------------------------------------------------------
function renderList(data) {
  document.getElementById("runs-dir").textContent = "Runs index: " + data.runs_dir;
  const body = document.querySelector("#run-table tbody");
  body.replaceChildren();
  for (const run of data.runs) {
    const progress = run.total
      ? h("div", {}, bar(run.counts, run.total), h("span", { className: "muted" }, `${run.finished}/${run.total} jobs finished`))
      : h("span", { className: "muted" }, run.error || "no jobs reported");
    body.append(h("tr", {
      className: "run-row" + (run.run_id === last.selected ? " selected" : ""),
      "data-run-id": run.run_id,
      onclick: () => selectRun(run.run_id),
    },
      h("td", { className: "mono" }, run.run_id),
      h("td", {}, badge(run.state)),
      h("td", {}, run.payload),
      h("td", {}, progress),
      h("td", { title: when(run.submit_time) }, when(run.submit_time).slice(5, 16))));
  }
  document.getElementById("no-runs").hidden = data.runs.length > 0;
}

// -- one run in full --------------------------------------------------------------------------
function renderFacts(run) {
  document.getElementById("run-title").replaceChildren("Run ", h("span", { className: "mono" }, run.run_id), " ", badge(run.state));
  const message = document.getElementById("run-message");
  message.hidden = !(run.message || run.error);
  message.textContent = [run.message, run.error].filter(Boolean).join(" ");
  const facts = [
    ["Payload", run.payload], ["Operator", run.operator], ["Submitted", when(run.submit_time)],
    ["State recorded", when(run.updated)], ["Engine", run.wms],
    ["Output", `${run.output} (run ${run.output_run})`], ["Repository", run.butler_config],
    ["Submit directory", run.submit_dir], ["Jobs", `${run.finished} of ${run.total} finished`],
  ];
  document.getElementById("run-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function renderLabels(run) {
  const shown = STATES.filter(st => run.labels.some(l => l.counts[st]));
  const table = document.getElementById("labels");
  table.tHead.replaceChildren(h("tr", {}, h("th", {}, "Task"), h("th", { className: "wide" }, "Progress"),
    shown.map(st => h("th", { className: "num" }, st)), h("th", { className: "num" }, "TOTAL")));
  table.tBodies[0].replaceChildren(...run.labels.map(l => h("tr", { "data-label": l.label },
    h("td", {}, l.label), h("td", { className: "wide" }, bar(l.counts, l.total)),
    shown.map(st => h("td", { className: "num", "data-state": st }, l.counts[st])),
    h("td", { className: "num", "data-state": "TOTAL" }, l.total))));
}

function renderFailures(run) {
  const box = document.getElementById("failures");
  if (!run.failures.length) {
    box.replaceChildren(h("p", { className: "muted" }, "No failed or held jobs."));
    return;
  }
  box.replaceChildren(...run.failures.map(group => h("div", { className: "failure-group", "data-label": group.label, "data-count": group.count },
    h("h4", {}, h("span", { className: "count" }, `${group.count} × ${group.label}`), ": ", h("span", { className: "exception mono" }, group.exception)),
    group.jobs.map(job => h("details", { className: "failed-job", "data-job": job.name },
      h("summary", {}, h("span", { className: "mono" }, job.name), " ", badge(job.state),
        job.exit_code !== null ? ` exit code ${job.exit_code}` : "", `, ${job.attempts} attempt(s)`,
        job.log ? h("span", { className: "muted" }, " — log ", h("span", { className: "mono" }, job.log)) : ""),
      h("pre", { className: "tail" }, job.tail.length ? job.tail.join("\n") : "(the log is empty or missing)"))),
    group.count > group.jobs.length ? h("p", { className: "muted" }, `… and ${group.count - group.jobs.length} more`) : "")));
}

function renderPlot(run) {
  const box = document.getElementById("plot");
  const times = run.finished_times.map(t => Date.parse(t)).filter(t => !isNaN(t));
  if (!times.length) {
    const why = run.finished ? "this run's engine records no job end times" : "no job has ended yet";
    box.replaceChildren(h("p", { className: "muted", id: "plot-empty" }, why));
    return;
  }
  const W = 640, H = 220, L = 46, R = 12, T = 12, B = 34;
  const start = Math.min(Date.parse(run.submit_time) || times[0], times[0]);
  const running = !["SUCCEEDED", "FAILED", "DELETED"].includes(run.state);
  const end = Math.max(times[times.length - 1], running ? Date.now() : 0, start + 1000);
  const top = Math.max(run.total, times.length, 1);
  const x = t => L + (W - L - R) * (t - start) / (end - start);
  const y = n => H - B - (H - T - B) * n / top;
  let d = `M${x(start).toFixed(1)},${y(0).toFixed(1)}`;
  times.forEach((t, i) => { d += ` H${x(t).toFixed(1)} V${y(i + 1).toFixed(1)}`; });
  d += ` H${x(end).toFixed(1)}`;
  const svg = s("svg", { id: "finished-plot", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "data-points": times.length, "aria-label": `${times.length} of ${run.total} jobs ended over time` });
  svg.append(
    s("path", { class: "area", d: `${d} V${y(0).toFixed(1)} Z` }),
    s("path", { class: "series", d }),
    s("line", { class: "axis", x1: L, y1: y(0), x2: W - R, y2: y(0) }),
    s("line", { class: "axis", x1: L, y1: T, x2: L, y2: y(0) }),
    s("text", { x: L - 6, y: y(top) + 4, "text-anchor": "end" }, String(top)),
    s("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
    s("text", { x: L, y: H - 12 }, when(new Date(start).toISOString())),
    s("text", { x: W - R, y: H - 12, "text-anchor": "end" }, when(new Date(end).toISOString())),
    s("text", { x: (L + W - R) / 2, y: H - 12, "text-anchor": "middle" }, `${times.length} of ${run.total} jobs ended`));
  box.replaceChildren(svg);
}

function renderMemory(run) {
  const rows = run.labels.map(l => {
    const req = l.memory_requested_mb, used = l.memory_used_mb;
    let cell;
    if (used === null) cell = h("span", { className: "muted" }, "not measured");
    else if (!req) cell = h("span", {}, `${used} MB`);
    else {
      const over = used > req;
      cell = h("div", { className: "bar", title: `${used} of ${req} MB` },
        h("span", { className: over ? "seg-over" : "seg-used", style: { width: Math.min(100, 100 * used / req) + "%" } }));
    }
    return h("tr", { "data-label": l.label }, h("td", {}, l.label),
      h("td", { className: "num" }, req === null ? "—" : req),
      h("td", { className: "num" }, used === null ? "—" : used), h("td", { className: "wide" }, cell));
  });
  document.querySelector("#memory tbody").replaceChildren(...rows);
}

function renderDetail(run) {
  document.getElementById("detail").hidden = false;
  renderFacts(run);
  renderLabels(run);
  renderFailures(run);
  renderPlot(run);
  renderMemory(run);
  document.getElementById("config").textContent = run.config;
}

// -- polling ----------------------------------------------------------------------------------
let timer = null;
async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("status");
  try {
    const list = await getJSON("/api/runs");
    last.selected = selectedFromHash() || (list.runs[0] && list.runs[0].run_id) || null;
    const listText = JSON.stringify(list.runs) + last.selected;
    if (listText !== last.list) { renderList(list); last.list = listText; }
    if (last.selected) {
      const run = await getJSON("/api/runs/" + encodeURIComponent(last.selected));
      const { generated, ...stable } = run;  // redraw only on a real change: open <details> stay open
      const text = JSON.stringify(stable);
      if (text !== last.detail) { renderDetail(run); last.detail = text; }
      else if (run.state === "RUNNING") renderPlot(run);  // the time axis runs on
    } else {
      document.getElementById("detail").hidden = true;
    }
    status.className = "status";
    status.textContent = `updated ${when(list.generated)} · refreshes every ${REFRESH_MS / 1000} s`;
  } catch (err) {
    status.className = "status error";
    status.textContent = "cannot update: " + err.message;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", () => { last.list = ""; refresh(); });
refresh();
