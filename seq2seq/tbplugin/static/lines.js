// The lines view: attended words (the source) in a left column, attending words (the output,
// or the source again for the encoder) in a right column, joined by lines whose width and
// opacity are the weight. Hovering a word keeps only its lines and writes their weights.

import { el, fmt, svg } from "./dom.js";

const ROW = 24; // px between words
const TOP = 40; // px above the first word
const LEFT = 230; // x where left words end
const RIGHT = 470; // x where right words start
const WIDTH = 700;
const MIN_WEIGHT = 0.02; // lighter lines are left out

/**
 * Draw matrix {rows, cols, weights[r][c]} into container; titles = [left, right] column titles;
 * onFocus(r) is called with the hovered row (null when none). Returns focus(r), as hovering row r.
 */
export function drawLines(container, matrix, titles, onFocus) {
  const { rows, cols, weights } = matrix;
  const y = (i) => TOP + i * ROW + ROW / 2;
  const height = TOP + Math.max(rows.length, cols.length) * ROW + 10;
  const links = [];
  rows.forEach((_, r) =>
    cols.forEach((_, c) => {
      const w = weights[r][c];
      if (w < MIN_WEIGHT) return;
      const ends = { x1: LEFT + 8, y1: y(c), x2: RIGHT - 8, y2: y(r) };
      const line = svg("line", { class: "s2s-link", ...ends, "data-r": r, "data-c": c });
      line.style.strokeWidth = `${Math.max(0.75, w * 9)}px`;
      line.style.strokeOpacity = String(0.15 + 0.85 * w);
      links.push({ line, r, c, w });
    }),
  );
  // A left word is "<weight> word", anchored at its end: the weight of the hovered row goes just before it.
  const weightLabels = cols.map(() => svg("tspan", { class: "s2s-line-weight" }));
  const left = (word, c) =>
    svg("text", { class: "s2s-word s2s-left", x: LEFT, y: y(c), "data-c": c }, weightLabels[c], svg("tspan", {}, word));
  const leftWords = cols.map(left);
  const rightWords = rows.map((word, r) => svg("text", { class: "s2s-word", x: RIGHT, y: y(r), "data-r": r }, word));
  const picture = svg(
    "svg",
    { class: "s2s-lines", width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}` },
    svg("text", { class: "s2s-title", x: LEFT, y: 16, "text-anchor": "end" }, titles[0]),
    svg("text", { class: "s2s-title", x: RIGHT, y: 16 }, titles[1]),
    links.map((link) => link.line),
    leftWords,
    rightWords,
  );

  function focus(r, c) {
    const any = r !== null || c !== null;
    picture.classList.toggle("s2s-focused", any);
    for (const link of links) {
      link.line.classList.toggle("s2s-on", (r !== null && link.r === r) || (c !== null && link.c === c));
    }
    rightWords.forEach((word, i) => word.classList.toggle("s2s-active", i === r));
    leftWords.forEach((word, i) => word.classList.toggle("s2s-active", i === c));
    weightLabels.forEach((label, i) => (label.textContent = r === null ? "" : `${fmt(weights[r][i])}  `));
    onFocus(r);
  }
  picture.addEventListener("mouseover", (event) => {
    const target = event.target.closest("[data-r], [data-c]");
    if (!target) return;
    if (target.dataset.r !== undefined) focus(Number(target.dataset.r), null);
    else focus(null, Number(target.dataset.c));
  });
  picture.addEventListener("mouseleave", () => focus(null, null));
  container.append(el("div", { class: "s2s-scroll" }, picture));
  return (r) => focus(r, null);
}
