// DOM helpers. Every string reaches the page through textContent or a DOM property,
// never parsed as HTML markup: names, tags, file names and comments come from users.

import { explain } from "./api.js";

export const $ = (id) => document.getElementById(id);

// A new element; `text` is set as textContent, `attrs` with setAttribute.
export function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const child of children) node.append(child);
  return node;
}

export function setText(id, text) {
  $(id).textContent = text === undefined || text === null ? "" : String(text);
}

export function show(id, visible = true) {
  $(id).hidden = !visible;
}

export function status(text) {
  setText("status", text);
}

// Shows an error in words; `onReload` (for a 409) adds a button that reloads the queue.
export function showError(e, onReload) {
  setText("error-text", typeof e === "string" ? e : explain(e));
  const reload = $("error-reload");
  reload.hidden = !onReload;
  reload.onclick = onReload ? () => { hideError(); onReload(); } : null;
  show("error");
  (onReload ? reload : $("error-close")).focus();
}

export function hideError() {
  show("error", false);
  setText("error-text", "");
}

// "#rrggbb" to [r, g, b]; anything else is grey.
export function rgb(color) {
  const m = /^#?([0-9a-f]{6})$/i.exec(color || "");
  if (!m) return [128, 128, 128];
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
