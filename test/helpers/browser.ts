// Headless Chromium from Debian's `chromium` package, driven by playwright-core (never a browser
// download). Collects console errors and page errors so a test can assert there were none.
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = process.env.MESHTUNE_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
];

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

export async function openPage(
  b: Browser,
  o: { dark?: boolean; width?: number; height?: number } = {},
): Promise<{ page: Page; errors: string[] }> {
  const ctx = await b.newContext({
    viewport: { width: o.width ?? 1400, height: o.height ?? 900 },
    colorScheme: o.dark ? "dark" : "light",
  });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  return { page, errors };
}
