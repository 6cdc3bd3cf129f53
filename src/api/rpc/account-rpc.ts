import type { ServiceImpl } from '@connectrpc/connect';
import type { CertificateService as Certificates } from '../../service/certificate-service.ts';
import type { UserService as Users } from '../../service/user-service.ts';
import type { AuditService } from './gen/jobworker/v1/audit_service_pb.ts';
import type { CertificateService } from './gen/jobworker/v1/certificate_service_pb.ts';
import type { TokenService } from './gen/jobworker/v1/token_service_pb.ts';
import type { UserService } from './gen/jobworker/v1/user_service_pb.ts';
import { callerOf } from './rpc-authentication.ts';
import {
  auditRequest,
  auditToProto,
  certificateToProto,
  createUserInput,
  pageTokenError,
  tokenToProto,
  updateUserInput,
  userToProto,
} from './rpc-mapping.ts';

/** jobworker.v1.UserService: admins only, checked by the service. */
export function userRpc(users: Users): ServiceImpl<typeof UserService> {
  return {
    async listUsers(_req, ctx) {
      return { users: users.listUsers(callerOf(ctx)).map(userToProto) };
    },
    async createUser(req, ctx) {
      return { user: userToProto(await users.addUser(callerOf(ctx), createUserInput(req))) };
    },
    async updateUser(req, ctx) {
      return { user: userToProto(await users.setUser(callerOf(ctx), req.name, updateUserInput(req))) };
    },
    async deleteUser(req, ctx) {
      return { user: userToProto(await users.removeUser(callerOf(ctx), req.name)) };
    },
  };
}

/** jobworker.v1.TokenService: admins only. */
export function tokenRpc(users: Users): ServiceImpl<typeof TokenService> {
  return {
    async listTokens(req, ctx) {
      return { tokens: (await users.listTokens(callerOf(ctx), req.user)).map(tokenToProto) };
    },
    async createToken(req, ctx) {
      const { token, record } = await users.createToken(callerOf(ctx), {
        user: req.user,
        ...(req.label !== undefined ? { label: req.label } : {}),
        ...(req.expiresIn !== undefined ? { expiresIn: req.expiresIn } : {}),
      });
      return { token, record: tokenToProto(record) };
    },
    async revokeToken(req, ctx) {
      return { token: tokenToProto(await users.revokeToken(callerOf(ctx), req.id)) };
    },
  };
}

/** jobworker.v1.AuditService: admins only. */
export function auditRpc(users: Users): ServiceImpl<typeof AuditService> {
  return {
    async listAuditEntries(req, ctx) {
      const page = await users.listAudit(callerOf(ctx), auditRequest(req)).catch(pageTokenError);
      return { entries: page.entries.map(auditToProto), nextPageToken: page.nextCursor ?? '' };
    },
  };
}

/** jobworker.v1.CertificateService: admins only, on a server with its own CA. */
export function certificateRpc(certificates: Certificates): ServiceImpl<typeof CertificateService> {
  return {
    async listCertificates(_req, ctx) {
      return { certificates: certificates.list(callerOf(ctx)).map(certificateToProto) };
    },
    async issueCertificate(req, ctx) {
      const issued = await certificates.issue(callerOf(ctx), req.user, req.days);
      return {
        certificate: certificateToProto(issued.certificate),
        certPem: issued.certPem,
        keyPem: issued.keyPem,
        caPem: issued.caPem,
      };
    },
    async revokeCertificate(req, ctx) {
      return { certificate: certificateToProto(await certificates.revoke(callerOf(ctx), req.serial)) };
    },
  };
}
