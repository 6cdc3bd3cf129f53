import { MAX_CLIENT_CERT_DAYS } from '../../auth/tls/issued-certificates.ts';
import { errors } from './schemas.ts';

/** Schemas of the client-certificate routes (`/v1/certs`); OpenAPI documents them like the rest. */

const nullableTime = (description: string) => ({
  type: ['string', 'null'],
  format: 'date-time',
  description,
});

const certificate = {
  type: 'object',
  description: 'A client certificate the server issued (never its key).',
  additionalProperties: false,
  required: ['serial', 'user', 'issuedAt', 'notAfter', 'revokedAt'],
  properties: {
    serial: { type: 'string', description: 'Serial number, lower-case hex.' },
    user: { type: 'string', description: 'The user it names (CN and URI SAN `jobworker://user/<name>`).' },
    issuedAt: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    revokedAt: nullableTime('When it was revoked; null while it is valid.'),
  },
} as const;

export const ISSUE_CERT_SCHEMA = {
  operationId: 'issueCertificate',
  summary: 'Issue a client certificate for a user: the server makes the key pair (admins)',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['user'],
    properties: {
      user: { type: 'string', description: 'The user the certificate authenticates.' },
      days: {
        type: 'integer',
        description: `How long it is valid, 1 to ${MAX_CLIENT_CERT_DAYS} days; default 90.`,
      },
    },
  },
  response: {
    201: {
      type: 'object',
      additionalProperties: false,
      required: ['certificate', 'certPem', 'keyPem', 'caPem'],
      properties: {
        certificate,
        certPem: { type: 'string', description: 'The certificate, PEM (`client-cert.pem`).' },
        keyPem: {
          type: 'string',
          description: 'Its private key, PEM (`client-key.pem`); shown once, never kept.',
        },
        caPem: { type: 'string', description: "The server's CA, PEM (`ca-cert.pem`): verifies the server." },
      },
    },
    ...errors(400, 403),
  },
} as const;

export const LIST_CERTS_SCHEMA = {
  operationId: 'listCertificates',
  summary: 'List the client certificates the server issued (admins)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['certificates'],
      properties: { certificates: { type: 'array', items: certificate } },
    },
    ...errors(403),
  },
} as const;

export const REVOKE_CERT_SCHEMA = {
  operationId: 'revokeCertificate',
  summary: 'Revoke a client certificate: the next TLS handshake with it fails (admins)',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['serial'],
    properties: { serial: { type: 'string', description: 'Serial number in hex.' } },
  },
  response: { 200: certificate, ...errors(400, 403, 404) },
} as const;
