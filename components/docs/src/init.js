// Starts Swagger UI on the shop's own OpenAPI document. "Try it out" calls the shop that
// served this page; the Authorize button takes an access token from POST /api/accounts/login/.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/schema/",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    displayRequestDuration: true,
    tryItOutEnabled: false,
    validatorUrl: null,
    layout: "BaseLayout",
  });
});
