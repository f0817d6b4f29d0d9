// ESLint flat config: podium.js and the web app (browser ES modules), the browser
// test pages (classic scripts), and the node unit tests and config files (node ES modules).
import js from "@eslint/js";
import globals from "globals";

const rules = {
  "no-unused-vars": ["error", { args: "after-used", argsIgnorePattern: "^_", caughtErrors: "none" }],
  eqeqeq: ["error", "always"],
  "no-var": "error",
  "prefer-const": "error",
  "no-throw-literal": "error",
  "no-self-compare": "error",
  "no-unmodified-loop-condition": "error",
  "no-unreachable-loop": "error",
};

export default [
  { ignores: ["node_modules/", ".venv/", "test-artifacts/", "bench/", "build/"] },
  js.configs.recommended,
  {
    files: ["src/podium/web/**/*.js"],
    languageOptions: { sourceType: "module", globals: globals.browser },
    rules,
  },
  {
    files: ["tests/e2e/pages/**/*.js"],
    languageOptions: { sourceType: "script", globals: globals.browser },
    rules,
  },
  {
    files: ["tests/web/**/*.mjs", "*.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
    rules,
  },
];
