import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../auth/atomic-file.ts';

export const SIGNING_SECRET_FILE = 'webhook-secret';

/**
 * The secret that signs the deliveries of jobs' own `notify` webhooks (server-wide webhooks have
 * their own): `<dataDir>/webhook-secret`, mode 0600, made at the first start. An admin hands it to
 * whoever verifies those deliveries; delete the file and restart to rotate it.
 */
export async function loadSigningSecret(dataDir: string): Promise<{ path: string; secret: string }> {
  const path = join(dataDir, SIGNING_SECRET_FILE);
  const existing = await readFile(path, 'utf8').then(
    (text) => text.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    },
  );
  if (existing !== '') return { path, secret: existing };
  const secret = `whsec_${randomBytes(32).toString('hex')}`;
  await writeFileAtomic(path, `${secret}\n`, 0o600);
  return { path, secret };
}
