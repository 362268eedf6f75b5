// One sweep: its facts (status, counts, best trial), the trials' objective per epoch overlaid
// (the best thick, pruned trials dashed), parameters against the objective (one scatter per
// parameter, the best marked) and the trials table; refreshed every 3 s while it runs.
"use strict";

const SweepView = (() => {
  const REFRESH_MS = 3000;
  const { el, fmt, when } = Ui;

  function show(root, sweepId) {
    const header = el("div", { id: "sweep-header" });
    const actions = el("div", { class: "actions" });
    const curveTitle = el("h2", { text: "Objective by epoch" });
    const curveBox = el("div", { id: "sweep-curves", class: "chart", "data-series": "0" });
    const scatterBox = el("div", { id: "sweep-scatter", class: "scatters" });
    const head = el("thead");
    const body = el("tbody", { id: "trial-rows" });
    root.append(el("section", {},
      el("div", { class: "toolbar" }, el("h1", {}, "Sweep ", el("span", { class: "mono", text: sweepId })), actions),
      header, curveTitle,
      el("p", { class: "muted", text: "One line per trial: the best trial thick, pruned trials dashed." }),
      curveBox,
      el("h2", { text: "Parameters vs objective" }), scatterBox,
      el("h2", { text: "Trials" }), el("table", { class: "trials" }, head, body)));

    const curves = new Map();  // job id -> [[epoch...], [value...]]; kept once the trial ended
    let plot = null, timer = null, stopped = false;

    function render(sweep) {
      const metric = sweep.objective.metric, best = sweep.best;
      header.replaceChildren(el("div", { class: "facts" },
        fact("status", Ui.statusBadge(sweep.status)),
        fact("trials", SweepsView.countsText(sweep)),
        fact("objective", `${sweep.objective.mode} ${metric}`),
        fact("best", best ? el("a", { href: `#/job/${best.job_id}`, text: `trial ${best.trial}: ${fmt(best.objective)}` }) : "–"),
        fact("epochs run", sweep.total_epochs), fact("created", when(sweep.created_at))));
      const running = sweep.status === "running";
      Ui.renderOnChange(actions, `${sweep.id}:${running}`, () => running
        ? el("button", { id: "cancel-sweep", onclick: () => cancel(sweep.id) }, "Cancel sweep") : "");
      curveTitle.textContent = `${metric} by epoch`;
      renderTable(sweep);
      renderScatters(sweep);
    }

    function renderTable(sweep) {
      const paths = sweep.trials.length ? Object.keys(sweep.trials[0].params) : [];
      head.replaceChildren(el("tr", {}, ["", "trial", "status", ...paths, sweep.objective.metric, "epochs", "job"]
        .map((h) => el("th", { text: h }))));
      body.replaceChildren(...sweep.trials.map((t) => el("tr", {
        "data-trial": t.trial, "data-status": t.status, class: sweep.best && sweep.best.trial === t.trial ? "best" : null },
        el("td", { text: sweep.best && sweep.best.trial === t.trial ? "★" : "" }),
        el("td", { text: t.trial }), el("td", {}, Ui.statusBadge(t.status)),
        ...paths.map((p) => el("td", { class: "mono", text: fmt(t.params[p]) })),
        el("td", { text: fmt(t.objective) }),
        el("td", { text: `${t.epochs_run}/${t.epochs}${t.pruned_at_epoch ? ` (pruned at ${t.pruned_at_epoch})` : ""}` }),
        el("td", {}, el("a", { href: `#/job/${t.job_id}`, class: "mono", text: t.job_id.slice(0, 12) })))));
    }

    function renderScatters(sweep) {
      const paths = sweep.trials.length ? Object.keys(sweep.trials[0].params) : [];
      const scored = sweep.trials.filter((t) => t.objective !== null);
      scatterBox.replaceChildren(...paths.map((path) => Scatter.plot(path, sweep.objective.metric,
        scored.map((t) => ({ x: t.params[path], y: t.objective, best: sweep.best && sweep.best.trial === t.trial,
                             pruned: t.status === "pruned", label: `trial ${t.trial}` })))));
    }

    async function loadCurves(sweep) {
      const metric = sweep.objective.metric;
      const wanted = sweep.trials.filter((t) => t.epochs_run > 0 && (!curves.has(t.job_id) || Ui.ACTIVE.has(t.status)));
      await Promise.all(wanted.map(async (t) => {
        const series = await Api.request("GET", `/v1/jobs/${t.job_id}/metrics/series?points=10`);
        const points = series.epochs.filter((p) => p.values[metric] !== null && p.values[metric] !== undefined);
        curves.set(t.job_id, [points.map((p) => p.epoch), points.map((p) => p.values[metric])]);
      }));
      drawCurves(sweep);
    }

    function drawCurves(sweep) {
      const shown = sweep.trials.filter((t) => curves.has(t.job_id) && curves.get(t.job_id)[0].length);
      if (plot) plot.destroy();
      curveBox.replaceChildren();
      curveBox.dataset.series = String(shown.length);
      if (!shown.length) { curveBox.append(el("p", { class: "muted", text: "No epoch has ended yet." })); plot = null; return; }
      const data = uPlot.join(shown.map((t) => curves.get(t.job_id)));
      const bestTrial = sweep.best ? sweep.best.trial : null;
      const series = [{ label: "epoch" }].concat(shown.map((t, i) => ({
        label: `trial ${t.trial}`, spanGaps: true, points: { show: true, size: 4 },
        stroke: t.trial === bestTrial ? "#d62728" : Charts.PALETTE[i % Charts.PALETTE.length] + "99",
        width: t.trial === bestTrial ? 3.5 : 1.2, dash: t.status === "pruned" ? [5, 4] : undefined,
      })));
      plot = new uPlot({ width: Math.max(300, curveBox.clientWidth || 800), height: 320,
                         scales: { x: { time: false } }, axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] },
                                { label: sweep.objective.metric, size: 60 }],
                         series }, data, curveBox);
    }

    async function cancel(id) {
      try { await Api.request("POST", `/v1/sweeps/${id}/cancel`); refresh(); }
      catch (err) { Ui.banner(`Cancel failed: ${err.message}`); }
    }

    async function refresh() {
      try {
        const sweep = await Api.request("GET", `/v1/sweeps/${sweepId}`);
        render(sweep);
        await loadCurves(sweep);
        Ui.banner("");
        if (!stopped && sweep.status === "running") timer = setTimeout(refresh, REFRESH_MS);
      } catch (err) {
        Ui.banner(`Could not load sweep ${sweepId}: ${err.message}${err.status === 401 ? " (set an API key above)" : ""}`);
      }
    }
    refresh();
    return { destroy() { stopped = true; clearTimeout(timer); if (plot) plot.destroy(); } };
  }

  function fact(label, value) {
    return el("div", { class: "fact" }, el("span", { class: "label", text: label }), el("span", {}, value));
  }

  return { show };
})();
