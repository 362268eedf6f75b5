// Charts on uPlot (vendored, MIT): a live loss curve with an EMA over the raw points, and an
// overlay of several jobs' curves.
"use strict";

const Charts = (() => {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

  // Exponential moving average with TensorBoard's debiasing (the start is not pulled to 0).
  function ema(values, weight) {
    const out = new Array(values.length);
    let last = 0, count = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || !Number.isFinite(v)) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * v;
      count++;
      out[i] = weight > 0 ? last / (1 - Math.pow(weight, count)) : v;
    }
    return out;
  }

  function size(container) {
    return { width: Math.max(300, container.clientWidth || 800), height: 320 };
  }

  function axes(yLabel) {
    return [{ label: "step" }, { label: yLabel, size: 60 }];
  }

  // Raw step loss (faint) plus its EMA (solid); update(x, y, weight) redraws.
  function lossChart(container, logScale) {
    const opts = Object.assign(size(container), {
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
      axes: axes("loss"),
      series: [{ label: "step" },
               { label: "loss (raw)", stroke: "rgba(31,119,180,0.35)", width: 1, points: { show: false } },
               { label: "loss (EMA)", stroke: "#1f77b4", width: 2, points: { show: false } }],
      legend: { live: true },
    });
    const plot = new uPlot(opts, [[], [], []], container);
    resizeWith(container, plot);
    return {
      plot,
      update(x, y, weight) { plot.setData([x, y, ema(y, weight)]); },
      destroy() { plot.destroy(); },
    };
  }

  // Several (label, x, y) curves on one step axis; uPlot.join aligns their x values.
  function overlayChart(container, curves, weight, logScale) {
    const tables = curves.map((c) => [c.x, ema(c.y, weight)]);
    const data = tables.length ? uPlot.join(tables) : [[]];
    const opts = Object.assign(size(container), {
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
      axes: axes("loss (EMA)"),
      series: [{ label: "step" }].concat(curves.map((c, i) => ({
        label: c.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
        points: { show: false },
      }))),
    });
    const plot = new uPlot(opts, data, container);
    resizeWith(container, plot);
    return plot;
  }

  function resizeWith(container, plot) {
    if (!window.ResizeObserver) return;
    new ResizeObserver(() => plot.setSize(size(container))).observe(container);
  }

  return { ema, lossChart, overlayChart, PALETTE };
})();
