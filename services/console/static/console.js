// The console page: plain ES module, no build step. Every value from the API reaches the page
// through textContent or SVG attributes, never as HTML.
const TOKEN_KEY = "eventpipe-api-token";
const POLL_MS = 1500;
const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem(TOKEN_KEY);
let selected = null;       // job id shown in the detail panel
let loadedResults = null;  // job id whose statistics and storylines are drawn
let timer = null;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                      : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "style") Object.assign(node.style, v);  // CSSOM: the CSP forbids inline style
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  const response = await fetch(`/api/v1${path}`, { ...options, headers });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401) askToken("That token was not accepted.");
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

function askToken(error) {
  const dialog = $("#token-dialog");
  $("#token-error").hidden = !error;
  $("#token-error").textContent = error || "";
  if (!dialog.open) dialog.showModal();
}

function say(text) {
  $("#message").hidden = !text;
  $("#message").textContent = text || "";
}

const duration = (s) => s == null ? "–" : s < 90 ? `${Math.round(s)} s`
  : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;

async function control(job, command, button) {
  button.disabled = true;
  button.textContent = `${command}…`;
  try {
    await api(`/jobs/${encodeURIComponent(job.job_id)}/${command}`, { method: "POST" });
    say("");
  } catch (e) {
    say(e.status === 403 ? "This token is read-only: pause, resume and stop need the control token."
                         : `${command} refused: ${e.message}`);
  }
  await refresh();
}

function jobRow(job) {
  const total = job.total_documents || 0;
  const pct = (n) => total ? `${(100 * n / total).toFixed(1)}%` : "0%";
  const buttons = el("td", { class: "actions" });
  const can = { pause: job.status === "RUNNING", resume: job.status === "PAUSED",
                stop: job.status === "RUNNING" || job.status === "PAUSED" };
  for (const command of ["pause", "resume", "stop"]) {
    const b = el("button", { type: "button", "data-action": command, text: command });
    b.disabled = !can[command];
    b.addEventListener("click", (ev) => { ev.stopPropagation(); control(job, command, b); });
    buttons.append(b, " ");
  }
  const row = el("tr", { id: `job-${job.job_id}`, "data-batch": job.batch_id },
    el("td", { title: job.job_id, text: job.batch_id }),
    el("td", {}, el("span", { class: `status ${job.status}`, text: job.status })),
    el("td", {}, el("div", { class: "progress", title: pct(job.processed_documents) },
      el("div", { class: "failed", style: { width: pct(job.failed_documents) } }),
      el("div", { style: { width: pct(job.processed_documents) } }))),
    el("td", { text: `${job.processed_documents} / ${total}` }),
    el("td", { text: String(job.failed_documents) }),
    el("td", { text: `${job.rate_per_min.toFixed(1)}/min` }),
    el("td", { text: duration(job.eta_s) }),
    el("td", { text: job.phase }),
    buttons);
  if (job.job_id === selected) row.classList.add("selected");
  row.addEventListener("click", () => { selected = job.job_id; loadedResults = null; refresh(); });
  return row;
}

function errorClass(reason) {
  const m = /^([A-Z][A-Za-z0-9_.]*(Error|Exception|Timeout)):/.exec(reason || "");
  return m ? m[1] : "–";
}

