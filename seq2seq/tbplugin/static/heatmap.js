// The heatmap view: a table, one row per attending word (output, or source for the encoder),
// one column per attended word, one cell per pair coloured by its weight. Hovering a row shows
// its weights under the columns and tints the words it attends to.

import { colour, el, fmt, ink } from "./dom.js";

/**
 * Draw matrix {rows, cols, weights[r][c]} into container; onFocus(r) is called with the hovered
 * row (null when the pointer leaves). Returns focus(r), which does what hovering row r does.
 */
export function drawHeatmap(container, matrix, onFocus) {
  const { rows, cols, weights } = matrix;
  const colHeads = cols.map((word, c) => el("th", { class: "s2s-col", "data-c": c }, el("span", {}, word)));
  const weightCells = cols.map((_, c) => el("td", { class: "s2s-weight", "data-c": c }));
  const rowHeads = [];
  const body = rows.map((word, r) => {
    const head = el("th", { class: "s2s-row", "data-r": r }, word);
    rowHeads.push(head);
    const cells = cols.map((src, c) => {
      const w = weights[r][c];
      const cell = el("td", { class: "s2s-cell", "data-r": r, "data-c": c, title: `${word} → ${src}: ${fmt(w)}` });
      cell.style.background = colour(w);
      return cell;
    });
    return el("tr", { "data-r": r }, head, cells);
  });
  const table = el(
    "table",
    { class: "s2s-heatmap" },
    el("thead", {}, el("tr", {}, el("th", { class: "s2s-corner" }), colHeads)),
    el("tbody", {}, body),
    el("tfoot", {}, el("tr", {}, el("th", { class: "s2s-corner" }, "weight"), weightCells)),
  );

  function focus(r) {
    rowHeads.forEach((head, i) => head.classList.toggle("s2s-active", i === r));
    body.forEach((tr, i) => tr.classList.toggle("s2s-focus-row", i === r));
    cols.forEach((_, c) => {
      const w = r === null ? null : weights[r][c];
      colHeads[c].style.background = w === null ? "" : colour(w);
      colHeads[c].style.color = w === null ? "" : ink(w);
      weightCells[c].textContent = w === null ? "" : fmt(w);
    });
    onFocus(r);
  }
  table.addEventListener("mouseover", (event) => {
    const target = event.target.closest("[data-r]");
    if (target) focus(Number(target.dataset.r));
  });
  table.addEventListener("mouseleave", () => focus(null));
  container.append(el("div", { class: "s2s-scroll" }, table));
  return focus;
}
