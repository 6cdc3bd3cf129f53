import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecureContextOptions, TLSSocket, Server as TlsServer } from 'node:tls';
import { atWallTime, type Clock, type ClockTimer } from '../../core/clock.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { CertificateAuthority } from './certificate-authority.ts';
import { type IssuedCertificate, IssuedCertificates, normalSerial } from './issued-certificates.ts';
import { readClientCa, readOwnCertificate } from './own-certificate.ts';
import {
  ensureServerCertificate,
  issueServerCertificate,
  openCertificateAuthority,
  serverNames,
  TLS_FILES,
  tlsDir,
} from './tls-files.ts';

export interface ServerTlsOptions {
  readonly dataDir: string;
  /** The host the server listens on: the server certificate must name it. */
  readonly listenHost: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `--tls-cert`/`--tls-key`: the operator's own certificate, used instead of the CA's; never renewed here. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** `--client-ca`: the CA client certificates chain to; default the server's own CA. */
  readonly clientCaFile?: string | undefined;
}

/** A connection that authenticated with a client certificate, as the server keeps it. */
interface CertificateConnection {
  /** The certificate's serial, as stored (`normalSerial`). */
  readonly serial: string;
  /** Cuts the connection at the certificate's `notAfter`. */
  expiry: ClockTimer | undefined;
}

/** TLS 1.3 only: the version the server offers and accepts. */
export const MIN_TLS_VERSION = 'TLSv1.3';

/**
 * The server's TLS: its certificate (made by its own CA in `<data-dir>/tls/`, or the operator's),
 * the CA client certificates must chain to, and the revocation list of the certificates that CA
 * issued. Once attached to a server it renews the certificate on time (through the clock),
 * reloads the revocation list when it changes, and cuts any connection whose client presented a
 * certificate that does not verify.
 */
export class ServerTls {
  readonly #options: ServerTlsOptions;
  readonly #ca: CertificateAuthority;
  readonly #clientCaPem: string;
  /** The certificates this server's CA issued; null when client certificates chain to another CA. */
  readonly issued: IssuedCertificates | null;
  /** The CA file clients trust to verify this server, or null with the operator's own certificate. */
  readonly caFile: string | null;
  #certPem: string;
  #keyPem: string;
  #crlPem: string | undefined;
  #renewAt: Date | null;
  #server: TlsServer | undefined;
  #timer: ClockTimer | undefined;
  #watcher: FSWatcher | undefined;
  /**
   * Open connections that authenticated with a client certificate: its serial (as stored), and
   * the timer that cuts the connection when the certificate's validity ends.
   */
  readonly #byCertificate = new Map<TLSSocket, CertificateConnection>();

  private constructor(
    options: ServerTlsOptions,
    init: {
      ca: CertificateAuthority;
      clientCaPem: string;
      issued: IssuedCertificates | null;
      certPem: string;
      keyPem: string;
      crlPem: string | undefined;
      renewAt: Date | null;
      caFile: string | null;
    },
  ) {
    this.#options = options;
    this.#ca = init.ca;
    this.#clientCaPem = init.clientCaPem;
    this.issued = init.issued;
    this.#certPem = init.certPem;
    this.#keyPem = init.keyPem;
    this.#crlPem = init.crlPem;
    this.#renewAt = init.renewAt;
    this.caFile = init.caFile;
  }

  static async open(options: ServerTlsOptions): Promise<ServerTls> {
    const now = options.clock.now();
    const own =
      options.certFile !== undefined || options.keyFile !== undefined
        ? await readOwnCertificate(
            required(options.certFile, '--tls-cert', '--tls-key'),
            required(options.keyFile, '--tls-key', '--tls-cert'),
            now,
          )
        : undefined;
    const clientCaPem =
      options.clientCaFile === undefined ? undefined : await readClientCa(options.clientCaFile);
    const ca = await openCertificateAuthority(options.dataDir, now);
    const issued =
      clientCaPem === undefined ? await IssuedCertificates.open(options.dataDir, ca, options.clock) : null;
    const crlPem = issued ? await readFile(issued.crlPath, 'utf8') : undefined;
    let material: { certPem: string; keyPem: string; renewAt: Date | null };
    if (own) {
      material = { ...own, renewAt: null };
    } else {
      const made = await ensureServerCertificate(options.dataDir, ca, serverNames(options.listenHost), now);
      if (made.fresh) options.logger.info({ renewAt: made.renewAt }, 'server certificate issued');
      material = { certPem: made.certPem, keyPem: made.keyPem, renewAt: made.renewAt };
    }
    return new ServerTls(options, {
      ca,
      clientCaPem: clientCaPem ?? ca.certPem,
      issued,
      crlPem,
      ...material,
      caFile: own ? null : join(tlsDir(options.dataDir), TLS_FILES.ca),
    });
  }

  /** What `https.createServer`/`http2.createSecureServer` take, besides ALPN. */
  serverOptions(): SecureContextOptions & { requestCert: true; rejectUnauthorized: false } {
    return {
      ...this.#secureContext(),
      minVersion: MIN_TLS_VERSION,
      // Asked for, not required: a client may authenticate with a token instead. A certificate
      // that is presented and does not verify is refused in `attach`.
      requestCert: true,
      rejectUnauthorized: false,
    };
  }

