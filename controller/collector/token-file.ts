// A bearer token read from a file that the kubelet rotates: projected service-account tokens are
// replaced before they expire (by an atomic swap of the volume's ..data symlink: kubernetes
// pkg/volume/util/atomic_writer.go), so a sender re-reads the
// file when it changed, and once more after a 401 in case the change raced the request.
import { readFileSync, statSync } from "node:fs";
import { UserError } from "../errors.js";

export class TokenFile {
  private token = "";
  private mtimeMs = -1;

  constructor(
    readonly path: string,
    readonly flag = "--token-file",
  ) {
    try {
      this.load(true);
    } catch (e) {
      throw new UserError(`${flag} ${path}: ${(e as Error).message}`);
    }
  }

  /** Re-read when the file changed (or always, when forced); whether the token changed. */
  private load(force: boolean): boolean {
    const m = statSync(this.path).mtimeMs;
    if (!force && m === this.mtimeMs) return false;
    const t = readFileSync(this.path, "utf8").trim();
    const changed = t !== this.token;
    this.token = t;
    this.mtimeMs = m;
    return changed;
  }

  /** The Authorization header with the current token (a failed re-read keeps the last one). */
  headers = (): Record<string, string> => {
    try {
      this.load(false);
    } catch {
      /* keep the last token; the collector's 401 will say so */
    }
    return { authorization: `Bearer ${this.token}` };
  };

  /** After a 401: the headers of a token that changed since, or null (resending would not help). */
  reauth = (): Record<string, string> | null => {
    try {
      return this.load(true) ? this.headers() : null;
    } catch {
      return null;
    }
  };
}
