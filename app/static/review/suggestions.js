// The lead's view: the images worth a pixel mask next (with reasons), and per category
// the held-out IoU of the latest run and how many human-checked masks it has.

import { getBlob, getJson } from "./api.js";
import { $, el, setText, showError, status } from "./dom.js";

const LOW_IOU = 0.5; // marked "(low)": a category the run segments badly
let objectUrls = [];

function number(v) {
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : JSON.stringify(v);
}

function categoryRows(project, categories) {
  const colours = new Map(project.categories.map((c) => [c.index, c.color]));
  return categories.map((c) => {
    const swatch = el("span", { cls: "swatch", attrs: { "aria-hidden": "true" } });
    swatch.style.background = colours.get(c.index) || "#888";
    const name = el("td", {}, [swatch, " ", c.name]);
    const low = c.heldout_iou !== null && c.heldout_iou < LOW_IOU;
    const iou = c.heldout_iou === null ? "not measured" : c.heldout_iou.toFixed(3);
    const iouCell = el("td", { text: low ? `${iou} (low)` : iou, cls: low ? "low" : "" });
    return el("tr", {}, [
      name,
      el("td", { text: c.index }),
      el("td", { text: c.human_masks }),
      iouCell,
      el("td", { text: c.strong ? "strong (enough masks)" : "weak (needs masks)" }),
    ]);
  });
}

function card(s) {
  const img = el("img", { attrs: { alt: s.image.filename, width: s.image.width, height: s.image.height } });
  getBlob(`/v1/images/${s.image.id}/file`)
    .then((b) => {
      const url = URL.createObjectURL(b);
      objectUrls.push(url);
      img.src = url;
    })
    .catch(() => { img.alt = `${s.image.filename} (could not load)`; });
  const details = Object.entries(s.reasons || {}).map(([k, v]) => `${k}: ${number(v)}`).join(" · ");
  return el("li", { attrs: { tabindex: "0" } }, [
    img,
    el("p", { text: s.image.filename }),
    el("p", { text: `Score ${number(s.score)} — ${s.reason}` }),
    el("p", { cls: "reasons", text: details }),
    el("p", { cls: "reasons", text: `Tags: ${s.image.tags.join(", ") || "none"}` }),
  ]);
}

export async function renderSuggestions(project) {
  const budget = Math.max(1, Math.min(1000, parseInt($("budget").value, 10) || 12));
  try {
    status("Loading suggestions…");
    const data = await getJson(`/v1/projects/${project.id}/suggestions?budget=${budget}`);
    objectUrls.forEach((u) => URL.revokeObjectURL(u));
    objectUrls = [];
    setText("sugg-run", data.job_id ? `From run #${data.job_id}.` : "No finished run yet: nothing ranked.");
    $("cat-table").tBodies[0].replaceChildren(...categoryRows(project, data.categories));
    const grid = $("sugg-grid");
    grid.replaceChildren(...data.items.map(card));
    status(`${data.items.length} images suggested for pixel masks.`);
  } catch (e) {
    showError(e);
  }
}
