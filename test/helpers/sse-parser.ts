/** One server-sent event. `id` is the last event id seen so far in the stream (the spec's semantics). */
export interface ServerSentEvent {
  readonly event: string;
  readonly data: string;
  readonly id: string | null;
}

/**
 * Incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events"): feed it text
 * as it arrives, get back the events it completed. Lines end with LF, CRLF or CR.
 */
export class SseParser {
  /** Text after the last line end, in the chunks it came in. */
  private parts: string[] = [];
  private event = '';
  private data: string[] = [];
  private lastId: string | null = null;
  private pendingCr = false;

  push(text: string): ServerSentEvent[] {
    const events: ServerSentEvent[] = [];
    let input = text;
    // A CR at the end of the previous chunk may have been the first half of CRLF.
    if (this.pendingCr && input.startsWith('\n')) input = input.slice(1);
    this.pendingCr = false;
    // An event of megabytes (a catch-up page) comes in many chunks: they are kept apart until a
    // line end comes, and only new text is searched for one, so reading it stays linear.
    let lf = input.indexOf('\n');
    let cr = input.indexOf('\r');
    if (lf === -1 && cr === -1) {
      if (input !== '') this.parts.push(input);
      return events;
    }
    const before = this.parts.join('');
    this.parts = [];
    const buffer = before + input;
    if (lf !== -1) lf += before.length;
    if (cr !== -1) cr += before.length;
    let start = 0;
    while (lf !== -1 || cr !== -1) {
      const i = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      const line = buffer.slice(start, i);
      let next = i + 1;
      if (i === cr) {
        if (next === buffer.length) this.pendingCr = true;
        else if (buffer.charCodeAt(next) === 10) next++;
      }
      start = next;
      if (lf !== -1 && lf < start) lf = buffer.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = buffer.indexOf('\r', start);
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    if (start < buffer.length) this.parts.push(buffer.slice(start));
    return events;
  }

  private line(line: string): ServerSentEvent | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        return null;
      }
      const event = { event: this.event || 'message', data: this.data.join('\n'), id: this.lastId };
      this.event = '';
      this.data = [];
      return event;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    return null;
  }
}
