/**
 * Chromium for page tests: Debian's browser driven by playwright-core (headless, no browser
 * download), and a watcher collecting what a page gets wrong (console errors and warnings,
 * uncaught errors, failed requests other than the event stream cut when the page closes).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from './cli';

export const CHROMIUM = '/usr/bin/chromium';
/** Where page tests keep their screenshots (gitignored). */
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

/** A `skip` option for suites that need chromium. */
export const NEEDS_CHROMIUM = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (.ci/run installs it)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** Collects the page's problems into the returned list (empty while all is well). */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (!r.url().endsWith('/events')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return problems;
}
