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
  const parts = line.slice(5, end).split("/");
  if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
  return { pod: parts[0], container: parts[1], rest: line.slice(end + 2) };
}
