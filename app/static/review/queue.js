// The review queue: pending pseudo-masks lowest confidence first, one on the stage at a
// time, the next ones prefetched; accept, reject or save a correction, then move on.

import { ApiError, call, getBlob, getJson, postJson } from "./api.js";
import { $, el, setText, show, showError, status } from "./dom.js";
import { decodeImage, decodeValues, encodeGreyPng } from "./png.js";

const PAGE = 50;
const PREFETCH = 2;

export class Queue {
  constructor(project, editor) {
    this.project = project;
    this.editor = editor;
    this.colours = new Map(project.categories.map((c) => [c.index, c.color]));
    this.names = new Map(project.categories.map((c) => [c.index, c.name]));
    this.jobs = new Map();
    this.reset();
  }

  reset() {
    this.items = [];
    this.cursor = null;
    this.exhausted = false;
    this.pos = 0;
    this.decided = new Map(); // mask id -> "accepted" | "rejected" | "corrected"
    this.assets = new Map(); // mask id -> Promise of what the stage shows
    this.busy = false;
  }

  async reload() {
    this.reset();
    await this.more();
    await this.show(0, "Queue reloaded. ");
  }

  async more() {
    if (this.exhausted) return;
    const q = `limit=${PAGE}` + (this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : "");
    const page = await getJson(`/v1/projects/${this.project.id}/review-queue?${q}`);
    this.items.push(...page.items);
    this.cursor = page.next_cursor;
    this.exhausted = !page.next_cursor;
  }

  current() {
    return this.items[this.pos];
  }

  left() {
    const n = this.items.filter((it) => !this.decided.has(it.mask_id)).length;
    return this.exhausted ? String(n) : `${n}+`;
  }

  job(id) {
    if (id === null || id === undefined) return Promise.resolve(null);
    if (!this.jobs.has(id)) this.jobs.set(id, getJson(`/v1/jobs/${id}`).catch(() => null));
    return this.jobs.get(id);
  }

  // Everything the stage needs for one queue item, fetched once (prefetch reuses it).
  load(item) {
    let p = this.assets.get(item.mask_id);
    if (!p) {
      const mid = item.mask_id;
      p = Promise.all([
        getBlob(`/v1/images/${item.image.id}/file`).then(decodeImage),
        getBlob(`/v1/masks/${mid}/file`).then(decodeValues),
        getBlob(`/v1/masks/${mid}/confidence`).then(decodeValues).catch(() => null),
        getJson(`/v1/masks/${mid}`),
        this.job(item.job_id),
      ]).then(([bitmap, mask, conf, detail, job]) => ({
        bitmap, mask, conf, detail, job, regions: item.weakest_regions,
      }));
      p.catch(() => this.assets.delete(mid));
      this.assets.set(mid, p);
    }
    return p;
  }

  prefetch() {
    for (let i = this.pos + 1; i <= this.pos + PREFETCH && i < this.items.length; i++) {
      this.load(this.items[i]).catch(() => {});
    }
    for (const id of [...this.assets.keys()]) {
      const at = this.items.findIndex((it) => it.mask_id === id);
      if (at < this.pos - 1 || at > this.pos + PREFETCH) this.assets.delete(id);
    }
    if (!this.exhausted && this.pos + PREFETCH + 5 >= this.items.length) {
      this.more().catch((e) => showError(e));
    }
  }

  // Puts item `pos` on the stage; `note` (what was just done) leads the status line.
  async show(pos, note = "") {
    this.pos = Math.max(0, Math.min(pos, this.items.length - 1));
    const item = this.current();
    this.renderCount();
    show("stage", !!item);
    show("empty", !item);
    if (!item) {
      this.renderFacts(null);
      return;
    }
    status(`Loading image ${item.image.id}…`);
    const assets = await this.load(item);
    if (this.current() !== item) return; // moved on while loading
    this.editor.load(assets, this.colours);
    this.renderFacts(item, assets);
    this.prefetch();
    status(`${note}Showing ${item.image.filename} (mask ${item.mask_id}).`);
  }

  renderCount() {
    const total = this.items.length;
    const text = total
      ? `${this.left()} left to review · ${this.pos + 1} of ${total}${this.exhausted ? "" : "+"} · lowest confidence first`
      : "0 left to review";
    setText("queue-count", text);
  }

  renderFacts(item, assets) {
    setText("f-file", item ? item.image.filename : "");
    setText("f-conf", item && item.mean_confidence !== null ? item.mean_confidence.toFixed(3) : "");
    const state = item ? this.decided.get(item.mask_id) || assets?.detail.review_state : "";
    setText("f-state", state || "");
    let run = "";
    if (item) {
      const d = assets?.detail;
      run = item.job_id ? `run #${item.job_id}` : "no run";
      const when = (t) => (t ? `${t.slice(0, 16).replace("T", " ")} UTC` : "unfinished");
      if (assets?.job) run += ` (${assets.job.kind}, ${assets.job.status}, ${when(assets.job.finished_at)})`;
      run += d?.model_version_id ? ` · model version #${d.model_version_id}` : " · model version: none recorded";
    }
    setText("f-run", run);
    const tags = $("tags");
    tags.replaceChildren(...(item ? item.image.tags.map((t) => el("li", { text: t })) : []));
  }

  async move(step) {
    if (!this.items.length) return;
    let target = this.pos + step;
    if (target >= this.items.length && !this.exhausted) await this.more();
    target = Math.max(0, Math.min(target, this.items.length - 1));
    if (target !== this.pos) await this.show(target);
  }

  // The next undecided item after the current one (wrapping), or stay.
  async advance(note) {
    const n = this.items.length;
    for (let k = 1; k <= n; k++) {
      const i = (this.pos + k) % n;
      if (!this.decided.has(this.items[i].mask_id)) return this.show(i, note);
    }
    if (!this.exhausted) {
      await this.more();
      if (this.items.length > n) return this.show(n, note);
    }
    this.renderCount();
    setText("f-state", this.decided.get(this.current()?.mask_id) || "");
    status(`${note}Every mask in the queue has been reviewed.`);
  }

  async guarded(work) {
    if (this.busy || !this.current()) return;
    this.busy = true;
    try {
      await work(this.current());
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) showError(e, () => this.reload());
      else showError(e);
    } finally {
      this.busy = false;
    }
  }

  decide(decision) {
    return this.guarded(async (item) => {
      const comment = $("comment").value.trim();
      const body = { decision, ...(comment ? { comment } : {}) };
      const mask = await postJson(`/v1/masks/${item.mask_id}/review`, body);
      this.decided.set(item.mask_id, mask.review_state);
      $("comment").value = "";
      const done = mask.review_state === "accepted" ? "Accepted" : "Rejected";
      await this.advance(`${done} the mask of ${item.image.filename}. `);
    });
  }

  saveCorrection() {
    return this.guarded(async (item) => {
      if (!this.editor.dirty()) {
        status("Nothing painted yet: pick the brush (B) or eraser (E) and paint first.");
        return;
      }
      const { values, width, height } = this.editor;
      const form = new FormData();
      form.append("file", await encodeGreyPng(values, width, height), "correction.png");
      const resp = await call(`/v1/masks/${item.mask_id}/correction?if_current=true`, { method: "POST", form });
      const human = await resp.json();
      this.decided.set(item.mask_id, "corrected");
      await this.advance(`Saved the correction of ${item.image.filename} as human mask #${human.id}. `);
    });
  }
}
