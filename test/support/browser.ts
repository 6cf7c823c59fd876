// Headless Chromium for the web UI's tests and benchmark: Debian's `chromium` (installed by
// deploy/install-test-deps.sh), driven by puppeteer-core, which never downloads a browser of its own.
import fs from 'node:fs';
import path from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { repoRoot } from './paths.ts';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumPath(): string {
  const found = [process.env.CHROMIUM_PATH, ...CANDIDATES].find((p): p is string => !!p && fs.existsSync(p));
  if (!found) throw new Error('no Chromium found (looked at $CHROMIUM_PATH and /usr/bin/chromium): run deploy/install-test-deps.sh as root');
  return found;
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--disable-extensions'],
  });
}

/** Where screenshots go (gitignored): test-results/ui/. */
export const screenshotDir = path.join(repoRoot, 'test-results', 'ui');
