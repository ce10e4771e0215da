// Browser helpers for the portal suites: Debian's Chromium driven headless by
// playwright-core, an axe-core accessibility check, a keyboard-only reach
// check and a screenshot of every page visited.
//
//   CHROMIUM_PATH      the Chromium binary (default /usr/bin/chromium)
//   OUTPOST_CERT_SPKI  base64 SHA-256 hashes (comma-separated) of the public
//                      keys of the certificates Outpost serves: Chromium
//                      accepts those and no others
//   PORTAL_ARTIFACTS   directory for screenshots and axe reports
import { chromium } from "playwright-core";
import { mkdtemp, mkdir, readFile, writeFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { requireEnv } from "./lib/env.mjs";

const require = createRequire(import.meta.url);

/** Starts a fresh headless Chromium profile; close() removes it. */
export async function launch() {
  const userDataDir = await mkdtemp(path.join(tmpdir(), "outpost-portal-chromium-"));
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ];
  const spki = process.env.OUTPOST_CERT_SPKI;
  if (spki) args.push(`--ignore-certificate-errors-spki-list=${spki}`);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args,
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30000);
  return {
    context,
    page,
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** The portal's base URL. */
export function portalURL(p = "/portal/") {
  return requireEnv("OUTPOST_ENDPOINT").replace(/\/+$/, "") + p;
}

let shot = 0;

/** Saves a full-page screenshot named after the step. */
export async function screenshot(page, name) {
  const dir = requireEnv("PORTAL_ARTIFACTS");
  await mkdir(dir, { recursive: true });
  shot++;
  const file = path.join(dir, `${String(shot).padStart(2, "0")}-${name.replace(/[^a-z0-9-]+/gi, "-")}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Runs axe-core in the page (evaluated through the DevTools protocol, so the
 * portal's Content-Security-Policy stays as it is) and fails on any serious
 * or critical violation. The report is saved next to the screenshots.
 */
export async function axeCheck(page, name) {
  const source = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(source);
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  );
  const dir = requireEnv("PORTAL_ARTIFACTS");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `axe-${name.replace(/[^a-z0-9-]+/gi, "-")}.json`), JSON.stringify(result.violations, null, 2));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `axe-core found serious or critical violations on ${name}`,
  );
  assert.ok(result.passes.length > 0, "axe-core ran no checks");
}

/**
 * Presses Tab until focus comes back around and checks that every visible
 * control was reached (a radio group counts once: arrow keys move inside
 * it, as browsers do).
 */
export async function keyboardReach(page, name) {
  const expected = await page.evaluate(() => {
    const keys = new Set();
    const all = document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary");
    let i = 0;
    for (const el of all) {
      if (el.disabled || el.closest("[hidden]") || el.hidden || el.getClientRects().length === 0) continue;
      if (el.tagName === "OPTION") continue;
      const key = el.type === "radio" ? `radio:${el.form ? [...document.forms].indexOf(el.form) : -1}:${el.name}` : `el:${i++}`;
      el.dataset.kbd = key;
      keys.add(key);
    }
    return [...keys];
  });
  const reached = new Set();
  for (let n = 0; n < expected.length * 2 + 5; n++) {
    await page.keyboard.press("Tab");
    const key = await page.evaluate(() => document.activeElement?.dataset?.kbd ?? null);
    if (key) reached.add(key);
    if (reached.size === expected.length) break;
  }
  const missing = expected.filter((k) => !reached.has(k));
  const labels = await page.evaluate(
    (keys) => keys.map((k) => document.querySelector(`[data-kbd="${k}"]`)?.outerHTML.slice(0, 120)),
    missing,
  );
  assert.deepEqual(labels, [], `controls on ${name} not reachable with Tab`);
}

/** Waits for a page's notice (role=status) and returns its text. */
export async function notice(page) {
  const n = page.locator(".notice[role=status]");
  await n.waitFor();
  return (await n.textContent()).trim();
}

/** Waits for a page's error (role=alert) and returns code and message. */
export async function refusal(page) {
  const a = page.locator(".error[role=alert]");
  await a.waitFor();
  return {
    code: (await a.locator(".error-code").textContent()).trim(),
    message: (await a.locator(".error-message").textContent()).trim(),
  };
}
