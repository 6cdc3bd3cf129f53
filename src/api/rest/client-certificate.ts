import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';

const USER_URI = /(?:^|, )URI:jobworker:\/\/user\/([^,\s]+)/;

/**
 * The user a verified client certificate names: the URI SAN `jobworker://user/<name>`, else the
 * CN. Undefined without TLS, without a certificate, or with one that did not verify against the
 * client CA (the server cuts such connections at the handshake; this is the second lock).
 */
export function certificateUserOf(request: FastifyRequest): string | undefined {
  const socket = tlsSocketOf(request);
  if (socket?.authorized !== true) return undefined;
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? undefined : userNamedBy(cert);
}

export function userNamedBy(cert: X509Certificate): string | undefined {
  const uri = USER_URI.exec(cert.subjectAltName ?? '')?.[1];
  if (uri !== undefined) {
    try {
      return decodeURIComponent(uri);
    } catch {
      return undefined;
    }
  }
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  return cn === undefined || cn === '' ? undefined : cn;
}

/** The TLS socket under an HTTP/1.1 request, or under the session of an HTTP/2 stream. */
function tlsSocketOf(request: FastifyRequest): TLSSocket | undefined {
  const raw = request.raw as { stream?: { session?: { socket?: unknown } }; socket?: unknown };
  const socket = raw.stream?.session?.socket ?? raw.socket;
  return typeof (socket as TLSSocket | undefined)?.getPeerX509Certificate === 'function'
    ? (socket as TLSSocket)
    : undefined;
}
