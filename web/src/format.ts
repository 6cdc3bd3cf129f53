/** Formatting for tables: times in the browser's zone, durations short. */
export function time(iso: string | null): string {
  if (iso === null) return '';
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function duration(ms: number): string {
  if (ms < 0) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

/** How long a job ran (or runs so far), from its times. */
export function runTime(job: { startedAt: string | null; finishedAt: string | null }, now: number): string {
  if (job.startedAt === null) return '';
  const end = job.finishedAt === null ? now : Date.parse(job.finishedAt);
  return duration(end - Date.parse(job.startedAt));
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * The command line as one would type it (for display only: shown as text, never as HTML), with
 * control characters (an escape sequence in an argument) shown as `\xNN` instead of acting.
 */
export function commandLine(job: { command: string; args: readonly string[] }): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`);
  return visible([job.command, ...job.args.map(quote)].join(' '));
}

/**
 * Control characters as `\xNN` (a newline as `\n`), and the invisible characters that reorder or
 * hide text (C1 controls, bidirectional marks, overrides and isolates, zero-width and format
 * characters, line and paragraph separators, tag characters) as `\u{XXXX}`, so that text shows
 * what it holds: a job name with U+202E would otherwise show its letters reversed.
 */
export function visible(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
    /[\x00-\x1f\x7f-\x9f\xad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u{e0000}-\u{e007f}]/gu,
    (c) => {
      const code = c.codePointAt(0)!;
      if (c === '\n') return '\\n';
      if (code < 0x80) return `\\x${code.toString(16).padStart(2, '0')}`;
      return `\\u{${code.toString(16).toUpperCase().padStart(4, '0')}}`;
    },
  );
}
