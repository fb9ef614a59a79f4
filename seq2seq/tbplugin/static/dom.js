// Small DOM helpers for the attention tab: element builders, the colour scale, number format.

const SVG_NS = "http://www.w3.org/2000/svg";

// The viridis colour map at 0, 1/8, ..., 1 (the colours of the PNG heatmaps).
const VIRIDIS = [
  [0x44, 0x01, 0x54], [0x47, 0x2d, 0x7b], [0x3b, 0x52, 0x8b], [0x2c, 0x72, 0x8e], [0x21, 0x91, 0x8c],
  [0x28, 0xae, 0x80], [0x5e, 0xc9, 0x62], [0xad, 0xdc, 0x30], [0xfd, 0xe7, 0x25],
];

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: el("td", {class: "x", onclick: f}, "text", otherNode). */
export function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as el(). */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** The viridis colour of a weight in [0, 1], as "rgb(r, g, b)". */
export function colour(weight) {
  const x = Math.min(Math.max(weight, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const rgb = VIRIDIS[i].map((a, k) => Math.round(a + f * (VIRIDIS[i + 1][k] - a)));
  return `rgb(${rgb.join(", ")})`;
}

/** Readable text on colour(weight): dark on the bright end, white on the dark end. */
export function ink(weight) {
  return weight > 0.6 ? "#111" : "#fff";
}

/** A weight as shown to the reader: two decimals, "<.01" for what is not zero but rounds to it. */
export function fmt(weight) {
  if (weight > 0 && weight < 0.005) return "<.01";
  return weight.toFixed(2);
}

/** The mean of same-shaped matrices (heads), element by element. */
export function average(matrices) {
  const n = matrices.length;
  return matrices[0].map((row, r) => row.map((_, c) => matrices.reduce((s, m) => s + m[r][c], 0) / n));
}
