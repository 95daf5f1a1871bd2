// The CLI's own script, when meshtune runs as the CLI (set by main.ts): a worker thread is
// started on it (accesslog/parallel.ts). Null when the code is imported as a library (tests),
// where nothing may start a thread on someone else's script.
let entry: string | null = null;

export function setCliEntry(path: string): void {
  entry = path;
}
export function cliEntry(): string | null {
  return entry;
}
