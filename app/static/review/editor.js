// The image stage: image, confidence heat map, mask overlay and weakest regions as
// stacked canvases, and a brush / eraser that paints class indices into the mask.

import { $, rgb } from "./dom.js";

const UNDO_LIMIT = 50;

// Confidence 0..255 to a heat colour: low is opaque red, through yellow, high is clear.
function heat(c) {
  const t = c / 255;
  const u = Math.min(1, t * 2);
  return [230 + 20 * u, 20 + 180 * u, 20 + 20 * u, Math.round((1 - t) * 220)];
}

export class Editor {
  constructor() {
    this.stage = $("stage");
    this.layers = {
      image: $("layer-image"), heat: $("layer-heat"),
      mask: $("layer-mask"), regions: $("layer-regions"),
    };
    this.preview = $("heat-preview");
    this.tool = "view";
    this.category = 1;
    this.radius = 4;
    this.cursor = null; // keyboard brush position, image pixels
    this.onChange = () => {};
    this.stage.addEventListener("pointerdown", (e) => this.pointer(e, true));
    this.stage.addEventListener("pointermove", (e) => this.pointer(e, false));
    for (const ev of ["pointerup", "pointercancel", "pointerleave"]) {
      this.stage.addEventListener(ev, () => { this.stroke = null; });
    }
  }

  // assets: {bitmap, mask: {width, height, values}, conf, regions}; colours: index -> "#rrggbb"
  load(assets, colours) {
    const { width, height } = assets.mask;
    this.width = width;
    this.height = height;
    this.values = new Uint8Array(assets.mask.values);
    this.regions = assets.regions || [];
    this.colours = new Map([...colours].map(([i, c]) => [i, rgb(c)]));
    this.undoStack = [];
    this.cursor = null;
    // Outlines and their labels are drawn k times finer than the image, so they stay
    // crisp when a small image is scaled up on screen.
    this.k = Math.max(1, Math.min(8, Math.ceil(1024 / Math.max(width, height))));
    for (const c of Object.values(this.layers)) {
      const k = c === this.layers.regions ? this.k : 1;
      c.width = width * k;
      c.height = height * k;
    }
    this.preview.width = width * this.k;
    this.preview.height = height * this.k;
    const ictx = this.layers.image.getContext("2d");
    ictx.imageSmoothingEnabled = false;
    ictx.drawImage(assets.bitmap, 0, 0, width, height);
    this.drawHeat(assets.conf);
    this.overlay = this.layers.mask.getContext("2d").createImageData(width, height);
    this.paintOverlay(0, 0, width, height);
    this.drawRegions();
    this.onChange();
  }

  drawHeat(conf) {
    const ctx = this.layers.heat.getContext("2d");
    ctx.clearRect(0, 0, this.width, this.height);
    const pctx = this.preview.getContext("2d");
    const [pw, ph] = [this.preview.width, this.preview.height];
    pctx.imageSmoothingEnabled = false;
    pctx.clearRect(0, 0, pw, ph);
    pctx.globalAlpha = 0.45;
    pctx.drawImage(this.layers.image, 0, 0, pw, ph);
    pctx.globalAlpha = 1;
    if (!conf) return;
    const img = ctx.createImageData(this.width, this.height);
    for (let i = 0; i < conf.values.length; i++) img.data.set(heat(conf.values[i]), i * 4);
    ctx.putImageData(img, 0, 0);
    pctx.drawImage(this.layers.heat, 0, 0, pw, ph);
  }

