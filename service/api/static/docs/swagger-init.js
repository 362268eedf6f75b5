// Swagger UI for /docs, configured from this script tag's data attributes (no inline script:
// the Content-Security-Policy allows scripts from this origin only).
(function () {
  var script = document.currentScript;
  window.ui = SwaggerUIBundle({
    url: script.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: true,
    validatorUrl: null, // the badge would call validator.swagger.io
    oauth2RedirectUrl: window.location.origin + script.dataset.oauth2Redirect,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