  /**
   * Starts renewing, watching the revocation list and checking client certificates on `server`.
   * A revocation through `issued` also cuts the open connections that authenticated with that
   * certificate, and a certificate's expiry (its `notAfter`) cuts them when it comes: the
   * handshake checks both only for connections still to come.
   */
  attach(server: TlsServer): void {
    this.#server = server;
    server.on('secureConnection', (socket: TLSSocket) => {
      const peer = socket.getPeerX509Certificate();
      if (peer === undefined) return;
      if (socket.authorized) {
        const held: CertificateConnection = { serial: normalSerial(peer.serialNumber), expiry: undefined };
        this.#byCertificate.set(socket, held);
        socket.once('close', () => {
          held.expiry?.clear();
          this.#byCertificate.delete(socket);
        });
        this.#cutAtExpiry(socket, held, peer.validToDate);
        return;
      }
      // Node would do the same with `rejectUnauthorized: true`, which would refuse token clients too.
      this.#options.logger.info(
        { remoteAddress: socket.remoteAddress, reason: String(socket.authorizationError) },
        'client certificate refused',
      );
      socket.destroy();
    });
    if (this.issued) {
      this.issued.onRevoked = (crl, revoked) => {
        this.#setCrl(crl);
        this.#cutConnectionsOf(revoked);
      };
      this.#watchCrl(this.issued.crlPath);
    }
    this.#scheduleRenewal();
  }

  close(): void {
    this.#timer?.clear();
    for (const held of this.#byCertificate.values()) held.expiry?.clear();
    this.#watcher?.close();
    this.#server = undefined;
  }

  get certificatePem(): string {
    return this.#certPem;
  }

  get certificateAuthority(): CertificateAuthority {
    return this.#ca;
  }

  #secureContext(): SecureContextOptions {
    return {
      cert: this.#certPem,
      key: this.#keyPem,
      ca: this.#clientCaPem,
      ...(this.#crlPem === undefined ? {} : { crl: this.#crlPem }),
    };
  }

  #reload(): void {
    this.#server?.setSecureContext({ ...this.#secureContext(), minVersion: MIN_TLS_VERSION });
  }

  #cutConnectionsOf(revoked: IssuedCertificate): void {
    for (const [socket, { serial, expiry }] of this.#byCertificate) {
      if (serial !== revoked.serial) continue;
      expiry?.clear();
      this.#byCertificate.delete(socket);
      socket.destroy();
      this.#options.logger.info(
        { remoteAddress: socket.remoteAddress, serial, user: revoked.user },
        'connection of a revoked client certificate closed',
      );
    }
  }

  /**
   * Cuts `socket` once its client certificate is past `notAfter` on the server's clock, the wall
   * clock read again when the timer rings (`atWallTime`), as for a token's expiry.
   */
  #cutAtExpiry(socket: TLSSocket, held: CertificateConnection, notAfter: Date): void {
    const { clock, logger } = this.#options;
    held.expiry = atWallTime(clock, notAfter.getTime(), () => {
      this.#byCertificate.delete(socket);
      socket.destroy();
      logger.info(
        { remoteAddress: socket.remoteAddress, serial: held.serial, notAfter: notAfter.toISOString() },
        'connection of an expired client certificate closed',
      );
    });
  }

  #setCrl(crl: string): void {
    if (crl === this.#crlPem) return;
    this.#crlPem = crl;
    this.#reload();
  }

  /** An edit of `crl.pem` from outside (a restored backup) is picked up as well. */
  #watchCrl(path: string): void {
    try {
      this.#watcher = watch(tlsDir(this.#options.dataDir), (_event, file) => {
        if (file !== TLS_FILES.crl) return;
        readFile(path, 'utf8').then(
          (crl) => this.#setCrl(crl),
          () => undefined,
        );
      });
      this.#watcher.unref();
    } catch {
      // No inotify: revocations through the API still reload at once.
    }
  }

  #scheduleRenewal(): void {
    const renewAt = this.#renewAt;
    if (renewAt === null || this.#server === undefined) return;
    const { clock } = this.#options;
    this.#timer = clock.setTimer(() => {
      this.#renew().catch((err: unknown) => {
        this.#options.logger.error({ err }, 'server certificate renewal failed; retrying in an hour');
        this.#renewAt = new Date(clock.now().getTime() + 3_600_000);
        this.#scheduleRenewal();
      });
    }, renewAt.getTime() - clock.now().getTime());
  }

  async #renew(): Promise<void> {
    const { dataDir, listenHost, clock, logger } = this.#options;
    const made = await issueServerCertificate(dataDir, this.#ca, serverNames(listenHost), clock.now());
    this.#certPem = made.certPem;
    this.#keyPem = made.keyPem;
    this.#renewAt = made.renewAt;
    this.#reload();
    logger.info({ renewAt: made.renewAt }, 'server certificate renewed');
    this.#scheduleRenewal();
  }
}

function required(value: string | undefined, flag: string, other: string): string {
  if (value === undefined) {
    const field = flag === '--tls-cert' ? 'tlsCert' : 'tlsKey';
    throw new ValidationError(field, `${other} needs ${flag} too: give both the certificate and its key`);
  }
  return value;
}
