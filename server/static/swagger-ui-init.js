// Swagger UI on this server's schema. Deferred, so swagger-ui-bundle.js has run before it.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Swagger UI would otherwise fetch a badge from the public validator: no request may leave
  // this server.
  validatorUrl: null,
});
