import { describe, ValidationError } from '../../core/errors.ts';

/** The parts of an Ajv error this module reads. */
export interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
}

export type RequestPart = 'body' | 'querystring' | 'params' | 'headers';

/**
 * Turns the first schema error of a request part into a `ValidationError` that names the field
 * as a client wrote it (`args[2]`, `env.FOO`, the query parameter `limit`) and says what was
 * expected and what came, in the words core uses.
 */
export function schemaValidationError(
  errors: readonly SchemaError[],
  part: RequestPart,
  data: unknown,
): ValidationError {
  const error = errors[0];
  if (!error) return new ValidationError(part, `Invalid ${part}`);
  const segments = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  const value = valueAt(data, segments);
  const unknownWord = part === 'querystring' ? 'query parameter' : part === 'headers' ? 'header' : 'field';
  switch (error.keyword) {
    case 'additionalProperties': {
      const field = fieldName(data, [...segments, String(error.params.additionalProperty)]);
      return new ValidationError(field, `Unknown ${unknownWord} \`${field}\``);
    }
    case 'required': {
      const field = fieldName(data, [...segments, String(error.params.missingProperty)]);
      return new ValidationError(field, `Missing required ${unknownWord} \`${field}\``);
    }
    case 'type': {
      const field = fieldName(data, segments) || part;
      return ValidationError.expected(field, typeWords(String(error.params.type)), value);
    }
    case 'enum': {
      const field = fieldName(data, segments) || part;
      const allowed = (error.params.allowedValues as unknown[] | undefined) ?? [];
      return ValidationError.expected(field, `one of ${allowed.map(String).join(', ')}`, value);
    }
    case 'minimum':
    case 'maximum': {
      const field = fieldName(data, segments) || part;
      return ValidationError.expected(
        field,
        `a number ${error.params.comparison} ${error.params.limit}`,
        value,
      );
    }
    default: {
      const field = fieldName(data, segments) || part;
      return new ValidationError(
        field,
        `Invalid \`${field}\`: ${error.message ?? error.keyword}, got ${describe(value)}`,
      );
    }
  }
}

function valueAt(data: unknown, segments: readonly string[]): unknown {
  let value = data;
  for (const segment of segments) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** `args[2]`, `env.FOO`, `limits.cpuMillis`: array indexes in brackets, object keys after dots. */
function fieldName(data: unknown, segments: readonly string[]): string {
  let name = '';
  let value = data;
  for (const segment of segments) {
    if (Array.isArray(value)) name += `[${segment}]`;
    else name += name === '' ? segment : `.${segment}`;
    value =
      typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[segment] : undefined;
  }
  return name;
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
  null: '`null`',
};

function typeWords(types: string): string {
  return types
    .split(',')
    .map((t) => ARTICLE[t] ?? t)
    .join(' or ');
}