async function drawDetail(job) {
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Batch ${job.batch_id} (${job.status})`;
  const { failures, total } = await api(`/jobs/${job.job_id}/failures?limit=200`);
  $("#failures tbody").replaceChildren(...failures.map((f) => el("tr", {},
    el("td", { text: f.doc_id }), el("td", { text: f.stage }),
    el("td", { text: errorClass(f.error) }), el("td", { text: f.error }))));
  $("#no-failures").hidden = total > 0;
  const retry = $("#retry-failed");
  retry.hidden = total === 0 || job.status === "STOPPED";
  retry.onclick = async () => {
    try {
      await api(`/jobs/${job.job_id}/retry-failed`, { method: "POST" });
      say("");
      loadedResults = null;
    } catch (e) {
      say(`retry refused: ${e.message}`);
    }
    refresh();
  };
  if (job.status !== "COMPLETED" || loadedResults === job.job_id) return;
  loadedResults = job.job_id;
  try {
    drawStats(await api(`/jobs/${job.job_id}/stats`));
    drawTimeline(await api(`/jobs/${job.job_id}/storylines?limit=30`));
  } catch (e) {
    $("#stats-note").textContent = e.message;
  }
}

function barChart(title, entries, unit = "") {
  const width = 420, row = 18, left = 120;
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const svg = el("svg:svg", { class: "chart", width, height: row * entries.length + 6,
                              role: "img", "aria-label": title });
  entries.forEach(([label, value], i) => {
    const y = i * row + 2;
    const w = Math.max(1, (width - left - 60) * value / max);
    svg.append(el("svg:text", { x: 0, y: y + 12, text: String(label).slice(0, 18) }),
      el("svg:rect", { x: left, y, width: w, height: row - 5, rx: 2 }),
      el("svg:text", { x: left + w + 4, y: y + 12, text: `${value}${unit}` }));
  });
  return el("div", {}, el("h4", { text: title }), svg);
}

function drawStats(stats) {
  const labels = Object.entries(stats.entities_by_label || {}).map(([k, v]) => [k, v.count])
    .sort((a, b) => b[1] - a[1]).slice(0, 12);
  const types = Object.entries(stats.events_by_type || {}).slice(0, 12);
  const stages = Object.entries(stats.time_per_stage_ms || {}).map(([k, v]) => [k, v.mean]);
  $("#charts").replaceChildren(el("h3", { text: "Batch statistics" }),
    el("p", { class: "muted", id: "stats-note",
              text: `${stats.event_links} event links, ${stats.storylines} storylines` }),
    barChart("Entities by label", labels), barChart("Events by type", types),
    barChart("Mean time per stage", stages, " ms"));
}

function drawTimeline({ storylines, total }) {
  const box = $("#timeline");
  if (!storylines.length) { box.replaceChildren(el("p", { class: "muted", text: "No storylines." })); return; }
  const day = (iso) => iso ? Date.parse(`${iso}T00:00:00Z`) : null;
  const dates = storylines.flatMap((s) => s.events.map((e) => day(e.published))).filter((d) => d != null);
  const lo = dates.length ? Math.min(...dates) : 0, hi = dates.length ? Math.max(...dates) : 1;
  const width = 900, left = 260, row = 26, span = Math.max(1, hi - lo);
  const x = (d, i, n) => left + (d == null ? (i + 0.5) / n : (d - lo) / span) * (width - left - 20);
  const svg = el("svg:svg", { class: "timeline", width, height: row * storylines.length + 24,
                              role: "img", "aria-label": "storylines timeline" });
  storylines.forEach((s, i) => {
    const y = i * row + 14;
    svg.append(el("svg:text", { x: 0, y: y + 4, text: s.title.slice(0, 40) }),
      el("svg:line", { x1: left, x2: width - 20, y1: y, y2: y }));
    const xs = s.events.map((e, j) => x(day(e.published), j, s.events.length));
    svg.append(el("svg:rect", { x: Math.min(...xs), y: y - 4, height: 8, rx: 4,
                                width: Math.max(2, Math.max(...xs) - Math.min(...xs)) }));
    s.events.forEach((e, j) => svg.append(el("svg:circle", { cx: xs[j], cy: y, r: 4 },
      el("svg:title", { text: `${e.published || "undated"} · ${e.doc_id}: ${e.trigger} (${e.type})` }))));
  });
  if (dates.length) {
    const fmt = (d) => new Date(d).toISOString().slice(0, 10);
    svg.append(el("svg:text", { x: left, y: row * storylines.length + 20, text: fmt(lo) }),
      el("svg:text", { x: width - 90, y: row * storylines.length + 20, text: fmt(hi) }));
  }
  box.replaceChildren(el("p", { class: "muted",
    text: `${total} storylines${total > storylines.length ? ` (the first ${storylines.length} by date)` : ""}; `
      + "each dot is an event at its document's date" }), svg);
}

async function refresh() {
  clearTimeout(timer);
  if (!token) { askToken(); return; }
  try {
    const { jobs } = await api("/jobs");
    $("#connection").textContent = `connected · ${jobs.length} job(s)`;
    $("#jobs tbody").replaceChildren(...jobs.map(jobRow));
    $("#no-jobs").hidden = jobs.length > 0;
    const current = jobs.find((j) => j.job_id === selected);
    if (current) await drawDetail(current);
  } catch (e) {
    $("#connection").textContent = e.status === 401 ? "token refused" : `error: ${e.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

async function upload(event) {
  event.preventDefault();
  const file = $("#upload-file").files[0];
  if (!file) { say("Choose a JSONL file first."); return; }
  const batch = $("#upload-batch").value.trim();
  try {
    const sub = await api(`/jobs${batch ? `?batch_id=${encodeURIComponent(batch)}` : ""}`,
      { method: "POST", body: file, headers: { "Content-Type": "application/x-ndjson" } });
    say("");
    selected = sub.job_id;
  } catch (e) {
    say(`Upload refused: ${e.message}`);
  }
  refresh();
}

$("#token-form").addEventListener("submit", () => {
  token = $("#token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  refresh();
});
$("#change-token").addEventListener("click", () => askToken());
$("#upload-form").addEventListener("submit", upload);
refresh();
