#!/usr/bin/env node
import { main } from "./cli.js";
import { rerunBounded } from "./heap-bound.js";

const argv = process.argv.slice(2);
const bounded = rerunBounded(argv);
if (bounded !== null) process.exitCode = bounded;
else
  main(argv).then((code) => {
    process.exitCode = code;
  });
