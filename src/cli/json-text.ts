/**
 * JSON as the CLI prints it. `JSON.stringify` escapes only U+0000-U+001F: DEL and the C1 controls
 * (U+0080-U+009F, which a terminal takes as CSI, OSC and the like when they arrive as UTF-8) would
 * reach the terminal raw from a job's name, command or label, so `list --json` on a terminal
 * could write the clipboard (OSC 52). They are written as `\u00XX` escapes, with U+2028 and U+2029
 * (line breaks to some readers): the same JSON value, nothing for a terminal to act on.
 */
export function jsonText(value: unknown, indent?: number): string {
  // `undefined` (and a function) stringify to nothing: printed as before, `undefined`.
  return String(JSON.stringify(value, null, indent)).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
