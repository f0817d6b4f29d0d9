// Small DOM helpers: element creation, keyed lists, inline icons. No framework on purpose.

/**
 * `h("button", { class: "btn", onclick, "aria-label": "Mute" }, "Mute")`.
 * Keys starting with "on" become listeners, `class`/`text`/`hidden`/`disabled`/`value`
 * are set as properties, everything else as attributes (null/false skip it).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (["hidden", "disabled", "value", "checked", "muted", "autoplay"].includes(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el`. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Set an attribute only when it changes (avoids needless DOM mutations and a11y chatter). */
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else {
    const text = value === true ? "" : String(value);
    if (el.getAttribute(name) !== text) el.setAttribute(name, text);
  }
}

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * Keep `parent`'s children in step with `items` without recreating existing ones:
 * `create(item)` builds a node for a new key, `update(node, item)` refreshes it,
 * `release(node)` (optional) lets go of what a node holds before it is removed.
 * Nodes are only moved when out of place, so focus and media playback survive.
 */
export function syncKeyed(parent, items, keyOf, create, update, release) {
  const nodes = parent.__keyed || (parent.__keyed = new Map());
  const wanted = new Set();
  items.forEach((item, index) => {
    const key = keyOf(item);
    wanted.add(key);
    let node = nodes.get(key);
    if (!node) {
      node = create(item);
      nodes.set(key, node);
    }
    update(node, item);
    if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] || null);
  });
  for (const [key, node] of nodes) {
    if (!wanted.has(key)) {
      if (release) release(node);
      node.remove();
      nodes.delete(key);
    }
  }
}

// Inline SVG icons (24×24, stroke-based). Always decorative: the text next to them carries meaning.
const ICONS = {
  mic: "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3zM5 11a7 7 0 0 0 14 0M12 18v3",
  micOff:
    "M3 3l18 18M9 9v3a3 3 0 0 0 5.1 2.1M15 10V6a3 3 0 0 0-5.7-1.3M5 11a7 7 0 0 0 11.6 5.3M19 11a7 7 0 0 1-.6 2.8M12 18v3",
  camera: "M3 7h12v10H3zM15 10l6-3v10l-6-3",
  cameraOff: "M3 3l18 18M3 7h4M11 7h4v4M15 15v2H3V7M15 10l6-3v10l-6-3",
  screen: "M3 4h18v12H3zM8 20h8M12 16v4",
  hand: "M7 11V6a1.5 1.5 0 0 1 3 0v4M10 10V4.5a1.5 1.5 0 0 1 3 0V10M13 10V5.5a1.5 1.5 0 0 1 3 0V12M16 9.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7h-.5a6 6 0 0 1-5-2.7L4 15a1.5 1.5 0 0 1 2.5-1.7L7 14",
  leave: "M10 17l-5-5 5-5M5 12h11M14 4h5v16h-5",
  lock: "M6 11h12v9H6zM8 11V8a4 4 0 0 1 8 0v3",
  link: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  live: "M12 12m-2 0a2 2 0 1 0 4 0a2 2 0 1 0-4 0M7.8 7.8a6 6 0 0 0 0 8.4M16.2 7.8a6 6 0 0 1 0 8.4M5 5a10 10 0 0 0 0 14M19 5a10 10 0 0 1 0 14",
  close: "M6 6l12 12M18 6L6 18",
};

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}
