// Boot, sign-in, views and the keyboard. Paths: /review (pick a project) and
// /review/{project_id}; "#suggestions" picks the second view. No key is ever in a URL.

import { clearKey, getJson, getKey, setKey } from "./api.js";
import { $, el, hideError, setText, show, showError, status } from "./dom.js";
import { Editor } from "./editor.js";
import { Queue } from "./queue.js";
import { renderSuggestions } from "./suggestions.js";

const SECTIONS = ["signin", "projects", "queue", "suggestions"];
let queue = null;
let project = null;
let editor = null;

function only(id) {
  for (const s of SECTIONS) show(s, s === id);
}

function projectIdFromPath() {
  const m = /^\/review\/(\d+)\/?$/.exec(window.location.pathname);
  return m ? Number(m[1]) : null;
}

async function signIn(key) {
  setKey(key);
  try {
    await getJson("/v1/projects");
  } catch (e) {
    clearKey();
    showError(e);
    only("signin");
    $("key").focus();
    return;
  }
  hideError();
  await start();
}

async function start() {
  show("sign-out");
  const pid = projectIdFromPath();
  if (pid === null) return listProjects();
  try {
    project = await getJson(`/v1/projects/${pid}`);
  } catch (e) {
    showError(e);
    return listProjects();
  }
  setText("project-name", `Project: ${project.name}`);
  show("views");
  renderLegend();
  editor = editor || new Editor(); // one: it listens to the stage's pointer events
  editor.onChange = () => {
    $("undo").disabled = !editor.canUndo();
    $("save").disabled = !editor.dirty();
  };
  queue = new Queue(project, editor);
  await openView(window.location.hash === "#suggestions" ? "suggestions" : "queue");
}

async function listProjects() {
  const page = await getJson("/v1/projects").catch((e) => { showError(e); return { items: [] }; });
  const items = page.items || page;
  $("project-list").replaceChildren(
    ...items.map((p) => el("li", {}, [el("a", { text: `${p.name} (#${p.id})`, attrs: { href: `/review/${p.id}` } })]))
  );
  show("views", false);
  only("projects");
  status(items.length ? "Pick a project to review." : "No projects visible to this key.");
}

function renderLegend() {
  const cats = [{ index: 0, name: "background", color: "#000000" }, ...project.categories];
  $("categories").replaceChildren(
    ...cats.map((c, n) => {
      const input = el("input", { attrs: { type: "radio", name: "category", value: c.index } });
      input.checked = c.index === 1 || (project.categories.length === 0 && c.index === 0);
      input.addEventListener("change", () => { editor.category = c.index; });
      const swatch = el("span", { cls: "swatch", attrs: { "aria-hidden": "true" } });
      swatch.style.background = c.color;
      const key = n < 10 ? ` (${n})` : "";
      return el("li", {}, [el("label", {}, [input, swatch, `${c.name} · ${c.index}${key}`])]);
    })
  );
}

function pickCategory(n) {
  const radios = [...document.querySelectorAll('input[name="category"]')];
  if (n < radios.length) {
    radios[n].checked = true;
    editor.category = Number(radios[n].value);
    status(`Painting ${radios[n].parentElement.textContent}.`);
  }
}

function setTool(tool) {
  editor.setTool(tool);
  document.querySelector(`input[name="tool"][value="${tool}"]`).checked = true;
}

async function openView(view) {
  for (const [tab, v] of [["tab-queue", "queue"], ["tab-suggestions", "suggestions"]]) {
    $(tab).setAttribute("aria-pressed", String(v === view));
  }
  history.replaceState(null, "", view === "suggestions" ? "#suggestions" : window.location.pathname);
  only(view);
  if (view === "suggestions") return renderSuggestions(project);
  if (!queue.items.length) {
    try {
      await queue.reload();
    } catch (e) {
      showError(e);
    }
  }
  $("stage").focus();
}

function typing(target) {
  return target.matches?.('input[type="text"], input[type="password"], input[type="number"], textarea, select');
}

