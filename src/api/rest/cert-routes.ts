import type { FastifyInstance } from 'fastify';
import type { Principal } from '../../auth/principal.ts';
import type { IssuedCertificates } from '../../auth/tls/issued-certificates.ts';
import { JobworkerError } from '../../core/errors.ts';
import { principalOf } from './authentication.ts';
import { ISSUE_CERT_SCHEMA, LIST_CERTS_SCHEMA, REVOKE_CERT_SCHEMA } from './cert-schemas.ts';

/** What the certificate routes need: the issued certificates and the CA's certificate. */
export interface CertificateIssuer {
  readonly issued: IssuedCertificates;
  readonly caPem: string;
}

/** Default life of a client certificate. */
export const DEFAULT_CLIENT_CERT_DAYS = 90;

/**
 * Client certificates (POST/GET /v1/certs, POST /v1/certs/:serial/revoke), admins only.
 * `issuer` is null when the server has no CA of its own to issue with (plain HTTP, or client
 * certificates verified against `--client-ca`): the routes then say so.
 */
export function registerCertRoutes(app: FastifyInstance, issuer: CertificateIssuer | null): void {
  const use = (who: Principal, what: string): CertificateIssuer => {
    if (who.role !== 'admin') throw new JobworkerError('FORBIDDEN', `Only an admin may ${what}`);
    if (issuer === null) {
      throw new JobworkerError(
        'FORBIDDEN',
        'This server issues no client certificates: it serves plain HTTP, or verifies client certificates against --client-ca (issue them with that CA)',
      );
    }
    return issuer;
  };

  app.post('/v1/certs', { schema: ISSUE_CERT_SCHEMA }, async (request, reply) => {
    const { issued, caPem } = use(principalOf(request), 'issue certificates');
    const body = request.body as { user: string; days?: number };
    const { pair, record } = await issued.issue(body.user, body.days ?? DEFAULT_CLIENT_CERT_DAYS);
    return reply.code(201).send({ certificate: record, certPem: pair.certPem, keyPem: pair.keyPem, caPem });
  });

  app.get('/v1/certs', { schema: LIST_CERTS_SCHEMA }, async (request) => ({
    certificates: use(principalOf(request), 'list certificates').issued.list(),
  }));

  app.post('/v1/certs/:serial/revoke', { schema: REVOKE_CERT_SCHEMA }, async (request) => {
    const { serial } = request.params as { serial: string };
    return use(principalOf(request), 'revoke certificates').issued.revoke(serial);
  });
}
