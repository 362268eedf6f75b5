// The sweep list: newest first, with status and trial counts, refreshed every 3 s.
"use strict";

const SweepsView = (() => {
  const REFRESH_MS = 3000;
  const { el, when } = Ui;

  function countsText(sweep) {
    const parts = Object.entries(sweep.counts).sort((a, b) => b[1] - a[1]).map(([s, n]) => `${n} ${s}`);
    return `${sweep.n_trials} trials: ${parts.join(", ")}`;
  }

  function show(root) {
    const body = el("tbody", { id: "sweep-rows" });
    const updated = el("span", { class: "muted" });
    root.append(el("section", {},
      el("div", { class: "toolbar" }, el("h1", { text: "Sweeps" }), updated),
      el("table", { class: "sweeps" },
        el("thead", {}, el("tr", {}, ["sweep", "status", "trials", "objective", "created"].map((h) => el("th", { text: h })))),
        body)));
    let timer = null, stopped = false;
    async function refresh() {
      try {
        const page = await Api.request("GET", "/v1/sweeps?limit=100");
        body.replaceChildren(...page.items.map((s) => el("tr", { "data-sweep-id": s.id, "data-status": s.status },
          el("td", {}, el("a", { href: `#/sweep/${s.id}`, class: "mono", text: s.id.slice(0, 12) })),
          el("td", {}, Ui.statusBadge(s.status)), el("td", { text: countsText(s) }),
          el("td", { text: `${s.objective.mode} ${s.objective.metric}` }), el("td", { text: when(s.created_at) }))));
        if (!page.items.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "no sweeps yet (POST /v1/sweeps)" })));
        updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
        Ui.banner("");
      } catch (err) {
        Ui.banner(`Could not list sweeps: ${err.message}${err.status === 401 ? " (set an API key above)" : ""}`);
      }
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
    refresh();
    return { destroy() { stopped = true; clearTimeout(timer); } };
  }

  return { show, countsText };
})();
