// The page of seq2seq-serve (index.html): translate the lines of the text box with POST
// /v1/translate and draw each line's word-level attention with the TensorBoard tab's heatmap
// (hovering, or focusing with the keyboard, an output word tints the source words it looks at).
// No bundler, no CDN: the tab's modules are served by the app under /static/tab/.
//
// body[data-state]: loading (GET /health is 503: retried every second), ready, translating, done,
// error (the status line says why). The address hash fills the form, and submit=1 translates it
// at once: /#text=d%20a%20h&beam=5&nbest=3&submit=1 (text: one sentence a line); focus=R then
// highlights output word R (from 0) of the first sentence, as hovering it does.

import { el, fmt } from "/static/tab/dom.js";
import { drawHeatmap } from "/static/tab/heatmap.js";

const RETRY_MS = 1000;
const ui = {
  form: document.getElementById("form"),
  text: document.getElementById("text"),
  beam: document.getElementById("beam"),
  nbest: document.getElementById("nbest"),
  button: document.getElementById("translate"),
  model: document.getElementById("model"),
  message: document.getElementById("message"),
  results: document.getElementById("results"),
  focus: [], // per translation drawn: focus(r), what hovering output word r does
  notice: "", // the values of the address the page did not take, said after the first translation too
};

function setState(state) {
  document.body.dataset.state = state;
  ui.button.disabled = state === "loading" || state === "translating";
  ui.form.setAttribute("aria-busy", String(state === "translating"));
}

function say(text, kind = "info") {
  ui.message.textContent = text;
  ui.message.className = kind === "error" ? "s2s-error" : "";
}