  paintOverlay(x0, y0, x1, y1) {
    const d = this.overlay.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * this.width + x;
        const c = this.values[i];
        const col = c > 0 && c < 255 ? this.colours.get(c) : null;
        if (col) d.set([col[0], col[1], col[2], 255], i * 4);
        else d[i * 4 + 3] = 0;
      }
    }
    this.layers.mask.getContext("2d").putImageData(this.overlay, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  drawRegions() {
    const k = this.k;
    const top = this.layers.regions.getContext("2d");
    top.clearRect(0, 0, this.width * k, this.height * k);
    for (const ctx of [top, this.preview.getContext("2d")]) {
      const lw = Math.max(2, Math.round((Math.max(this.width, this.height) * k) / 300));
      ctx.lineWidth = lw;
      ctx.font = `bold ${lw * 7}px sans-serif`;
      this.regions.forEach((r, rank) => {
        const [x0, y0, x1, y1] = r.bbox.map((v) => v * k);
        const box = [x0 + lw / 2, y0 + lw / 2, x1 - x0 - lw, y1 - y0 - lw];
        ctx.setLineDash([]);
        ctx.strokeStyle = "#000";
        ctx.strokeRect(...box);
        ctx.setLineDash([lw * 3, lw * 2]);
        ctx.strokeStyle = "#ffe000";
        ctx.strokeRect(...box);
        const label = `${rank + 1}: ${r.score.toFixed(2)}`;
        ctx.fillStyle = "rgb(0 0 0 / 0.7)";
        ctx.fillRect(x0 + lw, y0 + lw, ctx.measureText(label).width + lw * 2, lw * 8.5);
        ctx.fillStyle = "#ffe000";
        ctx.fillText(label, x0 + lw * 2, y0 + lw * 7.5);
      });
    }
    if (this.cursor && this.tool !== "view") {
      top.setLineDash([]);
      top.strokeStyle = "#fff";
      top.lineWidth = Math.max(1, k / 2);
      top.beginPath();
      top.arc((this.cursor[0] + 0.5) * k, (this.cursor[1] + 0.5) * k, this.radius * k, 0, Math.PI * 2);
      top.stroke();
    }
  }

  setTool(tool) {
    this.tool = tool;
    this.stage.classList.toggle("painting", tool !== "view");
    if (tool !== "view" && !this.cursor && this.width) {
      this.cursor = [this.width >> 1, this.height >> 1];
    }
    if (this.width) this.drawRegions();
  }

  // Paints one round dab of the current tool at image pixel (cx, cy).
  dab(cx, cy) {
    const r = this.radius;
    const value = this.tool === "eraser" ? 0 : this.category;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(this.width, Math.ceil(cx + r + 1));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(this.height, Math.ceil(cy + r + 1));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) this.values[y * this.width + x] = value;
      }
    }
    if (x1 > x0 && y1 > y0) this.paintOverlay(x0, y0, x1, y1);
  }

  beginStroke() {
    this.undoStack.push(new Uint8Array(this.values));
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
  }

  pointer(e, down) {
    if (this.tool === "view" || !this.width) return;
    if (down) {
      this.stage.setPointerCapture?.(e.pointerId);
      this.beginStroke();
      this.stroke = true;
    }
    if (!this.stroke) return;
    e.preventDefault();
    const rect = this.layers.image.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * this.width) / rect.width;
    const y = ((e.clientY - rect.top) * this.height) / rect.height;
    this.cursor = [Math.floor(x), Math.floor(y)];
    this.dab(Math.floor(x), Math.floor(y));
    this.drawRegions();
    this.onChange();
  }

  // Keyboard painting: move the brush cursor by (dx, dy) steps; `paint` dabs there.
  moveCursor(dx, dy, fine) {
    if (this.tool === "view" || !this.width) return;
    const step = fine ? 1 : Math.max(1, this.radius);
    const [x, y] = this.cursor || [this.width >> 1, this.height >> 1];
    this.cursor = [
      Math.min(this.width - 1, Math.max(0, x + dx * step)),
      Math.min(this.height - 1, Math.max(0, y + dy * step)),
    ];
    this.drawRegions();
  }

  paintAtCursor() {
    if (this.tool === "view" || !this.cursor) return;
    this.beginStroke();
    this.dab(this.cursor[0], this.cursor[1]);
    this.drawRegions();
    this.onChange();
  }

  undo() {
    const prev = this.undoStack.pop();
    if (!prev) return;
    this.values = prev;
    this.paintOverlay(0, 0, this.width, this.height);
    this.onChange();
  }

  canUndo() {
    return this.undoStack?.length > 0;
  }

  // Painted since the mask was loaded (and not all undone): there is something to save.
  dirty() {
    return this.canUndo();
  }
}
