import AjvCompiler from '@fastify/ajv-compiler';

type ValidatorFactory = ReturnType<typeof AjvCompiler>;
type RouteValidatorCompiler = ReturnType<ValidatorFactory>;
/**
 * The REST app's Ajv options: no coercion, no defaults, no removal of unknown properties (each
 * schema says `additionalProperties: false` where it refuses them), stop at the first error.
 */
export const REST_AJV_OPTIONS = {
  removeAdditional: false,
  coerceTypes: false,
  useDefaults: false,
  allErrors: false,
} as const;

type Validate = ((data: unknown, options?: unknown) => unknown) & { errors?: unknown };

/**
 * Fastify's own validator compiler (Ajv, through @fastify/ajv-compiler), deferred to each request
 * schema's first use, as `lazySerializers` does for responses. Fastify compiles every route's body,
 * query, params and headers schemas when the server starts: Ajv's code generation for ~150 schemas
 * made V8 optimize its generator (Maglev and TurboFan pages of the `node` binary then resident)
 * and left every generated validator in the heap, for routes an idle server never answers.
 *
 * The validator made on first use is the same one, called the same way: `schemaEnv` tells Fastify
 * to pass the parent data, as it does to Ajv's functions, and `errors` is the last call's. A
 * schema that cannot be compiled fails that route's requests with the compiler's error (500), and
 * shared schemas that Ajv refuses fail every validated request (test/api/lazy-validators.test.ts
 * compiles every route's schemas with them, so CI finds either).
 */
export function lazyValidators(): ValidatorFactory {
  const build = AjvCompiler();
  return (externalSchemas, options) => {
    // The Ajv instance itself (its formats, the shared schemas, the meta-schema it compiles) is
    // made by the first request that needs a validator: an idle server holds none of it.
    let compile: RouteValidatorCompiler | undefined;
    return (route) => {
      // Fastify lowercases a headers schema's names for its own compiler only, not for a custom one.
      if (route.httpPart === 'headers') checkLowerCaseHeaders(route.schema, route.url ?? '');
      let validate: Validate | undefined;
      const lazy: Validate & { schemaEnv: object } = Object.assign(
        (data: unknown, callOptions?: unknown) => {
          compile ??= build(externalSchemas, options);
          validate ??= compile(route) as unknown as Validate;
          const result = validate(data, callOptions);
          lazy.errors = validate.errors;
          return result;
        },
        { schemaEnv: {} },
      );
      // Typed as Ajv's function, whose other members Fastify does not read.
      return lazy as unknown as ReturnType<RouteValidatorCompiler>;
    };
  };
}

function checkLowerCaseHeaders(schema: unknown, url: string): void {
  const properties = (schema as { properties?: Record<string, unknown> } | null)?.properties ?? {};
  for (const name of Object.keys(properties)) {
    if (name !== name.toLowerCase()) {
      throw new Error(`Expected the header names of ${url}'s schema in lower case, got \`${name}\``);
    }
  }
}
