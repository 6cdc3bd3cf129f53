/** U+FFFD, what an invalid UTF-8 byte is shown as. */
const REPLACEMENT = [0xef, 0xbf, 0xbd] as const;

/**
 * Removes the escape sequences that let a job's output act on the terminal that shows it:
 * OSC (window title, OSC 52 clipboard, hyperlinks), DCS, SOS, PM and APC strings, every CSI
 * sequence but SGR (colours and text attributes), other ESC sequences (charset switches, resets)
 * and C0 controls other than tab, line feed and carriage return. The 8-bit C1 controls, as
 * UTF-8 (U+0080 to U+009F), are treated as their ESC equivalents, since some terminals obey them.
 *
 * Works on bytes and keeps state between chunks, so a sequence split across two writes is
 * still recognized. SGR sequences are buffered until complete; everything else is dropped as
 * it streams, so memory stays bounded.
 */
export class TerminalSanitizer {
  private state: State = 'ground';
  private csi: number[] = [];
  private csiIntermediate = false;

  write(chunk: Uint8Array): Buffer {
    // Runs of plain bytes are copied as slices; bytes emitted by the state machine are collected.
    const parts: Uint8Array[] = [];
    const emitted: number[] = [];
    let runStart = -1;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.state === 'ground' && isPlain(byte)) {
        if (runStart === -1) {
          if (emitted.length > 0) parts.push(Uint8Array.from(emitted.splice(0)));
          runStart = i;
        }
        continue;
      }
      if (runStart !== -1) {
        parts.push(chunk.subarray(runStart, i));
        runStart = -1;
      }
      this.step(byte, emitted);
    }
    if (runStart !== -1) parts.push(chunk.subarray(runStart));
    if (emitted.length > 0) parts.push(Uint8Array.from(emitted));
    return Buffer.concat(parts);
  }

  /** Ends the stream: an incomplete sequence is dropped; a lone 0xC2 becomes U+FFFD (see `c2`). */
  end(): Buffer {
    const rest = this.state === 'c2' ? Buffer.from(REPLACEMENT) : Buffer.alloc(0);
    this.state = 'ground';
    this.csi = [];
    return rest;
  }

  private step(byte: number, out: number[]): void {
    switch (this.state) {
      case 'ground':
        this.ground(byte, out);
        break;
      case 'c2':
        if (byte >= 0x80 && byte <= 0x9f) {
          // A C1 control is its ESC form: U+009B is CSI, U+009D is OSC, U+009C is ST.
          this.escape(byte - 0x40, out);
        } else if (byte >= 0xa0 && byte <= 0xbf) {
          // U+00A0 to U+00BF (a no-break space, '£', '°'...): the pair goes out whole.
          this.state = 'ground';
          out.push(0xc2, byte);
        } else {
          // 0xC2 without its continuation is no character. Passed on alone, it would wait in the
          // terminal for the next byte written, which may come from the job's other stream (a
          // lone 0x9B there is plain) and make U+009B, CSI, of the two: it becomes U+FFFD.
          this.state = 'ground';
          out.push(...REPLACEMENT);
          this.ground(byte, out);
        }
        break;
      case 'escape':
        this.escape(byte, out);
        break;
      case 'escapeIntermediate':
        if (byte >= 0x20 && byte <= 0x2f) break;
        this.state = 'ground';
        if (byte < 0x30 || byte > 0x7e) this.ground(byte, out);
        break;
      case 'csi':
        this.csiByte(byte, out);
        break;
      case 'string':
        if (byte === 0x07 || byte === 0x18 || byte === 0x1a) this.state = 'ground';
        else if (byte === 0x1b) this.state = 'stringEscape';
        else if (byte === 0xc2) this.state = 'stringC2';
        break;
      case 'stringEscape':
        // ESC \ (ST) ends the string; ESC and anything else ends it and starts a new sequence.
        if (byte === 0x5c) this.state = 'ground';
        else this.escape(byte, out);
        break;
      case 'stringC2':
        if (byte === 0x9c) {
          this.state = 'ground';
        } else {
          this.state = 'string';
          this.step(byte, out);
        }
        break;
    }
  }

  private ground(byte: number, out: number[]): void {
    if (isPlain(byte)) out.push(byte);
    else if (byte === 0x1b) this.state = 'escape';
    else if (byte === 0xc2) this.state = 'c2';
    // Any other C0 control or DEL is dropped.
  }

  private escape(byte: number, out: number[]): void {
    if (byte === 0x5b) {
      this.state = 'csi';
      this.csi = [];
      this.csiIntermediate = false;
    } else if (byte === 0x5d || byte === 0x50 || byte === 0x58 || byte === 0x5e || byte === 0x5f) {
      this.state = 'string';
    } else if (byte === 0x1b) {
      this.state = 'escape';
    } else if (byte >= 0x20 && byte <= 0x2f) {
      this.state = 'escapeIntermediate';
    } else if (byte >= 0x30 && byte <= 0x7e) {
      this.state = 'ground';
    } else {
      this.state = 'ground';
      this.ground(byte, out);
    }
  }

  private csiByte(byte: number, out: number[]): void {
    if (byte >= 0x40 && byte <= 0x7e) {
      this.state = 'ground';
      if (
        byte === 0x6d &&
        !this.csiIntermediate &&
        this.csi.every(isSgrParameter) &&
        this.csi.length <= MAX_SGR
      ) {
        out.push(0x1b, 0x5b, ...this.csi, byte);
      }
      this.csi = [];
      return;
    }
    if (byte >= 0x20 && byte <= 0x3f) {
      if (byte <= 0x2f) this.csiIntermediate = true;
      // Past the longest SGR worth keeping, only remember that it is too long.
      if (this.csi.length <= MAX_SGR) this.csi.push(byte);
      return;
    }
    // Anything else aborts the sequence; the byte is then taken on its own.
    this.state = 'ground';
    this.csi = [];
    this.ground(byte, out);
  }
}

type State =
  | 'ground'
  | 'c2'
  | 'escape'
  | 'escapeIntermediate'
  | 'csi'
  | 'string'
  | 'stringEscape'
  | 'stringC2';

/** The longest SGR parameter list kept (24-bit colours for foreground and background fit easily). */
const MAX_SGR = 128;

/** Bytes copied as they are: printable ASCII, tab, LF, CR, and UTF-8 bytes other than 0xC2. */
function isPlain(byte: number): boolean {
  return (
    (byte >= 0x20 && byte < 0x7f) ||
    byte === 0x09 ||
    byte === 0x0a ||
    byte === 0x0d ||
    (byte >= 0x80 && byte !== 0xc2)
  );
}

function isSgrParameter(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || byte === 0x3b || byte === 0x3a;
}

/** Sanitizes a whole buffer at once. */
export function sanitizeTerminalOutput(data: Uint8Array): Buffer {
  const sanitizer = new TerminalSanitizer();
  return Buffer.concat([sanitizer.write(data), sanitizer.end()]);
}

/**
 * Makes a short string from the server (a job name, a command, an error message) safe to print
 * on one line: control characters become visible escapes (`\n`, `\x1b`).
 */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
