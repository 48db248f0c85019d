// minirun dashboard: reads the manager's JSON API (docs/api/openapi.yaml) and redraws.
// No framework and no build step. Live: the events endpoint is long-polled (an event wakes the
// page at once) and the state is also read every second (stats for the sparklines).
"use strict";

const KEEP_STOPPED_S = 120;   // a STOPPED or LOST task stays on its worker's card this long
const SAMPLES = 60;           // points in a sparkline (one a second)
const POLL_MS = 1000;

const state = {
  token: null, cluster: null, tasks: [], services: [], selected: null, seq: 0,
  samples: new Map(),   // task id -> [{t, cpu (cores), mem (bytes)}]
  last: new Map(),      // task id -> {t, cpu_seconds}
  firstRenderMs: null, renders: 0, lastRenderMs: 0, connected: false,
};
window.minirunDashboard = state;   // the browser tests read the timings from here

// -- the token: from the address's fragment (#token=...), kept for this tab only -------------
function takeToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("minirun-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("minirun-token");
}

class ApiError extends Error {}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = (data && data.error && data.error.message) || ("HTTP " + r.status);
    throw new ApiError(msg);
  }
  return data;
}

// -- small DOM helpers (text is always set as text: names and attributes come from users) ----
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function sparkline(points, key, max, color, w = 44, h = 14) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("class", "spark " + key);
  if (points.length > 1) {
    const line = document.createElementNS(SVG, "polyline");
    const step = w / (SAMPLES - 1);
    const x0 = w - step * (points.length - 1);
    line.setAttribute("points", points.map((p, i) =>
      `${(x0 + i * step).toFixed(1)},${(h - 1 - (h - 2) * Math.min(1, p[key] / (max || 1))).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", color);
    line.setAttribute("stroke-width", "1.2");
    svg.append(line);
  }
  return svg;
}

function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); }

function bar(cls, used, total, label) {
  const b = el("div", { class: "bar " + cls, title: label }, el("i"), el("span", {}, label));
  b.firstChild.style.width = Math.min(100, total ? (100 * used / total) : 0).toFixed(1) + "%";
  return b;
}

// LOST is a STOPPED task whose worker was lost (the manager marks it "lost")
function taskState(t) { return t.status === "STOPPED" && t.lost ? "LOST" : t.status; }

function shown(t, now) {
  return t.status !== "STOPPED" || (t.stopped_at && now - t.stopped_at < KEEP_STOPPED_S);
}

// -- stats: CPU from the growth of cpu_seconds between two reads, memory as read --------------
function record(cluster) {
  const now = Date.now() / 1000;
  const seen = new Set();
  for (const w of cluster.workers) {
    const tasks = (w.stats && w.stats.tasks) || {};
    for (const [id, s] of Object.entries(tasks)) {
      seen.add(id);
      const prev = state.last.get(id);
      state.last.set(id, { t: now, cpu: s.cpu_seconds });
      if (!prev || now - prev.t < 0.2) continue;
      const list = state.samples.get(id) || [];
      list.push({ t: now, cpu: Math.max(0, (s.cpu_seconds - prev.cpu) / (now - prev.t)), mem: s.memory_usage });
      if (list.length > SAMPLES) list.shift();
      state.samples.set(id, list);
    }
  }
  for (const id of state.last.keys()) if (!seen.has(id)) state.last.delete(id);
}

// -- drawing -----------------------------------------------------------------------------------
function taskChip(t) {
  const s = taskState(t);
  const pts = state.samples.get(t.id) || [];
  const maxMem = Math.max(1048576, ...pts.map(p => p.mem));   // shapes, scaled to their own peak
  const title = `${t.id} ${s}${t.service ? " service " + t.service : ""} ${t.taskdef}` +
    (t.stop_reason && t.status === "STOPPED" ? "\n" + t.stop_reason : "") +
    (pts.length ? `\ncpu ${(pts[pts.length - 1].cpu * 100).toFixed(1)} %, memory ${mib(pts[pts.length - 1].mem)}` : "");
  const chip = el("span", {
    class: "task" + (state.selected === t.id ? " selected" : ""), "data-id": t.id, "data-state": s,
    "data-service": t.service || "", title, onclick: () => select(t.id),
  }, t.id.slice(0, 6));
  if (t.status === "RUNNING") {
    chip.append(sparkline(pts, "cpu", Math.max(0.05, ...pts.map(p => p.cpu)), "#fff"),
                sparkline(pts, "mem", maxMem, "#e5dbff"));
  }
  return chip;
}

function workerCard(w, tasks) {
  const attrs = Object.entries(w.attributes || {}).map(([k, v]) => el("span", { class: "attr" }, `${k}=${v}`));
  const used = (w.stats && w.stats.memory_usage) || 0;
  const health = w.status === "LOST" ? `no heartbeat for ${w.lastHeartbeat}s`
    : `heartbeat ${w.lastHeartbeat}s ago`;
  const card = el("div", { class: "worker", "data-id": w.id, "data-status": w.status },
    el("div", { class: "head" }, el("b", {}, w.id), el("span", { class: "badge", "data-status": w.status }, w.status),
       el("span", { class: "health" }, health)),
    bar("cpu", w.reservedCpu, w.cpu, `cpu reserved ${w.reservedCpu}/${w.cpu} units`),
    bar("mem", w.reservedMemory, w.memory, `memory reserved ${w.reservedMemory}/${w.memory} MiB, used ${mib(used)}`),
    el("div", { class: "attrs" }, attrs),
    el("div", { class: "tasks" }, tasks.map(taskChip)));
  if (w.status === "ACTIVE") {
    card.querySelector(".head").append(el("button", {
      class: "drain", onclick: () => ask(`Drain worker ${w.id}? Its service tasks move to other workers.`, null,
        () => api("POST", `/v1/workers/${encodeURIComponent(w.id)}/drain`, {})),
    }, "Drain"));
  }
  return card;
}

function deployment(s, tasks) {
  const d = (s.deployments || [])[s.deployments.length - 1];
  if (!d) return "";
  const old = tasks.filter(t => t.service === s.name && t.status !== "STOPPED" && t.taskdef !== s.taskdef).length;
  return `${d[1]} × ${d[2]} since ${clock(d[0])}` + (old ? ` — in progress, ${old} old task(s) left` : " — complete");
}

function serviceRow(s) {
  return el("tr", { class: "service", "data-name": s.name },
    el("td", {}, s.name), el("td", {}, s.taskdef),
    el("td", { class: "desired" }, s.desired), el("td", { class: "running" }, s.running),
    el("td", { class: "pending" }, s.pending), el("td", { class: "deployment" }, deployment(s, state.tasks)),
    el("td", {}, el("button", {
      class: "scale", onclick: () => ask(`Scale service ${s.name} (now ${s.desired} desired) to:`, s.desired,
        (n) => api("PATCH", `/v1/services/${encodeURIComponent(s.name)}`, { desiredCount: n })),
    }, "Scale…")));
}

// The page is redrawn every second: while a mouse button is held, it waits, so that a press and
// its release land on the same button (a click) rather than on a replaced one.
let held = false;
let missed = false;
document.addEventListener("pointerdown", () => { held = true; }, true);
function release() {
  held = false;
  if (missed) setTimeout(() => { missed = false; render(); }, 0);   // after the click is handled
}
document.addEventListener("pointerup", release, true);
document.addEventListener("pointercancel", release, true);
window.addEventListener("blur", release);       // released outside the window

function render() {
  const c = state.cluster;
  if (!c) return;
  if (held) { missed = true; return; }
  const t0 = performance.now();
  const now = Date.now() / 1000;
  const byWorker = new Map();
  const unplaced = [];
  for (const t of state.tasks) {
    if (!shown(t, now)) continue;
    if (t.worker) {
      if (!byWorker.has(t.worker)) byWorker.set(t.worker, []);
      byWorker.get(t.worker).push(t);
    } else if (t.status !== "STOPPED") unplaced.push(t);
  }
  const cards = c.workers.filter(w => w.status !== "STOPPED" || (byWorker.get(w.id) || []).length)
    .map(w => workerCard(w, byWorker.get(w.id) || []));
  document.getElementById("workers").replaceChildren(...cards);
  document.getElementById("unplaced").replaceChildren(...unplaced.map(taskChip));
  document.querySelector("#services tbody").replaceChildren(...state.services.map(serviceRow));
  const live = c.workers.filter(w => w.status === "ACTIVE" || w.status === "DRAINING").length;
  document.getElementById("summary").textContent =
    `${live} worker(s) · ${c.tasks.RUNNING} running · ${c.tasks.PENDING} pending · ${c.services} service(s)` +
    ` · manager pid ${c.manager.pid}, up ${Math.round(c.manager.uptime)} s`;
  if (state.selected) renderDetail();
  state.renders += 1;
  state.lastRenderMs = performance.now() - t0;
  if (state.firstRenderMs === null) state.firstRenderMs = performance.now();
  document.body.dataset.rendered = String(state.renders);
}

// -- the selected task: its record, its stats and its placement decision (`minirun explain`) ---
let detailData = null;

async function select(id) {
  state.selected = id;
  detailData = null;
  render();
  try {
    const [task, why] = await Promise.all([api("GET", `/v1/tasks/${id}`), api("GET", `/v1/tasks/${id}/explain`)]);
    if (state.selected === id) { detailData = { task, why }; renderDetail(); }
  } catch (e) { problem(e.message); }
}

function renderDetail() {
  const box = document.getElementById("detail");
  const t = state.tasks.find(x => x.id === state.selected) || (detailData && detailData.task);
  if (!t) return;
  const pts = state.samples.get(t.id) || [];
  const lastS = pts[pts.length - 1];
  const kids = [el("h2", {}, "Task " + t.id),
    el("dl", {},
      el("dt", {}, "state"), el("dd", { class: "state" }, taskState(t)),
      el("dt", {}, "worker"), el("dd", {}, t.worker || "—"),
      el("dt", {}, "service"), el("dd", {}, t.service || "—"),
      el("dt", {}, "definition"), el("dd", {}, t.taskdef),
      el("dt", {}, "reserved"), el("dd", {}, `${t.cpu} cpu units, ${t.memory} MiB`),
      el("dt", {}, "health"), el("dd", {}, t.health || "—"),
      t.stop_reason ? [el("dt", {}, "stop reason"), el("dd", {}, t.stop_reason)] : null,
      t.pending_reason ? [el("dt", {}, "pending"), el("dd", {}, t.pending_reason)] : null,
      el("dt", {}, "usage"), el("dd", { class: "spark-legend" },
        sparkline(pts, "cpu", Math.max(0.05, ...pts.map(p => p.cpu)), "var(--cpu)", 120, 28),
        el("span", { class: "cpu" }, lastS ? ` cpu ${(lastS.cpu * 100).toFixed(1)} % ` : " cpu —"),
        sparkline(pts, "mem", Math.max(1048576, ...pts.map(p => p.mem)), "var(--mem)", 120, 28),
        el("span", { class: "mem" }, lastS ? ` ${mib(lastS.mem)}` : " memory —")))];
  if (t.desired === "RUNNING") {
    kids.push(el("button", {
      class: "stop", onclick: () => ask(`Stop task ${t.id}?` + (t.service ? ` Service ${t.service} will start a replacement.` : ""),
        null, () => api("POST", `/v1/tasks/${t.id}/stop`, { reason: "Task stopped from the dashboard" })),
    }, "Stop task"));
  }
  const d = detailData && detailData.task.id === t.id ? detailData.why.decision : null;
  if (detailData && detailData.task.id === t.id) {
    kids.push(el("h2", {}, "Placement"));
    if (!d) kids.push(el("p", { class: "hint" }, "no placement decision recorded yet"));
    else {
      kids.push(el("p", { class: "decision" }, d.worker ? `placed on ${d.worker} — ${d.reason}` : `PENDING — ${d.reason}`));
      kids.push(el("table", { class: "explain" },
        el("thead", {}, el("tr", {}, ["WORKER", "RESULT", "SCORE", "WHY"].map(h => el("th", {}, h)))),
        el("tbody", {}, d.candidates.map(c => el("tr", { class: c.kept ? "kept" : "dropped" },
          el("td", {}, c.worker), el("td", {}, c.kept ? "kept" : "dropped"),
          el("td", {}, c.score.map(x => typeof x === "number" ? String(+x.toFixed(6)) : String(x)).join(" ")),
          el("td", {}, c.why))))));
    }
  }
  box.replaceChildren(...kids);
}

// -- confirmation: every action goes through this dialog ---------------------------------------
function ask(text, count, action) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const field = document.getElementById("confirm-field");
  const input = document.getElementById("confirm-input");
  const error = document.getElementById("confirm-error");
  field.hidden = count === null;
  input.value = count === null ? "" : count;
  input.required = count !== null;
  error.textContent = "";
  dlg.onclose = null;
  dlg.returnValue = "";
  dlg.showModal();
  if (count !== null) input.select();
  dlg.onclose = async () => {
    if (dlg.returnValue !== "ok") return;
    let n = null;
    if (count !== null) {
      n = Number(input.value);
      if (!Number.isInteger(n) || n < 0 || n > 1000) { problem("the desired count must be a whole number from 0 to 1000"); return; }
    }
    try { await action(n); problem(null); await refresh(); }
    catch (e) { problem(e.message); }
  };
}

function problem(msg) {
  const p = document.getElementById("problem");
  p.hidden = !msg;
  p.textContent = msg || "";
}

function connection(ok) {
  state.connected = ok;
  document.getElementById("conn").dataset.state = ok ? "live" : "down";
  document.getElementById("conn").title = ok ? "live" : "the manager does not answer";
}

// -- the loops ---------------------------------------------------------------------------------
let refreshing = null;
async function refresh() {
  if (refreshing) return refreshing;     // one read at a time; callers share it
  refreshing = (async () => {
    try {
      const [cluster, tasks, services] = await Promise.all([
        api("GET", "/v1/cluster"), api("GET", "/v1/tasks?all=1"), api("GET", "/v1/services")]);
      state.cluster = cluster; state.tasks = tasks; state.services = services;
      record(cluster);
      connection(true);
      render();
    } catch (e) {
      connection(false);
      if (e instanceof ApiError) problem(e.message);
    } finally { refreshing = null; }
  })();
  return refreshing;
}

function addEvents(events) {
  const list = document.getElementById("events");
  for (const e of events) {
    state.seq = Math.max(state.seq, e.seq);
    list.prepend(el("li", { "data-seq": e.seq, "data-kind": e.kind },
      el("time", {}, clock(e.time)), el("span", { class: "subject" }, e.subject), e.message));
  }
  while (list.children.length > 300) list.lastChild.remove();
}

async function followEvents() {
  try { addEvents(await api("GET", "/v1/events?since=-50")); } catch (e) { /* retried below */ }
  for (;;) {
    try {
      const found = await api("GET", `/v1/events?since=${state.seq}&wait=10`);
      if (found.length) { addEvents(found); refresh(); }
    } catch (e) {
      connection(false);
      await new Promise(r => setTimeout(r, 1000));
    }
  }
}

function start() {
  state.token = takeToken();
  if (!state.token) {
    problem("no token: open the address that `minirun dashboard` prints (it ends in #token=...)");
    document.getElementById("conn").dataset.state = "down";
    return;
  }
  refresh();
  setInterval(refresh, POLL_MS);
  followEvents();
}

start();
