// The "attention" tab of TensorBoard (plugin seq2seq_attention). TensorBoard's plugin_entry.html
// imports this module inside an iframe whose <base> is /data/plugin/seq2seq_attention/, and
// calls render(). No bundler, no CDN: every file comes from the plugin.

import { average, el, fmt } from "./dom.js";
import { parseHash } from "./hash.js";
import { drawHeatmap } from "./heatmap.js";
import { drawLines } from "./lines.js";

const state = {
  runs: [],
  run: null,
  examples: [],
  example: null, // an entry of /examples
  stepIndex: 0,
  record: null, // the /attention body
  view: "heatmap", // or "lines"
  unit: "words", // or "pieces"
  attention: "cross", // or "encoder"
  layer: null, // null: the last layer
  head: "avg", // or a head index
  timer: null, // step replay
  skipped: { count: 0, problems: [] }, // the run's malformed records, as /examples counts them
};
const cache = new Map();
const ui = {};
// The first state can come from the page's hash (checked: ./hash.js), e.g.
// plugin_entry.html?name=seq2seq_attention#run=.&example=example_0&view=lines&focus=2
const initial = parseHash(window.location.hash);

export async function render() {
  document.head.append(el("link", { rel: "stylesheet", href: new URL("./style.css", import.meta.url).href }));
  ui.root = el("div", { class: "s2s-app", "data-state": "loading" });
  document.body.append(ui.root);
  await start();
}

