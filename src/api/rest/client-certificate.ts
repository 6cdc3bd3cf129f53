import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { CertificateHolder } from '../../auth/authenticator.ts';

const USER_URI_PREFIX = 'URI:jobworker://user/';

/** A quoted string at the start of the text: JSON, as Node writes it into `subjectAltName`. */
const QUOTED = /^"(?:[^"\\]|\\.)*"/;

/**
 * The holder of each verified connection's certificate, worked out at its first request: TLS 1.3
 * has no renegotiation, so a connection's certificate never changes.
 */
const holderOfConnection = new WeakMap<TLSSocket, CertificateHolder | undefined>();

/**
 * The user a verified client certificate names (`userNamedBy`), with the certificate's
 * `notBefore`. Undefined without TLS, without a certificate, with one that names nobody, or with
 * one that did not verify against the client CA (the server cuts such connections at the
 * handshake; this is the second lock).
 */
export function certificateHolderOf(request: FastifyRequest): CertificateHolder | undefined {
  const socket = tlsSocketOf(request);
  if (socket?.authorized !== true) return undefined;
  if (holderOfConnection.has(socket)) return holderOfConnection.get(socket);
  const cert = socket.getPeerX509Certificate();
  const user = cert === undefined ? undefined : userNamedBy(cert);
  const holder = user === undefined ? undefined : { user, notBefore: cert!.validFromDate };
  holderOfConnection.set(socket, holder);
  return holder;
}

/**
 * The user `cert` names. Only a whole URI SAN entry names one: `jobworker://user/` and the rest
 * of the entry, percent-decoded (`jobworker://user/admin y` names `admin y`, not `admin`). A
 * certificate whose entries name different users names none (no order among them is to be
 * trusted), nor does one whose name is not percent-encoded right; it is not judged by its CN
 * then. Without such an entry, its CN names the user.
 */
export function userNamedBy(cert: X509Certificate): string | undefined {
  const entries = subjectAltNames(cert.subjectAltName ?? '');
  if (entries === undefined) return undefined;
  const named = new Set<string>();
  for (const entry of entries) {
    if (!entry.startsWith(USER_URI_PREFIX)) continue;
    try {
      named.add(decodeURIComponent(entry.slice(USER_URI_PREFIX.length)));
    } catch {
      return undefined;
    }
  }
  if (named.size > 0) return named.size === 1 ? [...named][0] : undefined;
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  return cn === undefined || cn === '' ? undefined : cn;
}

/**
 * The entries of Node's `subjectAltName` text (`DNS:a, URI:b`), each as `TYPE:value` with the
 * parts Node wrote as JSON strings decoded; undefined for text not in that form. Node writes a
 * value holding a comma, a quote, a backslash or a control character as a JSON string, its commas
 * escaped (its fix of CVE-2021-44532), so `, ` outside quotes always separates two entries and an
 * entry begins with Node's name of its type. Node's `checkServerIdentity` splits it the same way.
 */
export function subjectAltNames(text: string): string[] | undefined {
  const entries: string[] = [];
  let entry = '';
  let at = 0;
  while (at < text.length) {
    const separator = text.indexOf(', ', at);
    const quote = text.indexOf('"', at);
    if (quote !== -1 && (separator === -1 || quote < separator)) {
      const literal = QUOTED.exec(text.slice(quote))?.[0];
      const value = literal === undefined ? undefined : jsonString(literal);
      if (literal === undefined || value === undefined) return undefined;
      entry += text.slice(at, quote) + value;
      at = quote + literal.length;
    } else if (separator !== -1) {
      entries.push(entry + text.slice(at, separator));
      entry = '';
      at = separator + 2;
    } else {
      entry += text.slice(at);
      at = text.length;
    }
  }
  if (text !== '') entries.push(entry);
  return entries;
}

function jsonString(literal: string): string | undefined {
  try {
    return JSON.parse(literal) as string;
  } catch {
    return undefined;
  }
}

/** The TLS socket under an HTTP/1.1 request, or under the session of an HTTP/2 stream. */
function tlsSocketOf(request: FastifyRequest): TLSSocket | undefined {
  const raw = request.raw as { stream?: { session?: { socket?: unknown } }; socket?: unknown };
  const socket = raw.stream?.session?.socket ?? raw.socket;
  return typeof (socket as TLSSocket | undefined)?.getPeerX509Certificate === 'function'
    ? (socket as TLSSocket)
    : undefined;
}
