import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

type SerializerFactory = ReturnType<typeof SerializerSelector>;
type RouteSerializerCompiler = ReturnType<SerializerFactory>;

/**
 * Fastify's own serializer compiler (fast-json-stringify), deferred to each response schema's
 * first use. Fastify compiles every route's response schemas when the server starts: code
 * generation and `new Function` for each status of each route, most of which a given server never
 * answers (about a second of CPU at start on the 2-core machine, and the generated code stays
 * resident). The serializer made on first use is the same one; a schema that cannot be compiled
 * fails that response with the compiler's error, as it would have failed the start.
 */
export function lazySerializers(): SerializerFactory {
  const build = SerializerSelector();
  return (externalSchemas, serializerOpts) => {
    const compile: RouteSerializerCompiler = build(externalSchemas, serializerOpts);
    return (route) => {
      let serialize: ((data: unknown) => string) | undefined;
      return (data: unknown) => {
        serialize ??= compile(route) as (data: unknown) => string;
        return serialize(data);
      };
    };
  };
}
