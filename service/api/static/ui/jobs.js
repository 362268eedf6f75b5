// The job list: newest first, filter by status, refreshed every 2 s; pick jobs to compare.
"use strict";

const JobsView = (() => {
  const REFRESH_MS = 2000;
  const STATUSES = ["", "waiting", "queued", "running", "succeeded", "failed", "cancelled", "pruned"];
  const { el, fmt, when } = Ui;

  function finalMetrics(job) {
    const r = job.result;
    if (!r) return job.error ? el("span", { class: "error", text: job.error }) : "–";
    const parts = ["train_loss", "train_error", "val_loss", "val_error"]
      .filter((k) => r[k] !== undefined && r[k] !== null).map((k) => `${k} ${fmt(r[k], 3)}`);
    return parts.join(" · ") || "–";
  }

  function show(root, status) {
    const selected = new Set();
    const filter = el("select", { id: "status-filter", onchange: () => { location.hash = filter.value ? `#/?status=${filter.value}` : "#/"; } },
      STATUSES.map((s) => el("option", { value: s, selected: s === status, text: s || "all statuses" })));
    const compare = el("button", { id: "compare-selected", disabled: true, onclick: () => {
      location.hash = `#/compare?ids=${[...selected].join(",")}`;
    } }, "Compare selected");
    const body = el("tbody", { id: "job-rows" });
    const updated = el("span", { class: "muted" });
    root.append(el("section", {},
      el("div", { class: "toolbar" }, el("h1", { text: "Jobs" }), filter, compare, updated),
      el("table", { class: "jobs" },
        el("thead", {}, el("tr", {}, ["", "job", "status", "progress", "created", "params", "final metrics"].map((h) => el("th", { text: h })))),
        body)));

    function row(job) {
      const box = el("input", { type: "checkbox", checked: selected.has(job.id), onchange: () => {
        if (box.checked) selected.add(job.id); else selected.delete(job.id);
        compare.disabled = selected.size < 1;
      } });
      return el("tr", { "data-job-id": job.id, "data-status": job.status },
        el("td", {}, box),
        el("td", {}, el("a", { href: `#/job/${job.id}`, class: "mono", text: job.id.slice(0, 12) })),
        el("td", {}, Ui.statusBadge(job.status)),
        el("td", {}, Ui.progressBar(job.progress)),
        el("td", { text: when(job.created_at) }),
        el("td", { text: job.param_count.toLocaleString() }),
        el("td", {}, finalMetrics(job)));
    }

    let timer = null, stopped = false;
    async function refresh() {
      try {
        const query = status ? `?status=${status}&limit=100` : "?limit=100";
        const page = await Api.request("GET", `/v1/jobs${query}`);
        body.replaceChildren(...page.items.map(row));
        if (!page.items.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "no jobs yet" })));
        updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
        Ui.banner("");
      } catch (err) {
        Ui.banner(`Could not list jobs: ${err.message}${err.status === 401 ? " (set an API key above)" : ""}`);
      }
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
    refresh();
    return { destroy() { stopped = true; clearTimeout(timer); } };
  }

  return { show };
})();
