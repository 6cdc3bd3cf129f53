/**
 * The methods of every jobworker.v1 service, by service: the RPC routes the server registers at
 * start without loading Connect or the services' descriptors (src/api/rpc/rpc-plugin.ts). The
 * generated services are the source; test/api/rpc/rpc-paths.test.ts keeps this list equal to them.
 */
export const RPC_METHODS = {
  'jobworker.v1.JobService': [
    'Start',
    'Get',
    'List',
    'Resolve',
    'Stop',
    'Pause',
    'Resume',
    'Delete',
    'Prune',
    'WaitFor',
    'StreamOutput',
    'WatchEvents',
  ],
  'jobworker.v1.QueueService': [
    'ListQueues',
    'GetQueue',
    'UpdateQueue',
    'PauseQueue',
    'ResumeQueue',
    'GetDrainState',
    'Drain',
    'Undrain',
  ],
  'jobworker.v1.UserService': ['ListUsers', 'CreateUser', 'UpdateUser', 'DeleteUser'],
  'jobworker.v1.TokenService': ['ListTokens', 'CreateToken', 'RevokeToken'],
  'jobworker.v1.AuditService': ['ListAuditEntries'],
  'jobworker.v1.CertificateService': ['ListCertificates', 'IssueCertificate', 'RevokeCertificate'],
  'jobworker.v1.WebhookService': ['AddWebhook', 'ListWebhooks', 'RemoveWebhook', 'ListDeliveries'],
} as const satisfies Record<string, readonly string[]>;

/** `/jobworker.v1.<Service>/<Method>` of every method served; WebhookService only with webhooks. */
export function rpcPaths(options: { readonly webhooks: boolean }): string[] {
  return Object.entries(RPC_METHODS).flatMap(([service, methods]) =>
    service === 'jobworker.v1.WebhookService' && !options.webhooks
      ? []
      : methods.map((method) => `/${service}/${method}`),
  );
}
