// Compare: several jobs' step-loss curves overlaid (EMA-smoothed, same slider as the job page),
// refreshed every 3 s while any of them is still active.
"use strict";

const CompareView = (() => {
  const REFRESH_MS = 3000;
  const DISPLAY_POINTS = 1500;
  const { el } = Ui;

  function show(root, ids) {
    const picker = el("div", { class: "picker" });
    const chartBox = el("div", { id: "compare-chart", class: "chart", "data-series": "0" });
    const slider = el("input", { id: "compare-ema", type: "range", min: "0", max: "0.99", step: "0.01", value: "0.6" });
    const legend = el("ul", { id: "compare-legend", class: "legend" });
    root.append(el("section", {},
      el("div", { class: "toolbar" }, el("h1", { text: "Compare" })),
      el("p", { class: "muted", text: "Tick jobs to overlay their step-loss curves." }), picker,
      el("label", {}, "EMA smoothing ", slider), chartBox, legend));

    let plot = null, timer = null, stopped = false, curves = [];
    function draw() {
      if (plot) plot.destroy();
      chartBox.replaceChildren();
      plot = Charts.overlayChart(chartBox, curves, Number(slider.value), false);
      chartBox.dataset.series = String(curves.length);
      legend.replaceChildren(...curves.map((c, i) => el("li", { style: `color:${Charts.PALETTE[i % Charts.PALETTE.length]}` },
        el("a", { href: `#/job/${c.id}`, text: c.label }), ` — ${c.x.length} points${c.downsampled ? " (downsampled)" : ""}`)));
    }
    slider.addEventListener("input", draw);

    async function refresh() {
      try {
        const page = await Api.request("GET", "/v1/jobs?limit=50");
        picker.replaceChildren(...page.items.map((job) => el("label", { class: "pick" },
          el("input", { type: "checkbox", value: job.id, checked: ids.includes(job.id), onchange: (event) => {
            const next = event.target.checked ? ids.concat(job.id) : ids.filter((id) => id !== job.id);
            location.hash = `#/compare?ids=${next.join(",")}`;
          } }), ` ${job.id.slice(0, 8)} `, Ui.statusBadge(job.status))));
        const jobs = await Promise.all(ids.map((id) => Api.request("GET", `/v1/jobs/${id}`)));
        const series = await Promise.all(ids.map((id) => Api.request("GET", `/v1/jobs/${id}/metrics/series?points=${DISPLAY_POINTS}`)));
        curves = ids.map((id, i) => ({ id, label: `${id.slice(0, 8)} (${jobs[i].status})`, x: series[i].step,
                                       y: series[i].values, downsampled: series[i].downsampled }));
        draw();
        Ui.banner("");
        if (!stopped && jobs.some((job) => Ui.ACTIVE.has(job.status))) timer = setTimeout(refresh, REFRESH_MS);
      } catch (err) {
        Ui.banner(`Could not load the comparison: ${err.message}`);
      }
    }
    refresh();
    return { destroy() { stopped = true; clearTimeout(timer); if (plot) plot.destroy(); } };
  }

  return { show };
})();
