// `kubectl logs --prefix` prepends "[pod/NAME/CONTAINER] " to every line.
export interface Prefixed {
  pod: string;
  container: string;
  rest: string;
}

export function splitPrefix(line: string): Prefixed | null {
  if (!line.startsWith("[pod/")) return null;
  const end = line.indexOf("] ");
  if (end < 0) return null;
  // Exactly "NAME/CONTAINER", both non-empty (no split: this runs on every line).
  const slash = line.indexOf("/", 5);
  if (slash <= 5 || slash >= end - 1 || line.lastIndexOf("/", end - 1) !== slash) return null;
  return { pod: line.slice(5, slash), container: line.slice(slash + 1, end), rest: line.slice(end + 2) };
}
