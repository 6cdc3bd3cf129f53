import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's Chromium: scripts/setup.sh installs it with apt. Never a downloaded browser build. */
export const CHROMIUM = process.env.JOBWORKER_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Fails (never skips) when Chromium is missing, saying how to get it: the browser tests are part
 * of `npm test`, and a silent skip would hide that the dashboard went untested.
 */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed (${CHROMIUM} is missing), so the dashboard's browser tests cannot run. ` +
        'Install it with `sudo apt-get install -y chromium` (scripts/setup.sh does this), or point ' +
        'JOBWORKER_CHROMIUM at a Chromium binary.',
    );
  }
}

/**
 * The base64 SHA-256 of the server certificate's public key (SPKI), read from a real handshake:
 * Chromium trusts exactly that key (`--ignore-certificate-errors-spki-list`), not every certificate.
 */
export function serverSpki(url: string, caPem: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca: caPem, servername: undefined }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      const der = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' });
      resolve(createHash('sha256').update(der).digest('base64'));
    });
    socket.on('error', reject);
  });
}

/**
 * Headless Debian Chromium in a fresh profile (its --user-data-dir), trusting only the test
 * server's key; certificate errors are not ignored otherwise. Pages of the context are separate
 * tabs: each has its own sessionStorage, so each signs in by itself.
 */
export async function launchChromium(
  spki: string,
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  requireChromium();
  const profile = await mkdtemp(join(tmpdir(), 'jw-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    ignoreHTTPSErrors: false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
