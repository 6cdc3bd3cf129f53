/**
 * `jobworker/client`: a typed client for a jobworker server's REST API v1. See docs/library.md.
 */

export type { JobStatus } from '../core/job.ts';
export type { ApiJob, CreateJobBody, JobPage, OutputView, RetryBody } from './api-types.ts';
export type {
  CertificateOptions,
  ClientOptions,
  Pem,
  SocketOptions,
  TokenOptions,
} from './client-options.ts';
export { JobworkerApiError, JobworkerConnectionError } from './errors.ts';
export {
  type ClientOutputOptions,
  JobworkerClient,
  type ListFilter,
  type ResultOptions,
  type WaitOptions,
} from './jobworker-client.ts';
