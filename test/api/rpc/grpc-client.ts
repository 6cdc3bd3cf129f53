/**
 * An independent gRPC client for the RPC tests: @grpc/grpc-js over real HTTP/2 with TLS, its
 * service definitions loaded from proto/ at run time by @grpc/proto-loader (not our generated
 * code), and the error details decoded with protobufjs.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const PROTO_DIR = new URL('../../../proto/', import.meta.url).pathname;

type Unary = (
  request: object,
  metadata: grpc.Metadata,
  callback: (err: grpc.ServiceError | null, response: Record<string, unknown>) => void,
) => grpc.ClientUnaryCall;

/** A service client, each method callable by name. */
export type GrpcClient = grpc.Client &
  Record<string, Unary> & {
    streamOutput(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<OutputMessage>;
  };

/** A StreamOutputResponse as proto-loader decodes it (oneofs named, longs and enums as strings). */
export interface OutputMessage {
  event: 'data' | 'truncated' | 'end';
  data?: { stream: string; data: Buffer; cursor: string };
  truncated?: { stream: string; skippedBytes: string; cursor: string };
  end?: { id: string; status: string; owner: string; exitCode?: number };
}

const definition = protoLoader.loadSync(
  ['jobworker/v1/job_service.proto', 'jobworker/v1/queue_service.proto', 'jobworker/v1/user_service.proto'],
  { includeDirs: [PROTO_DIR], longs: String, enums: String, defaults: true, oneofs: true },
);
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  jobworker: { v1: Record<string, grpc.ServiceClientConstructor> };
};

/** What a client presents: the server's CA, and optionally a client certificate. */
export interface GrpcCredentials {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export function grpcClient(service: string, url: string, credentials: GrpcCredentials): GrpcClient {
  const Client = loaded.jobworker.v1[service];
  if (!Client) throw new Error(`No service ${service}`);
  const ssl = grpc.credentials.createSsl(
    Buffer.from(credentials.ca),
    credentials.key === undefined ? null : Buffer.from(credentials.key),
    credentials.cert === undefined ? null : Buffer.from(credentials.cert),
  );
  return new Client(new URL(url).host, ssl) as unknown as GrpcClient;
}

/** Metadata with `authorization: Bearer <token>`, or none. */
export function bearer(token?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** A unary call as a promise. */
export function call<T = Record<string, unknown>>(
  client: GrpcClient,
  method: string,
  request: object,
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`No method ${method}`);
    fn.call(client, request, metadata, (err, response) => (err ? reject(err) : resolve(response as T)));
  });
}

const STATUS_PROTO = `
syntax = "proto3";
package google.rpc;
message Any { string type_url = 1; bytes value = 2; }
message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
`;
const ERROR_DETAIL_PROTO = `
syntax = "proto3";
package jobworker.v1;
message ErrorDetail { string code = 1; string field = 2; int32 retry_after_seconds = 3; }
`;
const Status = protobuf.parse(STATUS_PROTO).root.lookupType('google.rpc.Status');
const ErrorDetail = protobuf.parse(ERROR_DETAIL_PROTO).root.lookupType('jobworker.v1.ErrorDetail');

/** Our error detail from a failed call's `grpc-status-details-bin`, with the other details' type names. */
export function errorDetail(err: grpc.ServiceError): { code: string; field: string; types: string[] } {
  const [bin] = err.metadata.get('grpc-status-details-bin');
  if (!Buffer.isBuffer(bin)) throw new Error(`No status details on ${err.message}`);
  const status = Status.toObject(Status.decode(bin), { bytes: Buffer }) as {
    details?: { typeUrl: string; value: Buffer }[];
  };
  const details = status.details ?? [];
  const ours = details.find((d) => d.typeUrl.endsWith('/jobworker.v1.ErrorDetail'));
  if (!ours) throw new Error('No jobworker.v1.ErrorDetail in the status details');
  const detail = ErrorDetail.toObject(ErrorDetail.decode(ours.value), { defaults: true }) as {
    code: string;
    field: string;
  };
  return { ...detail, types: details.map((d) => d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1)) };
}

/** Rejects with the grpc-js error of a call expected to fail. */
export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('Expected the call to fail');
}

export { grpc };
