import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DescService } from '@bufbuild/protobuf';
import * as connectProtocol from '@connectrpc/connect/protocol-connect';
import * as grpcProtocol from '@connectrpc/connect/protocol-grpc';
import * as grpcWebProtocol from '@connectrpc/connect/protocol-grpc-web';
import { AuditService } from '../../../src/api/rpc/gen/jobworker/v1/audit_service_pb.ts';
import { CertificateService } from '../../../src/api/rpc/gen/jobworker/v1/certificate_service_pb.ts';
import { JobService } from '../../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { QueueService } from '../../../src/api/rpc/gen/jobworker/v1/queue_service_pb.ts';
import { TokenService } from '../../../src/api/rpc/gen/jobworker/v1/token_service_pb.ts';
import { UserService } from '../../../src/api/rpc/gen/jobworker/v1/user_service_pb.ts';
import { WebhookService } from '../../../src/api/rpc/gen/jobworker/v1/webhook_service_pb.ts';
import { RPC_CONTENT_TYPE_PATTERNS, RPC_CONTENT_TYPES } from '../../../src/api/rpc/rpc-content-types.ts';
import { rpcPaths } from '../../../src/api/rpc/rpc-paths.ts';

// The routes are registered at start from these lists, before Connect and the generated
// descriptors are loaded (src/api/rpc/rpc-plugin.ts): they must say what the generated code says.
describe('the RPC routes registered before Connect loads', () => {
  it('are the methods of the generated services, WebhookService only with webhooks', () => {
    const services: DescService[] = [
      JobService,
      QueueService,
      UserService,
      TokenService,
      AuditService,
      CertificateService,
    ];
    const paths = (list: DescService[]) =>
      list.flatMap((service) => service.methods.map((method) => `/${service.typeName}/${method.name}`));
    assert.deepEqual(rpcPaths({ webhooks: false }), paths(services));
    assert.deepEqual(rpcPaths({ webhooks: true }), paths([...services, WebhookService]));
  });

  it("accept Connect's content types of the three protocols", () => {
    assert.deepEqual(RPC_CONTENT_TYPES, [
      connectProtocol.contentTypeUnaryJson,
      connectProtocol.contentTypeStreamJson,
      grpcWebProtocol.contentTypeProto,
      grpcWebProtocol.contentTypeJson,
      grpcProtocol.contentTypeProto,
      grpcProtocol.contentTypeJson,
    ]);
    assert.deepEqual(
      RPC_CONTENT_TYPE_PATTERNS.map(String),
      [
        grpcProtocol.contentTypeRegExp,
        grpcWebProtocol.contentTypeRegExp,
        connectProtocol.contentTypeRegExp,
      ].map(String),
    );
  });
});
