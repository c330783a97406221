// Stylelint for the drawing page's style sheet (frontend/style.css).
export default {
  extends: ["stylelint-config-standard"],
  rules: {
    // Font family names keep their own spelling ("Segoe UI", Roboto) for the reader.
    "value-keyword-case": ["lower", { ignoreProperties: ["/^--(font|mono)$/"] }],
    // Safari still needs these two prefixes (text size on rotation, no text selection while drawing).
    "property-no-vendor-prefix": [
      true,
      { ignoreProperties: ["-webkit-text-size-adjust", "-webkit-user-select"] },
    ],
  },
};
