// uvu's CLI, then an explicit exit: uvu never exits the process itself, so one handle a test
// leaves open (a child process, a socket, a timer) would keep `make test` waiting forever after
// the summary. The exit code is uvu's (process.exitCode); what was still open is listed, so a
// leak is visible instead of hanging CI. Exit handlers (e.g. the real API server's) still run.
import { parse } from "uvu/parse";
import { run } from "uvu/run";

const [dir = "build/test", pattern = "\\.test\\.mjs$"] = process.argv.slice(2);
process.env.FORCE_COLOR ??= "1";
const ctx = await parse(dir, pattern, {});
await run(ctx.suites, {});
const open = process
  ._getActiveHandles()
  .map((h) => h?.constructor?.name ?? typeof h)
  .filter((n) => !["WriteStream", "ReadStream", "TTY"].includes(n));
if (open.length) console.log(`  (open handles at the end of the suite, closed by exit: ${open.join(", ")})`);
process.exit(process.exitCode ?? 0);
