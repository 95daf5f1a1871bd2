// ESLint for the TypeScript tree: typescript-eslint's recommended rules; an eslint-disable
// comment that no longer disables anything is an error (linterOptions.reportUnusedDisableDirectives).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "build/",
      "bpf/.output/",
      "node_modules/",
      "filter/",
      "bench/*.mjs",
      "test/fixtures/*.mjs",
      "test/helpers/*.mjs",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
    },
  },
  {
    // Tests read the programs' JSON output and poke at private state: `any` there is the point.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
);
