// One job: live step-loss curve (raw + EMA), epoch table, spec, downloads, cancel, predict.
// The curve starts from /metrics/series (downsampled when long), then every point the event
// stream pushes is appended raw.
"use strict";

const JobView = (() => {
  const DISPLAY_POINTS = 2000;
  const { el, fmt, when } = Ui;
  const EPOCH_KEYS = ["train_loss", "train_error", "val_loss", "val_error"];

  function show(root, jobId) {
    const state = { job: null, x: [], y: [], total: 0, downsampled: false, live: 0, epochs: [], stop: null };
    const header = el("div", { id: "job-header" });
    const actions = el("div", { class: "actions" });
    const chartBox = el("div", { id: "loss-chart", class: "chart", "data-points": "0" });
    const note = el("p", { id: "curve-note", class: "muted" });
    const slider = el("input", { id: "ema", type: "range", min: "0", max: "0.99", step: "0.01", value: "0.6" });
    const sliderValue = el("span", { text: "0.60" });
    const logBox = el("input", { id: "log-y", type: "checkbox" });
    const epochBody = el("tbody", { id: "epoch-rows" });
    const spec = el("pre", { id: "spec", class: "spec" });
    const downloads = el("div", { class: "downloads" });
    const predict = predictForm(jobId);
    root.append(el("section", {},
      el("div", { class: "toolbar" }, el("h1", {}, "Job ", el("span", { class: "mono", text: jobId })), actions),
      header,
      el("h2", { text: "Step loss" }),
      el("div", { class: "controls" },
        el("label", {}, "EMA smoothing ", slider, sliderValue),
        el("label", {}, logBox, " log scale")),
      chartBox, note,
      el("h2", { text: "Epochs" }),
      el("table", { class: "epochs" },
        el("thead", {}, el("tr", {}, ["epoch", "step", ...EPOCH_KEYS].map((h) => el("th", { text: h })))), epochBody),
      el("div", { class: "columns" },
        el("div", {}, el("h2", { text: "Parameters" }), downloads, el("h2", { text: "Predict" }), predict.node),
        el("div", {}, el("h2", { text: "Spec" }), spec))));

    let chart = Charts.lossChart(chartBox, false), frame = null;
    function redraw() {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = null;
        chart.update(state.x, state.y, Number(slider.value));
        chartBox.dataset.points = String(state.x.length);
        const shown = `${state.x.length.toLocaleString()} points`;
        note.textContent = state.downsampled
          ? `Downsampled: ${shown} on screen for ${(state.total + state.live).toLocaleString()} recorded (each bucket keeps its min and max, so spikes stay visible; /metrics has every point).`
          : `${shown}, every recorded point.`;
      });
    }
    slider.addEventListener("input", () => { sliderValue.textContent = Number(slider.value).toFixed(2); redraw(); });
    logBox.addEventListener("change", () => { chart.destroy(); chart = Charts.lossChart(chartBox, logBox.checked); redraw(); });

    function renderJob(job) {
      state.job = job;
      header.replaceChildren(el("div", { class: "facts" },
        fact("status", Ui.statusBadge(job.status)), fact("progress", Ui.progressBar(job.progress)),
        fact("attempt", job.attempt), fact("parameters", job.param_count.toLocaleString()),
        fact("created", when(job.created_at)), fact("started", when(job.started_at)),
        fact("finished", when(job.finished_at)),
        job.sweep_id ? fact("sweep", el("a", { href: `#/sweep/${job.sweep_id}`, text: `trial ${job.trial} of ${job.sweep_id.slice(0, 8)}` })) : null),
        job.error ? el("p", { class: "error", text: job.error }) : "",
        job.result ? el("p", { class: "result", text: Object.entries(job.result).map(([k, v]) => `${k} ${fmt(v, 4)}`).join(" · ") }) : "");
      const active = Ui.ACTIVE.has(job.status);
      Ui.renderOnChange(actions, `${job.id}:${active}`, () => active
        ? el("button", { id: "cancel", onclick: () => cancel(job.id) }, "Cancel") : "");
      spec.textContent = JSON.stringify(job.spec, null, 2);
      Ui.renderOnChange(downloads, `${job.id}:${job.has_parameters}`, () => downloadLinks(job));
    }

    function downloadLinks(job) {
      if (!job.has_parameters) return el("p", { class: "muted", text: "Available once the job has trained." });
      const links = [];
      for (const layout of ["needle", "torch"]) {
        for (const format of ["json", "safetensors", "npz"]) {
          const path = `/v1/jobs/${job.id}/parameters?format=${format}&layout=${layout}`;
          const name = `${job.id}-${layout}.${format}`;
          links.push(el("a", { href: path, download: name, onclick: (event) => {
            if (!Api.apiKey()) return;  // a plain link works without a key
            event.preventDefault();
            Api.download(path, name).catch((err) => Ui.banner(`Download failed: ${err.message}`));
          } }, `${format} (${layout})`));
        }
      }
      return links;
    }

    async function cancel(id) {
      try { renderJob(await Api.request("POST", `/v1/jobs/${id}/cancel`)); }
      catch (err) { Ui.banner(`Cancel failed: ${err.message}`); }
    }

    function addEpoch(point) {
      state.epochs.push(point);
      epochBody.append(el("tr", {}, el("td", { text: point.epoch }), el("td", { text: point.step }),
        EPOCH_KEYS.map((k) => el("td", { text: fmt(point.values[k], 4) }))));
    }

    async function load() {
      try {
        renderJob(await Api.request("GET", `/v1/jobs/${jobId}`));
        const series = await Api.request("GET", `/v1/jobs/${jobId}/metrics/series?points=${DISPLAY_POINTS}`);
        Object.assign(state, { x: series.step, y: series.values, total: series.total, downsampled: series.downsampled });
        series.epochs.forEach(addEpoch);
        redraw();
        state.stop = Api.follow(jobId, series.last_seq, {
          status: renderJob,
          end: renderJob,
          metric(point) {
            if (point.kind === "epoch") { addEpoch(point); return; }
            const value = point.values.loss;
            if (value === null || value === undefined) return;
            state.x.push(point.step); state.y.push(value); state.live++;
            redraw();
          },
          error(err) { Ui.banner(`Live updates interrupted (${err.message}); reconnecting…`); },
        });
      } catch (err) {
        Ui.banner(`Could not load job ${jobId}: ${err.message}`);
      }
    }
    load();
    return { destroy() { if (state.stop) state.stop(); chart.destroy(); } };
  }

  function fact(label, value) {
    return el("div", { class: "fact" }, el("span", { class: "label", text: label }), el("span", {}, value));
  }

  function predictForm(jobId) {
    const input = el("textarea", { id: "predict-input", rows: "3", placeholder: "[[0.1, 0.2], [-0.5, 0.3]]" });
    const output = el("pre", { id: "predict-output", class: "spec" });
    const node = el("form", { class: "predict", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const x = JSON.parse(input.value);
        const result = await Api.request("POST", `/v1/jobs/${jobId}/predict`, { x });
        output.textContent = JSON.stringify(result, null, 1);
      } catch (err) { output.textContent = `Error: ${err.message}`; }
    } }, el("p", { class: "muted", text: "Rows as a JSON array of arrays (one row per sample)." }), input,
      el("button", { type: "submit" }, "Predict"), output);
    return { node };
  }

  return { show };
})();
