// asched dashboard: polls the JSON API and draws the page.
// Every value from the server is put in the page as text (textContent, SVG
// attributes); nothing is ever parsed as HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["CREATED", "QUEUED", "SCHEDULED", "PAUSED", "RUNNING", "RETRYING",
                  "FAILED", "COMPLETED", "CANCELLED"];
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                   "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const CHARTED = [["tasks_per_minute", "tasks / min"], ["success_rate_1h", "success rate (1 h)"],
                   ["running", "running"], ["utilization", "utilization"]];
  const PAGE = 50;
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const $ = (id) => document.getElementById(id);
  const state = { offset: 0, filters: {}, detail: null, token: null, typeColors: new Map() };

  // -- building elements, text only ------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function fill(table, headers, rows) {
    table.replaceChildren();
    table.append(el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const cells of rows) body.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none")));
    table.append(body);
  }
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
  function fmtAge(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function colorOf(type) {
    if (!state.typeColors.has(type)) state.typeColors.set(type, PALETTE[state.typeColors.size % PALETTE.length]);
    return state.typeColors.get(type);
  }

  // -- talking to the API -----------------------------------------------------------
  function headers() {
    const h = { "Content-Type": "application/json" };
    const token = state.token || meta("asched-page-token");
    if (token) h["X-Asched-Token"] = token;
    const actor = $("actor-input").value.trim();
    if (actor) h["X-Asched-Actor"] = actor;
    return h;
  }
  async function get(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) { $("token-form").hidden = false; throw new Error("token needed"); }
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    return response.json();
  }
  async function act(path, label) {
    const response = await fetch(path, { method: "POST", headers: headers(), body: "{}" });
    const body = await response.json();
    setStatus(response.ok ? `${label}: done` : `${label}: ${body.error}`);
    refreshAll();
    if (state.detail) openTask(state.detail);
  }
  const setStatus = (text) => { $("status").textContent = text; };
  const enc = encodeURIComponent;

  // -- overview: metrics, counts, running, keys, breakers, workers ----------------------
  function drawBars(box, counts, order) {
    box.replaceChildren();
    const entries = Object.entries(counts || {});
    if (order) entries.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
    const peak = Math.max(1, ...entries.map(([, n]) => n));
    for (const [name, n] of entries) {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${(100 * n) / peak}%`;
      box.append(el("div", { class: "row", data: { name } },
        el("span", { class: "label" }, name), el("span", { class: "track" }, bar),
        el("span", { class: "num" }, n)));
    }
    if (!entries.length) box.append(el("p", { class: "muted" }, "no tasks"));
  }
  function drawOverview(o) {
    $("mode").textContent = o.mode === "live" ? "live scheduler" : "store";
    $("updated").textContent = `updated ${new Date(o.now * 1000).toLocaleTimeString()}`;
    const dl = $("metrics");
    dl.replaceChildren();
    for (const [key, value] of Object.entries(o.metrics)) dl.append(el("dt", {}, key), el("dd", {}, fmtValue(value)));
    drawBars($("by-state"), o.counts.by_state, STATES);
    drawBars($("by-priority"), o.counts.by_priority, ["CRITICAL", "HIGH", "MEDIUM", "LOW", "BACKGROUND"]);
    drawBars($("by-type"), o.counts.by_type);
    const types = $("type-list");
    types.replaceChildren(...Object.keys(o.counts.by_type).map((t) => el("option", { value: t })));
    fill($("running"), ["id", "type", "key", "age", ""], o.running.map((t) => [
      taskLink(t.id), t.type, t.concurrency_key || "–", fmtAge(t.age_s),
      button("Cancel", () => act(`api/tasks/${enc(t.id)}/cancel`, `cancel ${t.id}`))]));
    fill($("key-load"), ["key", "running"], o.key_load.map((k) => [k.key, k.running]));
    fill($("breakers"), ["breaker", "state"], Object.entries(o.breakers).map(([n, s]) => [n, s]));
    fill($("workers"), ["worker", "tasks"], o.workers.map((w) => [w.id, w.this_process
      ? `${w.running_tasks} running of ${w.max_concurrency} (this process)`
      : `${w.leased_tasks} leased`]));
  }
  const button = (label, onclick) => el("button", { type: "button", onclick, class: "small" }, label);
  const taskLink = (id) => el("a", { href: "#", class: "task-link", onclick: (e) => { e.preventDefault(); openTask(id); } }, id);

  // -- schedules ----------------------------------------------------------------------
  function describeTrigger(t) {
    if (!t) return "–";
    if (t.kind === "cron") return `cron ${t.expression} (${t.timezone})`;
    if (t.kind === "interval") return `every ${t.seconds} s`;
    return t.kind;
  }
  function drawSchedules(list) {
    fill($("schedules"), ["id", "type", "trigger", "state", "next fire", "last fire", "fired", ""], list.map((s) => [
      s.id, s.task_type, describeTrigger(s.trigger), s.state, fmtTime(s.next_fire), fmtTime(s.last_fire), s.fired,
      s.state === "paused"
        ? button("Resume", () => act(`api/schedules/${enc(s.id)}/resume`, `resume schedule ${s.id}`))
        : button("Pause", () => act(`api/schedules/${enc(s.id)}/pause`, `pause schedule ${s.id}`))]));
  }

  // -- forecast chart: stacked bars by type per bucket, busy-time line ------------------
  function drawForecast(f) {
    const box = $("forecast-chart");
    const W = 720, H = 220, L = 40, R = 40, T = 10, B = 30;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "forecast", "aria-label": "forecast" });
    const buckets = f.buckets || [];
    const origin = Date.parse(f.generated_at);
    const span = f.lookahead_hours * 3600 * 1000;
    const slots = Math.max(1, Math.ceil(f.lookahead_hours * 3600 / f.bucket_s) + 1);
    const start0 = Math.floor(origin / (f.bucket_s * 1000)) * f.bucket_s * 1000;
    const slotW = (W - L - R) / slots;
    const peak = Math.max(1, ...buckets.map((b) => b.total));
    const busyPeak = Math.max(1, ...buckets.map((b) => b.expected_busy_s));
    chart.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    chart.append(svg("text", { x: L - 4, y: T + 10, "text-anchor": "end", class: "tick" }, peak));
    chart.append(svg("text", { x: L - 4, y: H - B, "text-anchor": "end", class: "tick" }, 0));
    for (let i = 0; i <= slots; i += Math.max(1, Math.round(slots / 6))) {
      const at = new Date(start0 + i * f.bucket_s * 1000);
      chart.append(svg("text", { x: L + i * slotW, y: H - 10, "text-anchor": "middle", class: "tick" },
        at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    }
    const busyPoints = [];
    for (const b of buckets) {
      const index = Math.round((Date.parse(b.start) - start0) / (f.bucket_s * 1000));
      const x = L + index * slotW;
      let y = H - B;
      for (const [type, n] of Object.entries(b.by_type).sort()) {
        const h = ((H - B - T) * n) / peak;
        y -= h;
        const rect = svg("rect", { x: x + 1, y, width: Math.max(1, slotW - 2), height: h, fill: colorOf(type), class: "fbar" });
        rect.dataset.type = type;
        rect.append(svg("title", {}, `${type}: ${n} at ${fmtTime(b.start)} (${JSON.stringify(b.by_priority)})`));
        chart.append(rect);
      }
      busyPoints.push([x + slotW / 2, H - B - ((H - B - T) * b.expected_busy_s) / busyPeak]);
    }
    if (busyPoints.some(([, y]) => y < H - B)) {
      chart.append(svg("polyline", { points: busyPoints.map((p) => p.join(",")).join(" "), class: "busy" }));
      chart.append(svg("text", { x: W - R + 4, y: T + 10, class: "tick" }, `${Math.round(busyPeak)} s`));
    }
    if (!buckets.length) chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" }, "nothing expected to run"));
    chart.dataset.total = f.total;
    box.replaceChildren(chart);
    const legend = $("forecast-legend");
    legend.replaceChildren();
    for (const type of new Set(buckets.flatMap((b) => Object.keys(b.by_type)))) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colorOf(type);
      legend.append(el("span", { class: "key" }, swatch, type));
    }
    legend.append(el("span", { class: "muted" }, ` ${f.total} runs expected; span ${span / 3600000} h`));
  }

  // -- metric history charts -----------------------------------------------------------
  function drawHistory(h) {
    const box = $("history-charts");
    box.replaceChildren();
    const samples = h.samples || [];
    const keys = CHARTED.filter(([k]) => samples.some((s) => k in s));
    for (const k of Object.keys(samples[samples.length - 1] || {})) {
      if (k.startsWith("lateness") && !keys.some(([x]) => x === k)) keys.push([k, k]);
    }
    for (const [key, label] of keys) box.append(miniChart(samples, key, label));
    if (!keys.length) box.append(el("p", { class: "muted" }, "collecting samples…"));
  }
  function miniChart(samples, key, label) {
    // The window is the last hour, shortened to what has been sampled (at least 5 min).
    const W = 240, H = 70;
    const points = samples.filter((s) => typeof s[key] === "number").map((s) => [s.at, s[key]]);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "mini", role: "img", "aria-label": label });
    const now = Date.now() / 1000;
    const span = Math.min(3600, Math.max(300, points.length ? now - points[0][0] : 0));
    const peak = Math.max(1e-9, ...points.map((p) => p[1]));
    const xy = points.map(([at, v]) => [W * (1 - (now - at) / span), H - 4 - (H - 12) * (v / peak)]);
    chart.append(svg("polyline", { points: xy.map((p) => p.join(",")).join(" "), class: "line" }));
    const last = points.length ? points[points.length - 1][1] : null;
    const caption = `${label}: ${fmtValue(last)} (last ${Math.round(span / 60)} min, peak ${points.length ? fmtValue(peak) : "–"})`;
    return el("figure", {}, chart, el("figcaption", {}, caption));
  }

  // -- task list and detail ------------------------------------------------------------
  async function loadTasks() {
    const params = new URLSearchParams({ offset: state.offset, limit: PAGE });
    for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
    const page = await get(`api/tasks?${params}`);
    fill($("tasks"), ["id", "type", "state", "priority", "due", "retries", "key", "tags", "error"], page.tasks.map((t) => [
      taskLink(t.id), t.type, t.state, t.priority, fmtTime(t.due), `${t.retries}/${t.max_retries}`,
      t.concurrency_key || "–", t.tags.join(", "), t.error || ""]));
    $("prev").disabled = state.offset === 0;
    $("next").disabled = !page.has_more;
    $("page-info").textContent = `${state.offset + 1}–${state.offset + page.tasks.length}${page.scan_capped ? " (search window capped)" : ""}`;
  }
  async function openTask(id) {
    const t = await get(`api/tasks/${enc(id)}`);
    state.detail = id;
    $("detail").hidden = false;
    $("detail-id").textContent = t.id;
    const fields = $("detail-fields");
    fields.replaceChildren();
    for (const k of ["type", "state", "priority", "scheduled_for", "started_at", "completed_at", "retries",
                     "max_retries", "executor_type", "concurrency_key", "wait_reason", "dependencies"]) {
      fields.append(el("dt", {}, k), el("dd", { data: { field: k } }, fmtValue(t[k])));
    }
    fields.append(el("dt", {}, "created by"), el("dd", {}, t.metadata.created_by),
                  el("dt", {}, "tags"), el("dd", {}, t.metadata.tags.join(", ") || "–"));
    $("detail-data").textContent = JSON.stringify(t.data, null, 2);
    $("detail-outcome").textContent = t.error ? `error: ${t.error}` : JSON.stringify(t.result, null, 2);
    fill($("detail-history"), ["time", "from", "to", "reason"], t.history.map((h) => [fmtTime(h.at), h.from, h.to, h.reason || ""]));
    fill($("detail-audit"), ["entry"], t.audit_trail.map((a) => [JSON.stringify(a)]));
    const actions = $("detail-actions");
    const path = `api/tasks/${enc(t.id)}`;
    actions.replaceChildren(
      button("Cancel", () => act(`${path}/cancel`, `cancel ${t.id}`)),
      button("Pause", () => act(`${path}/pause`, `pause ${t.id}`)),
      button("Resume", () => act(`${path}/resume`, `resume ${t.id}`)),
      button("Retry now", () => act(`${path}/retry`, `retry ${t.id}`)));
  }

  // -- wiring ---------------------------------------------------------------------------
  async function guarded(work) {
    try { await work(); } catch (e) { setStatus(String(e.message || e)); }
  }
  const refreshOverview = () => guarded(async () => drawOverview(await get("api/overview")));
  const refreshSlow = () => {
    guarded(async () => drawSchedules(await get("api/schedules")));
    guarded(async () => drawForecast(await get("api/forecast?hours=24&bucket=hour")));
  };
  const refreshHistory = () => guarded(async () => drawHistory(await get("api/metrics/history")));
  const refreshTasks = () => guarded(loadTasks);
  function refreshAll() { refreshOverview(); refreshSlow(); refreshHistory(); refreshTasks(); }

  function init() {
    for (const s of STATES) $("f-state").append(el("option", { value: s }, s));
    if (meta("asched-needs-token") === "true") {
      state.token = sessionStorage.getItem("asched-token");
      $("token-form").hidden = Boolean(state.token);
    }
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.token = $("token-input").value;
      sessionStorage.setItem("asched-token", state.token);
      $("token-form").hidden = true;
      refreshAll();
    });
    $("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      const id = $("f-id").value.trim();
      if (id) { guarded(() => openTask(id)); return; }
      state.filters = { state: $("f-state").value, type: $("f-type").value.trim(),
                        key: $("f-key").value.trim(), tag: $("f-tag").value.trim() };
      state.offset = 0;
      refreshTasks();
    });
    $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refreshTasks(); });
    $("next").addEventListener("click", () => { state.offset += PAGE; refreshTasks(); });
    $("detail-close").addEventListener("click", () => { state.detail = null; $("detail").hidden = true; });
    refreshAll();
    setInterval(refreshOverview, 2000);
    setInterval(refreshTasks, 5000);
    setInterval(refreshHistory, 10000);
    setInterval(refreshSlow, 15000);
  }
  document.addEventListener("DOMContentLoaded", init);
})();
