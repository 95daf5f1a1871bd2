// The client side of POST /v1/reports for meshtune's own senders (fallback, node agent): one
// request, classified the way the collector answers (server.ts): 202 accepted; a 4xx other than
// 408/429 is a refusal that resending would not change; anything else (5xx, 408, 429, no answer)
// is worth retrying. A 401 is retried once with fresh credentials when `reauth` has them (a
// rotated token file).
export type Posted = { outcome: "accepted" } | { outcome: "refused" | "retry"; detail: string };

export async function postReport(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 5000,
  reauth?: () => Record<string, string> | null,
): Promise<Posted> {
  try {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = (await r.text()).trim();
    if (r.status === 202) return { outcome: "accepted" };
    const fresh = r.status === 401 ? reauth?.() : null;
    if (fresh) return postReport(url, body, fresh, timeoutMs);
    const refused = r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429;
    return { outcome: refused ? "refused" : "retry", detail: `${r.status} ${text}` };
  } catch (e) {
    return { outcome: "retry", detail: `unreachable: ${(e as Error).message}` };
  }
}
