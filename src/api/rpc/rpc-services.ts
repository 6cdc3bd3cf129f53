import type { ConnectRouter } from '@connectrpc/connect';
import type { CertificateService as Certificates } from '../../service/certificate-service.ts';
import type { JobService as Jobs } from '../../service/job-service.ts';
import type { UserService as Users } from '../../service/user-service.ts';
import type { WebhookService as Webhooks } from '../../service/webhook-service.ts';
import { auditRpc, certificateRpc, tokenRpc, userRpc } from './account-rpc.ts';
import { AuditService } from './gen/jobworker/v1/audit_service_pb.ts';
import { CertificateService } from './gen/jobworker/v1/certificate_service_pb.ts';
import { JobService } from './gen/jobworker/v1/job_service_pb.ts';
import { QueueService } from './gen/jobworker/v1/queue_service_pb.ts';
import { TokenService } from './gen/jobworker/v1/token_service_pb.ts';
import { UserService } from './gen/jobworker/v1/user_service_pb.ts';
import { WebhookService } from './gen/jobworker/v1/webhook_service_pb.ts';
import { jobRpc } from './job-rpc.ts';
import { queueRpc } from './queue-rpc.ts';
import { webhookRpc } from './webhook-rpc.ts';

/** The services the RPC adapter calls: the same instances REST calls. */
export interface RpcServices {
  readonly jobs: Jobs;
  readonly users: Users;
  readonly certificates: Certificates;
  /** Server-wide webhooks and deliveries; absent: no WebhookService. */
  readonly webhooks?: Webhooks;
}

/** Every jobworker.v1 service, on one router. */
export function registerRpcServices(router: ConnectRouter, services: RpcServices): void {
  router.service(JobService, jobRpc(services.jobs));
  router.service(QueueService, queueRpc(services.jobs));
  router.service(UserService, userRpc(services.users));
  router.service(TokenService, tokenRpc(services.users));
  router.service(AuditService, auditRpc(services.users));
  router.service(CertificateService, certificateRpc(services.certificates));
  if (services.webhooks) router.service(WebhookService, webhookRpc(services.webhooks));
}
