import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString } from 'pino';

/** What Fastify hands its `childLoggerFactory`. */
type ChildLoggerFactory = (
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
) => FastifyBaseLogger;

/**
 * Fastify gives every request a child logger with the request's id bound. A pino child is made by
 * copying its parent (an object per request, its bindings serialized, symbol-keyed stores on a
 * fresh map): about 8 µs of the ~27 µs of CPU a `GET /v1/jobs/{id}` cost the server
 * (`npm run bench -- api-get`). Nearly every request logs nothing (request logs are at `debug`;
 * see RequestLogController), so the child is made when the request first logs at an enabled level,
 * and its lines are the same as the eager child's. Children with their own level or serializers
 * (a route's `logLevel` or `logSerializers`) are made at once, as before.
 */
export const lazyChildLogger: ChildLoggerFactory = (logger, bindings, options) =>
  options.level === undefined && options.serializers === undefined
    ? (new RequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger)
    : logger.child(bindings, options);

/** pino's level check where the logger has one (every pino logger does), else every level is on. */
function enabled(logger: FastifyBaseLogger, level: Level): boolean {
  const check = (logger as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled;
  return typeof check === 'function' ? check.call(logger, level) : true;
}

/** A request's logger: its parent's level, its own bindings, the pino child made on first use. */
class RequestLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #logger(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  #log(level: Level, args: unknown[]): void {
    if (this.#child === undefined && !enabled(this.#parent, level)) return;
    (this.#logger()[level] as (...args: unknown[]) => void)(...args);
  }

  get level(): LevelWithSilentOrString {
    return (this.#child ?? this.#parent).level;
  }

  /** A level of its own: from here on the request has its real child. */
  set level(level: LevelWithSilentOrString) {
    this.#logger().level = level;
  }

  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }

  error(...args: unknown[]): void {
    this.#log('error', args);
  }

  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }

  info(...args: unknown[]): void {
    this.#log('info', args);
  }

  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }

  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }

  silent(): void {}

  isLevelEnabled(level: Level): boolean {
    return enabled(this.#child ?? this.#parent, level);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options);
  }

  bindings(): Bindings {
    return (this.#logger() as unknown as { bindings(): Bindings }).bindings();
  }
}
