/** One server-sent event. */
export interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

/**
 * Reads `text/event-stream` from a fetch response body (WHATWG "Server-sent events" parsing,
 * enough of it for this server: LF or CRLF line ends, `event`, `id`, `data`, comments).
 * An `EventSource` cannot send an `Authorization` header, so the dashboard streams with fetch.
 */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const onAbort = () => {
    reader.cancel().catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let buffer = '';
  let event = '';
  let id: string | null = null;
  let data: string[] = [];
  try {
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n');
      while (end !== -1) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        end = buffer.indexOf('\n');
        if (line === '') {
          if (data.length > 0 || event !== '') yield { event: event || 'message', id, data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
}
