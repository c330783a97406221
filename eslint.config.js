// ESLint for the drawing page (frontend/): browser ES modules, no build step.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    files: ["frontend/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      ...js.configs.recommended.rules,
      // The page once had ternaries nested four deep: a named function says what each case means.
      "no-nested-ternary": "error",
      "max-lines-per-function": ["error", { max: 45, skipBlankLines: true, skipComments: true }],
      complexity: ["error", 10],
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
    },
  },
  {
    files: ["*.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
    rules: js.configs.recommended.rules,
  },
];