function onKey(e) {
  if (!queue || $("queue").hidden || e.altKey || e.metaKey) return;
  if (e.key === "Escape" && typing(e.target)) { $("stage").focus(); return; }
  if (typing(e.target)) return;
  if (e.ctrlKey && e.key.toLowerCase() !== "z") return;
  const slider = e.target.matches?.('input[type="range"], input[type="radio"]');
  const painting = editor.tool !== "view";
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const actions = {
    a: () => queue.decide("accept"),
    r: () => queue.decide("reject"),
    s: () => queue.saveCorrection(),
    z: () => editor.undo(),
    b: () => setTool("brush"),
    e: () => setTool("eraser"),
    v: () => setTool("view"),
    o: () => $("show-mask").click(),
    h: () => $("show-heat").click(),
    w: () => $("show-regions").click(),
    c: () => $("comment").focus(),
    "[": () => { $("brush-size").stepDown(); $("brush-size").dispatchEvent(new Event("input")); },
    "]": () => { $("brush-size").stepUp(); $("brush-size").dispatchEvent(new Event("input")); },
    i: () => editor.moveCursor(0, -1, e.shiftKey),
    k: () => editor.moveCursor(0, 1, e.shiftKey),
    j: () => editor.moveCursor(-1, 0, e.shiftKey),
    l: () => editor.moveCursor(1, 0, e.shiftKey),
    " ": () => editor.paintAtCursor(),
  };
  if (!slider) {
    actions.ArrowRight = () => queue.move(1);
    actions.ArrowDown = () => queue.move(1);
    actions.ArrowLeft = () => queue.move(-1);
    actions.ArrowUp = () => queue.move(-1);
  }
  if (/^[0-9]$/.test(k)) actions[k] = () => pickCategory(Number(k));
  if (k === " " && (!painting || e.target.matches?.("button, a, input"))) return;
  const act = actions[k];
  if (act) {
    e.preventDefault();
    act();
  }
}

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    if (key) signIn(key);
    else showError("Type an API key first.");
  });
  $("sign-out").addEventListener("click", () => {
    clearKey();
    window.location.assign(window.location.pathname);
  });
  $("error-close").addEventListener("click", () => { hideError(); $("main").focus(); });
  $("tab-queue").addEventListener("click", () => openView("queue"));
  $("tab-suggestions").addEventListener("click", () => openView("suggestions"));
  $("tab-projects").addEventListener("click", () => window.location.assign("/review"));
  $("budget-form").addEventListener("submit", (e) => { e.preventDefault(); renderSuggestions(project); });
  $("accept").addEventListener("click", () => queue.decide("accept"));
  $("reject").addEventListener("click", () => queue.decide("reject"));
  $("save").addEventListener("click", () => queue.saveCorrection());
  $("undo").addEventListener("click", () => editor.undo());
  $("next").addEventListener("click", () => queue.move(1));
  $("prev").addEventListener("click", () => queue.move(-1));
  $("show-mask").addEventListener("change", (e) => { $("layer-mask").hidden = !e.target.checked; });
  $("show-heat").addEventListener("change", (e) => { $("layer-heat").hidden = !e.target.checked; });
  $("show-regions").addEventListener("change", (e) => { $("layer-regions").hidden = !e.target.checked; });
  const opacity = () => { $("layer-mask").style.opacity = String($("opacity").value / 100); };
  $("opacity").addEventListener("input", opacity);
  opacity();
  const size = () => { if (editor) { editor.radius = Number($("brush-size").value); if (editor.width) editor.drawRegions(); } };
  $("brush-size").addEventListener("input", size);
  for (const r of document.querySelectorAll('input[name="tool"]')) {
    r.addEventListener("change", () => setTool(r.value));
  }
  document.addEventListener("keydown", onKey);
  window.addEventListener("t2m:unauthorized", () => {
    clearKey();
    queue = null;
    show("views", false);
    show("sign-out", false);
    only("signin");
  });
}

wire();
if (getKey()) {
  start();
} else {
  only("signin");
  $("key").focus();
}
