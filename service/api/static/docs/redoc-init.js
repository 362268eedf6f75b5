// ReDoc for /redoc, configured from this script tag's data attributes (no inline script).
(function () {
  var script = document.currentScript;
  Redoc.init(script.dataset.openapi, { hideDownloadButton: false, expandResponses: "200,202" },
             document.getElementById("redoc"));
})();