async function getJson(path, params = {}) {
  const url = new URL(path, document.baseURI);
  Object.entries(params).forEach(([key, value]) => url.searchParams.set(key, value));
  if (cache.has(url.href)) return cache.get(url.href);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status} ${await response.text()}`);
  const body = await response.json();
  if (path === "./attention") cache.set(url.href, body);
  return body;
}

async function start() {
  ui.root.replaceChildren();
  try {
    state.runs = await getJson("./runs");
  } catch (error) {
    return fail(error);
  }
  if (state.runs.length === 0) return showEmpty();
  buildControls();
  const wanted = initial.settings;
  for (const key of ["view", "unit", "attention", "layer", "head"]) if (wanted.has(key)) state[key] = wanted.get(key);
  if (wanted.has("run") && !state.runs.includes(wanted.get("run"))) refuse("run", "no such run");
  const first = [wanted.get("run"), state.run].find((run) => state.runs.includes(run));
  await selectRun(first ?? state.runs[0]);
  if (ui.root.dataset.state === "ready") applyFirstView();
  wanted.clear(); // the hash sets the first state only
  showNotices();
}

/** Note a value of the hash that the page did not take (shown in one line by showNotices). */
function refuse(key, why, value = initial.settings.get(key)) {
  initial.ignored.push(`${key}=${value} (${why})`);
}

/** The hash's layer, head and focus, checked against the record drawn first. */
function applyFirstView() {
  const wanted = initial.settings;
  const shown = currentView();
  if (wanted.has("layer") && wanted.get("layer") !== shown.layer) {
    refuse("layer", `${shown.layers} layer(s) here`, wanted.get("layer") + 1);
  }
  const head = wanted.get("head");
  if (wanted.has("head") && head !== shown.head) refuse("head", `${shown.heads} head(s) here`, head + 1);
  if (!wanted.has("focus")) return;
  if (wanted.get("focus") < shown.rows.length && ui.focus) ui.focus(wanted.get("focus"));
  else refuse("focus", `${shown.rows.length} row(s) here`);
}

function showNotices() {
  const lines = [];
  const { count, problems } = state.skipped;
  if (count > 0) {
    const first = problems.length > 0 ? `: ${problems[0]}${count > 1 ? "; ..." : ""}` : "";
    const text = `${count} record${count === 1 ? "" : "s"} skipped (malformed)${first}`;
    lines.push(el("p", { "data-notice": "skipped", title: problems.join("\n") }, text));
  }
  if (initial.ignored.length > 0) {
    lines.push(el("p", { "data-notice": "ignored" }, `Not taken from the address: ${initial.ignored.join(", ")}`));
  }
  ui.notice.replaceChildren(...lines);
  ui.notice.hidden = lines.length === 0;
}

function showEmpty() {
  ui.root.dataset.state = "empty";
  ui.root.append(
    el(
      "div",
      { class: "s2s-empty" },
      el("h2", {}, "No attention logged yet."),
      el("p", {}, "Training logs the attention of valid.attention_examples dev sentences at every validation;"),
      el("p", {}, "seq2seq-translate ... tensorboard=DIR logs it for the sentences it translates."),
      el("button", { type: "button", onclick: start }, "Reload"),
    ),
  );
}

function fail(error) {
  ui.root.dataset.state = "error";
  const title = el("h2", {}, "Could not load attention");
  const message = el("div", { class: "s2s-empty" }, title, el("pre", {}, String(error)));
  ui.root.replaceChildren(message);
}

// ---------------------------------------------------------------------------------------------
// Controls

function select(label, onchange) {
  const node = el("select", { onchange: (event) => onchange(event.target.value) });
  return { node, wrap: el("label", { class: "s2s-control" }, label, node) };
}

function toggle(name, options, onchange) {
  const buttons = options.map(([value, text]) =>
    el("button", { type: "button", "data-value": value, onclick: () => onchange(value) }, text),
  );
  return { buttons, wrap: el("span", { class: "s2s-toggle", role: "group", "aria-label": name }, buttons) };
}

function setOptions(control, options, value) {
  const items = options.map(([v, text]) => el("option", { value: v, selected: String(v) === String(value) }, text));
  control.node.replaceChildren(...items);
  control.node.value = String(value);
}

function buildControls() {
  ui.run = select("run", (run) => selectRun(run));
  ui.example = select("sentence", (id) => selectExample(id));
  ui.attention = select("attention", (value) => update({ attention: value, layer: null, head: "avg" }));
  ui.layer = select("layer", (value) => update({ layer: Number(value) }));
  ui.head = select("head", (value) => update({ head: value === "avg" ? "avg" : Number(value) }));
  ui.view = toggle("view", [["heatmap", "heatmap"], ["lines", "lines"]], (view) => update({ view }));
  ui.unit = toggle("units", [["words", "words"], ["pieces", "pieces"]], (unit) => update({ unit }));
  const onStep = (event) => selectStep(Number(event.target.value));
  ui.slider = el("input", { type: "range", min: 0, max: 0, value: 0, class: "s2s-slider", oninput: onStep });
  ui.stepLabel = el("span", { class: "s2s-step" });
  ui.play = el("button", { type: "button", class: "s2s-play", title: "replay the steps", onclick: replay }, "▶");
  const onReload = () => selectRun(state.run);
  const reload = el("button", { type: "button", title: "look for new steps", onclick: onReload }, "↻");
  ui.info = el("dl", { class: "s2s-info" });
  ui.detail = el("div", { class: "s2s-detail" });
  ui.canvas = el("div", { class: "s2s-view" });
  ui.notice = el("div", { class: "s2s-notice", role: "status" });
  ui.notice.hidden = true;
  ui.root.append(
    el("div", { class: "s2s-bar" }, ui.run.wrap, ui.example.wrap, reload),
    ui.notice,
    el("div", { class: "s2s-bar" }, el("label", { class: "s2s-control" }, "step", ui.slider), ui.stepLabel, ui.play),
    ui.info,
    el("div", { class: "s2s-bar" }, ui.attention.wrap, ui.layer.wrap, ui.head.wrap, ui.view.wrap, ui.unit.wrap),
    ui.detail,
    ui.canvas,
  );
  setOptions(ui.run, state.runs.map((run) => [run, run]), state.runs[0]);
}

async function selectRun(run) {
  state.run = run;
  ui.run.node.value = run;
  try {
    const body = await getJson("./examples", { run });
    state.examples = body.examples;
    state.skipped = { count: body.skipped, problems: body.problems };
  } catch (error) {
    return fail(error);
  }
  showNotices();
  setOptions(ui.example, state.examples.map((e) => [e.id, `${e.label}: ${e.source ?? ""}`]), state.examples[0]?.id);
  if (state.examples.length === 0) return showNoRecords(run);
  const wanted = initial.settings.get("example");
  const known = (id) => state.examples.some((e) => e.id === id);
  if (wanted !== undefined && !known(wanted)) refuse("example", `not in run ${run}`);
  await selectExample([wanted, state.example?.id].find(known) ?? state.examples[0].id);
}

function showNoRecords(run) {
  state.example = state.record = null;
  ui.info.replaceChildren();
  ui.canvas.replaceChildren();
  ui.detail.textContent = `No attention record of run ${run} can be drawn.`;
  ui.root.dataset.state = "empty";
}

async function selectExample(id) {
  state.example = state.examples.find((e) => e.id === id);
  ui.example.node.value = id;
  ui.slider.max = String(state.example.steps.length - 1);
  const step = initial.settings.get("step");
  const wanted = step === undefined ? -1 : state.example.steps.indexOf(step);
  if (step !== undefined && wanted < 0) refuse("step", `not logged for ${id}`);
  await selectStep(wanted >= 0 ? wanted : state.example.steps.length - 1);
}

async function selectStep(index) {
  if (!state.example) return;
  state.stepIndex = index;
  ui.slider.value = String(index);
  const step = state.example.steps[index];
  ui.stepLabel.textContent = `${step} (${index + 1} of ${state.example.steps.length})`;
  try {
    const record = await getJson("./attention", { run: state.run, example: state.example.id, step });
    if (state.stepIndex === index) {
      state.record = record;
      draw();
    }
  } catch (error) {
    fail(error);
  }
}

function replay() {
  if (state.timer !== null) {
    clearInterval(state.timer);
    state.timer = null;
    ui.play.textContent = "▶";
    return;
  }
  ui.play.textContent = "■";
  if (state.stepIndex >= state.example.steps.length - 1) selectStep(0);
  state.timer = setInterval(() => {
    if (state.stepIndex >= state.example.steps.length - 1) return replay();
    selectStep(state.stepIndex + 1);
  }, 800);
}

function update(changes) {
  Object.assign(state, changes);
  draw();
}

// ---------------------------------------------------------------------------------------------
// Drawing

function currentView() {
  const views = state.record.views[state.unit];
  if (!views[state.attention]) state.attention = "cross";
  const view = views[state.attention];
  const layers = view.weights.length;
  const heads = view.weights[0].length;
  const layer = state.layer === null || state.layer >= layers ? layers - 1 : state.layer;
  const head = state.head === "avg" || state.head >= heads ? "avg" : state.head;
  const perHead = view.weights[layer];
  const weights = head === "avg" ? (heads === 1 ? perHead[0] : average(perHead)) : perHead[head];
  return { rows: view.rows, cols: view.cols, weights, layers, heads, layer, head };
}

function draw() {
  const record = state.record;
  const matrix = currentView();
  drawInfo(record);
  syncControls(record, matrix);
  const encoder = state.attention === "encoder";
  const onFocus = (r) => describe(matrix, r, encoder);
  ui.canvas.replaceChildren();
  if (state.view === "heatmap") {
    ui.focus = drawHeatmap(ui.canvas, matrix, onFocus);
  } else {
    const titles = encoder ? ["source (attended)", "source (attending)"] : ["source", "output"];
    ui.focus = drawLines(ui.canvas, matrix, titles, onFocus);
  }
  describe(matrix, null, encoder);
  ui.root.dataset.state = "ready";
}

function syncControls(record, matrix) {
  const hasEncoder = Boolean(record.views[state.unit].encoder);
  const attentionOptions = [["cross", "decoder → source"]];
  if (hasEncoder) attentionOptions.push(["encoder", "encoder self-attention"]);
  setOptions(ui.attention, attentionOptions, state.attention);
  ui.attention.wrap.hidden = !hasEncoder;
  const layers = [...Array(matrix.layers).keys()].map((i) => [i, `${i + 1} of ${matrix.layers}`]);
  setOptions(ui.layer, layers, matrix.layer);
  const heads = [...Array(matrix.heads).keys()].map((i) => [i, `head ${i + 1}`]);
  setOptions(ui.head, [["avg", "average of heads"], ...heads], matrix.head);
  ui.layer.wrap.hidden = matrix.layers === 1;
  ui.head.wrap.hidden = matrix.heads === 1;
  for (const [control, value] of [[ui.view, state.view], [ui.unit, state.unit]]) {
    control.buttons.forEach((button) => button.classList.toggle("s2s-on", button.dataset.value === value));
  }
}

function drawInfo(record) {
  const number = (value, digits) => (value === null || value === undefined ? null : value.toFixed(digits));
  const rows = [
    ["source", record.source],
    ["reference", record.reference],
    ["output", record.output],
    ["BLEU", number(record.bleu, 1)],
    ["log-prob", number(record.score, 3)],
  ];
  const shown = rows.filter(([, value]) => value !== null && value !== undefined);
  const pairs = shown.flatMap(([key, value]) => [el("dt", {}, key), el("dd", { "data-field": key }, value)]);
  ui.info.replaceChildren(...pairs);
}

function describe(matrix, r, encoder) {
  if (r === null) {
    const who = encoder ? "a source word" : "an output word";
    const unit = state.unit === "words" ? "word" : "piece";
    const rows = encoder ? "source" : "output";
    ui.detail.textContent = `Hover ${who} to see where it looks (one cell per ${rows} × source ${unit}).`;
    return;
  }
  const ranked = matrix.cols.map((word, c) => [word, matrix.weights[r][c]]).filter(([, w]) => w >= 0.01);
  ranked.sort((a, b) => b[1] - a[1]);
  const pair = ([word, w]) => el("span", { class: "s2s-pair" }, el("b", {}, word), ` ${fmt(w)}`);
  const parts = ranked.slice(0, 8).map(pair);
  ui.detail.replaceChildren(el("b", { class: "s2s-focus" }, matrix.rows[r]), " → ", ...parts);
}
