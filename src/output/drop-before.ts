import type { OutputStream } from '../core/job.ts';
import type { OutputEvent } from './output-types.ts';

/**
 * Applies a kept window that moved while a read was in flight: the events cover the view
 * contiguously from `from`; everything before `keptStart` may now read as a hole, so it becomes
 * one `truncated` event (up to what this read covered at most; a later read reports the rest).
 */
export function dropBefore(
  events: OutputEvent[],
  from: number,
  keptStart: number,
  stream: OutputStream,
): OutputEvent[] {
  const to = events.at(-1)?.cursor ?? from;
  const skipTo = Math.min(keptStart, to);
  if (skipTo <= from) return events;
  const first: OutputEvent = { type: 'truncated', stream, skippedBytes: skipTo - from, cursor: skipTo };
  const kept: OutputEvent[] = [first];
  let position = from;
  for (const event of events) {
    const start = position;
    position = event.cursor;
    if (event.cursor <= skipTo) continue;
    if (start >= skipTo) kept.push(event);
    else if (event.type === 'data') kept.push({ ...event, data: event.data.subarray(skipTo - start) });
    else kept[0] = { ...first, skippedBytes: event.cursor - from, cursor: event.cursor };
  }
  return kept;
}