function fail(text) {
  say(text, "error");
  setState("error");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The address hash: text, beam, nbest (values of the selectors) and submit=1

/**
 * Fill the form from the hash; returns {submit: whether to translate at once, focus: a row or null}.
 * Values the page does not take are named in the status line.
 */
function applyHash() {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const refused = [];
  const focus = params.has("focus") && /^[0-9]{1,4}$/.test(params.get("focus")) ? Number(params.get("focus")) : null;
  if (params.has("focus") && focus === null) refused.push(`focus=${params.get("focus")} (a row number from 0)`);
  if (params.has("text")) ui.text.value = params.get("text");
  for (const [key, select] of [["beam", ui.beam], ["nbest", ui.nbest]]) {
    if (!params.has(key)) continue;
    const value = params.get(key);
    const options = [...select.options].map((option) => option.value);
    if (options.includes(value)) select.value = value;
    else refused.push(`${key}=${value} (one of ${options.join(", ")})`);
  }
  limitNBest();
  if (refused.length > 0) ui.notice = `Not taken from the address: ${refused.join("; ")}`;
  say(ui.notice);
  return { submit: params.get("submit") === "1", focus };
}

function rememberInHash(text) {
  const params = new URLSearchParams({ text, beam: ui.beam.value, nbest: ui.nbest.value });
  history.replaceState(null, "", `#${params}`);
}

/** n-best is at most the beam size (the API refuses more): larger choices are disabled. */
function limitNBest() {
  const beam = Number(ui.beam.value);
  for (const option of ui.nbest.options) option.disabled = Number(option.value) > beam;
  if (Number(ui.nbest.value) > beam) {
    const allowed = [...ui.nbest.options].filter((option) => !option.disabled);
    ui.nbest.value = allowed[allowed.length - 1].value;
  }
}

// ---------------------------------------------------------------------------------------------
// The server: health, the model, translation

async function getJson(path, init) {
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  return { response, body };
}

/** One line for an API error body {"error", "field"?}. */
function apiError(response, body) {
  const where = body?.field ? ` (field ${body.field})` : "";
  const what = body?.error ?? response.statusText;
  return `${what}${where} [HTTP ${response.status}]`;
}

/** Wait until /health is 200, retrying while it says the model is loading; false if it failed to load. */
async function waitForModel() {
  for (;;) {
    let answer = null;
    try {
      answer = await getJson("/health");
    } catch {
      ui.model.textContent = "server unreachable, retrying…";
    }
    if (answer?.response.ok) return true;
    if (answer?.body?.status === "failed") {
      ui.model.textContent = "no model:";
      fail(`the model did not load: ${answer.body.error}`);
      ui.button.disabled = true; // nothing to translate with until the server is restarted
      return false;
    }
    if (answer) ui.model.textContent = "model loading…";
    const after = Number(answer?.response.headers.get("Retry-After"));
    await sleep(after > 0 ? after * 1000 : RETRY_MS);
  }
}

function describeModel(info) {
  const parts = [`${info.src_lang ?? "?"} → ${info.trg_lang ?? "?"}`];
  if (info.parameters) parts.push(`${(info.parameters / 1e6).toFixed(2)}M parameters`);
  parts.push(`engine ${info.engine}`, info.precision);
  if (info.step !== null && info.step !== undefined) parts.push(`step ${info.step}`);
  if (info.dev_bleu !== null && info.dev_bleu !== undefined) parts.push(`dev BLEU ${info.dev_bleu}`);
  return `Model ${info.id ?? ""}: ${parts.join(" · ")}`;
}

async function showModel() {
  try {
    const { response, body } = await getJson("/v1/models");
    if (!response.ok) return fail(`/v1/models: ${apiError(response, body)}`);
    ui.model.textContent = describeModel(body.models[0]);
    ui.model.title = body.models[0].checkpoint ?? "";
  } catch (error) {
    return fail(`/v1/models: ${error.message}`);
  }
  setState("ready");
}

async function translate() {
  const lines = ui.text.value.split("\n").map((line) => line.trim()).filter((line) => line.length > 0);
  if (lines.length === 0) {
    ui.text.focus();
    return fail("Type a sentence to translate.");
  }
  const nBest = Number(ui.nbest.value);
  const request = { text: lines, beam_size: Number(ui.beam.value), n_best: nBest, attention: true };
  setState("translating");
  ui.results.replaceChildren(); // an error must not stand next to the translations of other text
  say(`translating ${lines.length} sentence${lines.length === 1 ? "" : "s"}…`);
  rememberInHash(lines.join("\n"));
  let answer;
  try {
    answer = await getJson("/v1/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
  } catch (error) {
    return fail(`the server did not answer: ${error.message}`);
  }
  if (!answer.response.ok) return fail(apiError(answer.response, answer.body));
  ui.focus = [];
  ui.results.replaceChildren(...answer.body.translations.map((t, i) => drawTranslation(lines[i], t, i, nBest)));
  say(ui.notice);
  ui.notice = "";
  setState("done");
}

// ---------------------------------------------------------------------------------------------
// Drawing

function drawTranslation(source, translation, index, nBest) {
  const field = (key, value) => [el("dt", {}, key), el("dd", { "data-field": key }, value)];
  const info = el(
    "dl",
    { class: "s2s-info" },
    field("source", source),
    field("translation", translation.text),
    field("log-prob", translation.score.toFixed(3)),
  );
  const score = (value) => el("span", { class: "s2s-score" }, value.toFixed(3));
  const candidate = (c) => el("li", {}, el("span", { class: "s2s-candidate" }, c.text), score(c.score));
  const label = `${translation.n_best.length} best translations`;
  const candidates =
    nBest > 1 ? el("ol", { class: "s2s-nbest", "aria-label": label }, translation.n_best.map(candidate)) : null;
  const detail = el("div", { class: "s2s-detail", "aria-live": "polite" });
  const canvas = el("div", { class: "s2s-view", role: "group", "aria-label": "attention of the output words" });
  const block = el("article", { class: "s2s-result", "data-index": index }, info, candidates, detail, canvas);
  const matrix = translation.attention;
  if (!matrix || matrix.rows.length === 0) {
    detail.textContent = "No attention to draw: the translation is empty.";
    return block;
  }
  const focus = drawHeatmap(canvas, matrix, (r) => describe(detail, matrix, r));
  // The keyboard reaches what the pointer does: each output word takes the focus.
  canvas.querySelectorAll("th.s2s-row").forEach((head) => head.setAttribute("tabindex", "0"));
  canvas.addEventListener("focusin", (event) => {
    const head = event.target.closest("th.s2s-row");
    if (head) focus(Number(head.dataset.r));
  });
  canvas.addEventListener("focusout", () => focus(null));
  ui.focus[index] = (r) => {
    if (r < matrix.rows.length) focus(r);
    else say(`Not taken from the address: focus=${r} (${matrix.rows.length} output words)`);
  };
  describe(detail, matrix, null);
  return block;
}

/** The detail line: the words output word r looks at most (as the tab says it), or a hint. */
function describe(detail, matrix, r) {
  if (r === null) {
    detail.textContent = "Hover or focus an output word to see where it looks (one cell per output × source word).";
    return;
  }
  const ranked = matrix.cols.map((word, c) => [word, matrix.weights[r][c]]).filter(([, w]) => w >= 0.01);
  ranked.sort((a, b) => b[1] - a[1]);
  const pair = ([word, w]) => el("span", { class: "s2s-pair" }, el("b", {}, word), ` ${fmt(w)}`);
  detail.replaceChildren(el("b", { class: "s2s-focus" }, matrix.rows[r]), " → ", ...ranked.slice(0, 8).map(pair));
}

// ---------------------------------------------------------------------------------------------

async function start() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    translate();
  });
  ui.beam.addEventListener("change", limitNBest);
  ui.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !ui.button.disabled) translate();
  });
  const wanted = applyHash();
  setState("loading");
  if (!(await waitForModel())) return;
  await showModel();
  if (!wanted.submit || document.body.dataset.state !== "ready") return;
  await translate();
  if (wanted.focus !== null && ui.focus[0]) ui.focus[0](wanted.focus);
}

start();
