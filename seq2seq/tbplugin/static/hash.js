// The tab's first state from the page's address hash, e.g.
// plugin_entry.html?name=seq2seq_attention#run=.&example=example_0&view=lines&layer=2&focus=2
// Every value is checked: a choice must be one of its options (a Map, so "constructor" or
// "__proto__" is no option), numbers are whole and in range; anything else is left out and
// named in `ignored`, so the page draws its defaults and says what it did not take.

export const CHOICES = new Map([
  ["view", ["heatmap", "lines"]],
  ["unit", ["words", "pieces"]],
  ["attention", ["cross", "encoder"]],
]);

// key -> [parse(value) (null: refused), what a valid value is]. layer and head are 1-based in the
// address, 0-based in the state; focus (an attending row) is 0-based in both.
const NUMBERS = new Map([
  ["step", [(v) => whole(v, 0), "a logged step"]],
  ["layer", [(v) => minusOne(whole(v, 1)), "a layer number from 1"]],
  ["head", [(v) => (v === "avg" ? "avg" : minusOne(whole(v, 1))), "avg or a head number from 1"]],
  ["focus", [(v) => whole(v, 0), "a row number from 0"]],
]);
const TEXTS = ["run", "example"];

/** A whole number >= min written with decimal digits only (at most 9 of them), else null. */
export function whole(text, min) {
  if (!/^[0-9]{1,9}$/.test(text)) return null;
  const n = Number(text);
  return n >= min ? n : null;
}

function minusOne(n) {
  return n === null ? null : n - 1;
}

/**
 * The settings of `hash` ("#key=value&..."): {settings: Map(key -> value), ignored: ["key=value
 * (why)", ...]}. Keys: run, example (strings); view, unit, attention (one of CHOICES); step,
 * focus (numbers); layer, head (0-based; head may be "avg"). Only the first of a repeated key is read.
 */
export function parseHash(hash) {
  const settings = new Map();
  const ignored = [];
  const seen = new Set();
  for (const [key, value] of new URLSearchParams(String(hash).replace(/^#/, ""))) {
    const shown = `${key}=${value}`;
    if (seen.has(key)) {
      ignored.push(`${shown} (repeated)`);
      continue;
    }
    seen.add(key);
    if (TEXTS.includes(key)) {
      settings.set(key, value);
    } else if (CHOICES.has(key)) {
      const options = CHOICES.get(key);
      if (options.includes(value)) settings.set(key, value);
      else ignored.push(`${shown} (expected ${options.join(" or ")})`);
    } else if (NUMBERS.has(key)) {
      const [parse, expected] = NUMBERS.get(key);
      const parsed = parse(value);
      if (parsed === null) ignored.push(`${shown} (expected ${expected})`);
      else settings.set(key, parsed);
    } else {
      ignored.push(`${shown} (unknown key)`);
    }
  }
  return { settings, ignored };
}
