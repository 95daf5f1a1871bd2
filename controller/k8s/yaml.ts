// YAML as Kubernetes reads it. kubectl, istioctl and every Go client parse YAML 1.1
// (sigs.k8s.io/yaml over go-yaml), where an unquoted y, n, yes, no, on or off is a boolean; the
// `yaml` package writes YAML 1.2 and leaves them bare. A namespace, label or host named `y` would
// then fail to parse or be skipped (istioctl analyze only logs "error processing ... skipping").
// Writing with the 1.1 schema quotes every such string.
import { Document, stringify } from "yaml";

export const toYaml = (obj: unknown): string => stringify(obj, { version: "1.1" });

/** A document with a comment block before it (reasons for its fields). */
export function commentedYaml(obj: object, lines: string[]): string {
  const d = new Document(obj, { version: "1.1" });
  d.commentBefore = lines.map((l) => ` ${l}`).join("\n");
  return d.toString();
}
