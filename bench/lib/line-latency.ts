/** Microseconds on CLOCK_MONOTONIC, the clock `bench/fixtures/tick-writer.ts` stamps its lines with. */
export function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Splits a follower's bytes into tick-writer lines and records, for each, the time from its
 * write to its arrival (ms), and checks that the sequence has no gap and no duplicate.
 */
export class LineLatency {
  readonly latenciesMs: number[] = [];
  /** When each line arrived (µs, CLOCK_MONOTONIC), in the order they came: by sequence number when `problem` is undefined. */
  readonly arrivedMicros: number[] = [];
  bytes = 0;
  lines = 0;
  #partial = '';
  #problem: string | undefined;

  /** Bytes of the stream as they arrived at `arrivedMicros`. */
  push(text: string, arrivedMicros: number): void {
    this.bytes += Buffer.byteLength(text);
    const all = this.#partial + text;
    let start = 0;
    for (let nl = all.indexOf('\n'); nl !== -1; nl = all.indexOf('\n', start)) {
      const space = all.indexOf(' ', start);
      const seq = Number(all.slice(start, space));
      const stamp = Number(all.slice(space + 1, all.indexOf(' ', space + 1)));
      if (seq !== this.lines) this.#problem ??= `line ${this.lines} came as ${seq}`;
      this.lines++;
      this.latenciesMs.push((arrivedMicros - stamp) / 1000);
      this.arrivedMicros.push(arrivedMicros);
      start = nl + 1;
    }
    this.#partial = all.slice(start);
  }

  /** Undefined when every line came once and in order, else what went wrong. */
  get problem(): string | undefined {
    return this.#problem ?? (this.#partial === '' ? undefined : 'the stream ended inside a line');
  }
}
