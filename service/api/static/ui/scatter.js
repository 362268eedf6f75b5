// A small SVG scatter plot (no library): one parameter's values against the objective. Numbers
// on a linear axis, or a log axis when they are positive and span more than two decades; other
// values (strings, objects) as categories in order of appearance.
"use strict";

const Scatter = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 340, H = 230, PAD = { left: 56, right: 12, top: 26, bottom: 36 };

  function node(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function xAxis(points) {
    const numeric = points.every((p) => typeof p.x === "number");
    if (!numeric) {
      const labels = [...new Set(points.map((p) => JSON.stringify(p.x)))];
      return { pos: (x) => labels.indexOf(JSON.stringify(x)), lo: -0.5, hi: labels.length - 0.5,
               ticks: labels.map((l, i) => [i, l.replace(/^"|"$/g, "")]) };
    }
    const xs = points.map((p) => p.x);
    let lo = Math.min(...xs), hi = Math.max(...xs);
    const log = lo > 0 && hi / lo > 100;
    const f = log ? Math.log10 : (v) => v;
    lo = f(lo); hi = f(hi);
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    return { pos: f, lo, hi, log, ticks: [[lo, tick(lo, log)], [hi, tick(hi, log)]] };
  }

  function tick(v, log) { return log ? Number(Math.pow(10, v)).toPrecision(2) : Number(v).toPrecision(3); }

  function plot(path, metric, points) {
    const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "scatter", "data-points": points.length });
    svg.append(node("text", { x: PAD.left, y: 16, class: "title" }, `${path} vs ${metric}`));
    if (!points.length) { svg.append(node("text", { x: PAD.left, y: H / 2, class: "muted" }, "no objective yet")); return svg; }
    const ax = xAxis(points);
    const ys = points.map((p) => p.y);
    let ylo = Math.min(...ys), yhi = Math.max(...ys);
    if (ylo === yhi) { ylo -= 0.5; yhi += 0.5; }
    const sx = (v) => PAD.left + (ax.pos(v) - ax.lo) / (ax.hi - ax.lo) * (W - PAD.left - PAD.right);
    const sxRaw = (u) => PAD.left + (u - ax.lo) / (ax.hi - ax.lo) * (W - PAD.left - PAD.right);
    const sy = (v) => H - PAD.bottom - (v - ylo) / (yhi - ylo) * (H - PAD.top - PAD.bottom);
    svg.append(node("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: "axis" }));
    svg.append(node("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: "axis" }));
    ax.ticks.forEach(([u, label], i) => {  // the end ticks lean inwards, so they are never cut off
      const anchor = ax.ticks.length === 2 ? (i === 0 ? "start" : "end") : "middle";
      svg.append(node("text", { x: sxRaw(u), y: H - PAD.bottom + 14, "text-anchor": anchor, class: "tick" }, label));
    });
    svg.append(node("text", { x: (W + PAD.left) / 2, y: H - 4, "text-anchor": "middle", class: "tick" }, ax.log ? `${path} (log)` : path));
    for (const v of [ylo, yhi]) svg.append(node("text", { x: PAD.left - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, Number(v).toPrecision(3)));
    for (const p of [...points].sort((a, b) => a.best - b.best)) {  // the best drawn last, on top
      const dot = node("circle", { cx: sx(p.x), cy: sy(p.y), r: p.best ? 7 : 4,
                                   class: p.best ? "dot best" : p.pruned ? "dot pruned" : "dot" });
      dot.append(node("title", {}, `${p.label}: ${path}=${JSON.stringify(p.x)}, ${metric} ${p.y}`));
      svg.append(dot);
    }
    return svg;
  }

  return { plot };
})();
