import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';

export const METRICS_TOKEN_FILE = 'metrics.token';

/**
 * The dedicated metrics token (docs/metrics.md): a bearer token that reads `GET /metrics` and
 * nothing else, so a Prometheus server needs no user of its own (a viewer sees every job; this
 * sees only counts). Kept in `<dataDir>/metrics.token` (0600), made at the first start; delete the
 * file and restart to rotate it. Held in memory as its SHA-256 only, compared in constant time.
 */
export class MetricsToken {
  readonly path: string;
  readonly #sha256: Buffer;

  private constructor(path: string, token: string) {
    this.path = path;
    this.#sha256 = digest(token);
  }

  /** Reads the token file, writing a new token first when there is none. */
  static async open(dataDir: string): Promise<MetricsToken> {
    const path = join(dataDir, METRICS_TOKEN_FILE);
    let token = await readFile(path, 'utf8').then(
      (text) => text.trim(),
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw err;
      },
    );
    if (token === '') {
      token = `jwm_${randomBytes(24).toString('base64url')}`;
      await writeFileAtomic(path, `${token}\n`, 0o600);
    }
    return new MetricsToken(path, token);
  }

  /** True when an `Authorization` header carries this token (`Bearer <token>`). */
  matches(authorization: string | undefined): boolean {
    const m = /^Bearer (\S+)$/i.exec(authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1]!), this.#sha256);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
