import type { FastifyInstance } from 'fastify';
import type { CertificateService } from '../../service/certificate-service.ts';
import { principalOf } from './authentication.ts';
import { ISSUE_CERT_SCHEMA, LIST_CERTS_SCHEMA, REVOKE_CERT_SCHEMA } from './cert-schemas.ts';

/** Client certificates (POST/GET /v1/certs, POST /v1/certs/:serial/revoke), admins only. */
export function registerCertRoutes(app: FastifyInstance, certificates: CertificateService): void {
  app.post('/v1/certs', { schema: ISSUE_CERT_SCHEMA }, async (request, reply) => {
    const body = request.body as { user: string; days?: number };
    return reply.code(201).send(await certificates.issue(principalOf(request), body.user, body.days));
  });

  app.get('/v1/certs', { schema: LIST_CERTS_SCHEMA }, async (request) => ({
    certificates: certificates.list(principalOf(request)),
  }));

  app.post('/v1/certs/:serial/revoke', { schema: REVOKE_CERT_SCHEMA }, async (request) => {
    const { serial } = request.params as { serial: string };
    return certificates.revoke(principalOf(request), serial);
  });
}
