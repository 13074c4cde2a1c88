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
    this.original = assets.mask.values;
    this.regions = assets.regions || [];
    this.colours = new Map([...colours].map(([i, c]) => [i, rgb(c)]));
    this.undoStack = [];
    this.cursor = null;
    for (const c of [...Object.values(this.layers), this.preview]) {
      c.width = width;
      c.height = height;
    }
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
    pctx.globalAlpha = 0.45;
    pctx.drawImage(this.layers.image, 0, 0);
    pctx.globalAlpha = 1;
    if (!conf) return;
    const img = ctx.createImageData(this.width, this.height);
    for (let i = 0; i < conf.values.length; i++) img.data.set(heat(conf.values[i]), i * 4);
    ctx.putImageData(img, 0, 0);
    pctx.drawImage(this.layers.heat, 0, 0);
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
    for (const ctx of [this.layers.regions.getContext("2d"), this.preview.getContext("2d")]) {
      if (ctx.canvas === this.layers.regions) ctx.clearRect(0, 0, this.width, this.height);
      const lw = Math.max(1, Math.round(Math.max(this.width, this.height) / 160));
      ctx.lineWidth = lw;
      ctx.font = `${Math.max(8, lw * 8)}px sans-serif`;
      this.regions.forEach((r, rank) => {
        const [x0, y0, x1, y1] = r.bbox;
        ctx.setLineDash([]);
        ctx.strokeStyle = "#000";
        ctx.strokeRect(x0 + lw / 2, y0 + lw / 2, x1 - x0 - lw, y1 - y0 - lw);
        ctx.setLineDash([lw * 3, lw * 2]);
        ctx.strokeStyle = "#ffe000";
        ctx.strokeRect(x0 + lw / 2, y0 + lw / 2, x1 - x0 - lw, y1 - y0 - lw);
        ctx.fillStyle = "#ffe000";
        ctx.fillText(`${rank + 1}: ${r.score.toFixed(2)}`, x0 + lw * 2, y0 + lw * 9);
      });
    }
    if (this.cursor && this.tool !== "view") {
      const ctx = this.layers.regions.getContext("2d");
      ctx.setLineDash([]);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(this.cursor[0] + 0.5, this.cursor[1] + 0.5, this.radius, 0, Math.PI * 2);
      ctx.stroke();
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

  dirty() {
    if (!this.values) return false;
    for (let i = 0; i < this.values.length; i++) if (this.values[i] !== this.original[i]) return true;
    return false;
  }
}
