// Small helpers every view uses: element building, formatting, badges, the banner.
"use strict";

const Ui = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(digits || 4);
    return String(value);
  }

  function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }

  function progressBar(progress) {
    const fraction = progress.steps ? progress.step / progress.steps : 0;
    return el("div", { class: "progress", title: `step ${progress.step} of ${progress.steps}, epoch ${progress.epoch} of ${progress.epochs}` },
      el("div", { class: "bar", style: `width:${(100 * Math.min(1, fraction)).toFixed(1)}%` }),
      el("span", { text: `${(100 * fraction).toFixed(0)}%` }));
  }

  function statusBadge(status) { return el("span", { class: `status ${status}`, text: status }); }

  const ACTIVE = new Set(["waiting", "queued", "running"]);  // cancel applies; the stream is live

  function banner(message) {
    const node = document.getElementById("banner");
    node.hidden = !message;
    node.textContent = message || "";
  }

  // Rebuild a container's children only when `key` changes: a status event arrives on every
  // progress tick, and a button replaced between mousedown and mouseup never gets its click.
  function renderOnChange(container, key, build) {
    if (container.dataset.renderKey === key) return;
    container.dataset.renderKey = key;
    container.replaceChildren(...[build()].flat());
  }

  return { el, fmt, when, progressBar, statusBadge, ACTIVE, banner, renderOnChange };
})();
