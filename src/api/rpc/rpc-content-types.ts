/**
 * The content types of the three protocols, as `@connectrpc/connect`'s protocol modules export
 * them: the RPC routes accept them from the start, before Connect is loaded (its first call loads
 * it). test/api/rpc/rpc-paths.test.ts checks them against Connect's own.
 */
export const RPC_CONTENT_TYPES = [
  'application/json', // connect: contentTypeUnaryJson
  'application/connect+json', // connect: contentTypeStreamJson
  'application/grpc-web+proto', // grpc-web: contentTypeProto
  'application/grpc-web+json', // grpc-web: contentTypeJson
  'application/grpc+proto', // grpc: contentTypeProto
  'application/grpc+json', // grpc: contentTypeJson
] as const;

export const RPC_CONTENT_TYPE_PATTERNS = [
  /^application\/grpc(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i, // grpc
  /^application\/grpc-web(-text)?(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i, // grpc-web
  /^application\/(connect\+)?(?:(json)(?:; ?charset=utf-?8)?|(proto))$/i, // connect
] as const;
