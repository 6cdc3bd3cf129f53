import { randomBytes, X509Certificate } from 'node:crypto';
import { type FileHandle, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { ApiCertificate } from '../../client/api-types.ts';
import {
  addCommonOptions,
  type CliContext,
  type CommonOptions,
  commonOptions,
  connect,
  printJson,
} from '../cli-context.ts';
import { CliError, UsageError } from '../errors.ts';
import { writeTo } from '../output-writer.ts';
import { renderTable } from '../table.ts';

/** The Job Worker design's file names, which the CLI also looks for in ./cert/. */
const FILES = { cert: 'client-cert.pem', key: 'client-key.pem', ca: 'ca-cert.pem' } as const;

/** `certs issue|list|revoke`: client certificates made by the server's CA (admins only). */
export function registerCerts(program: Command, ctx: CliContext): void {
  const certs = program
    .command('certs')
    .summary('issue, list and revoke client certificates (admins only)')
    .description(
      "Client certificates authenticate a user without a token (mTLS). The server's own CA issues them; " +
        'a revoked one fails the TLS handshake from then on.',
    );

  const issue = certs
    .command('issue')
    .summary('make a key pair and certificate for a user')
    .requiredOption('--user <name>', 'the user the certificate authenticates')
    .requiredOption('--out <dir>', `directory to write ${FILES.cert}, ${FILES.key} (0600) and ${FILES.ca} to`)
    .option('--days <n>', 'how long it is valid (default: 90)', parseDays);
  addCommonOptions(issue).action(async (options: { user: string; out: string; days?: number }) => {
    const common = commonOptions(issue);
    const client = await connect(ctx, common);
    // The files are made before the certificate is asked for: a directory that cannot hold them
    // must not cost a certificate whose key would then be lost.
    const dir = resolve(ctx.cwd, options.out);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = await StagedFiles.open(dir);
    let issued: Awaited<ReturnType<typeof client.issueCertificate>>;
    try {
      issued = await client.issueCertificate(options.user, options.days);
      await files.commit({ key: issued.keyPem, cert: issued.certPem, ca: issued.caPem });
    } catch (error) {
      await files.discard();
      throw error;
    }
    if (common.json === true) return printJson(ctx, { ...issued.certificate, dir });
    await writeTo(
      ctx.stdout,
      `Issued certificate ${issued.certificate.serial} for ${issued.certificate.user}, valid until ` +
        `${issued.certificate.notAfter}, in ${dir}\n`,
    );
  });

  const list = certs.command('list').alias('ls').summary('the client certificates the server issued');
  addCommonOptions(list).action(async () => {
    const common = commonOptions(list);
    const found = await (await connect(ctx, common)).listCertificates();
    if (common.json === true) return printJson(ctx, { certificates: found });
    if (found.length === 0) return writeTo(ctx.stdout, 'No certificates.\n');
    await writeTo(ctx.stdout, certificateTable(found));
  });

  const revoke = certs
    .command('revoke')
    .summary('revoke a client certificate: its next handshake fails')
    .option('--serial <hex>', 'the serial number (see `certs list`)')
    .option('--cert <file>', 'the certificate file to revoke');
  addCommonOptions(revoke, { clientCert: false }).action(
    async (options: { serial?: string; cert?: string }) => {
      const common = commonOptions(revoke);
      if ((options.serial === undefined) === (options.cert === undefined)) {
        throw new UsageError('Expected one of --serial HEX or --cert FILE');
      }
      const serial = options.serial ?? (await serialOf(resolve(ctx.cwd, options.cert as string)));
      // `--cert` here names the certificate to revoke: the client's own is the one given before
      // the command (`jobworker --cert admin.pem --key admin.key certs revoke ...`), else
      // JOBWORKER_CERT. Only the ancestors' options: optsWithGlobals holds either --cert.
      const program = revoke.parent?.optsWithGlobals<CommonOptions>() ?? {};
      const revoked = await (
        await connect(ctx, { ...common, cert: program.cert, key: program.key })
      ).revokeCertificate(serial);
      if (common.json === true) return printJson(ctx, revoked);
      await writeTo(ctx.stdout, `Revoked certificate ${revoked.serial} of ${revoked.user}\n`);
    },
  );
}

function parseDays(text: string): number {
  const days = /^[0-9]{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(days >= 1 && days <= 3650))
    throw new InvalidArgumentError('Expected a whole number of days from 1 to 3650.');
  return days;
}

async function serialOf(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`Cannot read --cert ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return new X509Certificate(pem).serialNumber;
  } catch {
    throw new UsageError(`Expected --cert to be a PEM certificate, got ${file}`);
  }
}

function certificateTable(certs: readonly ApiCertificate[]): string {
  return renderTable(
    ['SERIAL', 'USER', 'ISSUED', 'NOT AFTER', 'REVOKED'].map((header) => ({ header })),
    certs.map((c) => [c.serial, c.user, c.issuedAt, c.notAfter, c.revokedAt ?? '-']),
  );
}

/** One file of `certs issue`: its temporary name, its name, and the open temporary file. */
interface StagedFile {
  readonly temp: string;
  readonly final: string;
  readonly handle: FileHandle;
}

/**
 * The three files of `certs issue`, made new (O_EXCL) beside their names before the certificate
 * is issued, then written and renamed over them. The key is 0600 whatever was there: a key file
 * left 0644 by an earlier issue is replaced, not reused with its mode, and a symlink planted at
 * its name is replaced, not followed.
 */
class StagedFiles {
  readonly #handles: Record<keyof typeof FILES, StagedFile>;

  private constructor(handles: Record<keyof typeof FILES, StagedFile>) {
    this.#handles = handles;
  }

  static async open(dir: string): Promise<StagedFiles> {
    const made: StagedFile[] = [];
    const handles = {} as Record<keyof typeof FILES, StagedFile>;
    try {
      for (const [kind, name] of Object.entries(FILES) as [keyof typeof FILES, string][]) {
        // A directory (or a device) at a file's name would refuse the rename after the
        // certificate was issued: it is refused now, before anything is asked for.
        const there = await lstat(join(dir, name)).catch(() => undefined);
        if (there !== undefined && !there.isFile() && !there.isSymbolicLink()) {
          throw new CliError(`${join(dir, name)} is there and is not a file: move it away first`);
        }
        // Random: a pid is reused (1 in every container), and a run stopped by Ctrl-C leaves its.
        const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
        const handle = await open(temp, 'wx', kind === 'key' ? 0o600 : 0o644);
        const entry = { temp, final: join(dir, name), handle };
        made.push(entry);
        handles[kind] = entry;
      }
    } catch (error) {
      for (const entry of made) {
        await entry.handle.close().catch(() => undefined);
        await rm(entry.temp, { force: true });
      }
      throw error;
    }
    return new StagedFiles(handles);
  }

  async commit(texts: Record<keyof typeof FILES, string>): Promise<void> {
    for (const [kind, entry] of Object.entries(this.#handles) as [keyof typeof FILES, StagedFile][]) {
      await entry.handle.writeFile(texts[kind]);
      await entry.handle.close();
    }
    for (const entry of Object.values(this.#handles)) await rename(entry.temp, entry.final);
  }

  async discard(): Promise<void> {
    for (const entry of Object.values(this.#handles)) {
      await entry.handle.close().catch(() => undefined);
      await rm(entry.temp, { force: true });
    }
  }
}
