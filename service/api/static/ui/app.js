// The dashboard's router: #/ (jobs), #/job/<id>, #/compare?ids=a,b, #/sweeps, #/sweep/<id>;
// and the API key form.
"use strict";

(() => {
  let current = null;  // the view on screen: {destroy()}

  function route() {
    if (current && current.destroy) current.destroy();
    Ui.banner("");
    const view = document.getElementById("view");
    view.replaceChildren();
    const hash = location.hash || "#/";
    const [path, query] = hash.slice(1).split("?");
    const params = new URLSearchParams(query || "");
    if (path.startsWith("/job/")) current = JobView.show(view, decodeURIComponent(path.slice(5)));
    else if (path.startsWith("/sweep/")) current = SweepView.show(view, decodeURIComponent(path.slice(7)));
    else if (path === "/sweeps") current = SweepsView.show(view);
    else if (path === "/compare") current = CompareView.show(view, (params.get("ids") || "").split(",").filter(Boolean));
    else current = JobsView.show(view, params.get("status") || "");
  }

  const input = document.getElementById("api-key");
  input.value = Api.apiKey();
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    Api.setApiKey(input.value.trim());
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();
