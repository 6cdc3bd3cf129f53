import { printable } from './terminal-sanitizer.ts';

/** A column of a text table. */
export interface Column {
  readonly header: string;
  /** Gives up width, down to a few characters, when the table is too wide (the last such column first). */
  readonly shrink?: boolean;
  /** Left out when shrinking was not enough. */
  readonly optional?: boolean;
}

const GAP = 2;

/**
 * Renders rows of plain cells as aligned columns separated by two spaces. Every cell is made
 * `printable` here (control characters as visible escapes): most come from the server (a
 * webhook's URL, a node's address, a label), and none may move the cursor or recolour the
 * terminal, whichever command forgot to. With a `maxWidth` (a terminal's), every line fits:
 * shrinkable cells are cut with an ellipsis, then optional columns are left out, then lines are
 * cut. `decorate` may colour a cell after its width was settled.
 */
export function renderTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
  options: { maxWidth?: number; decorate?: (row: number, column: number, cell: string) => string } = {},
): string {
  const cells = rows.map((row) => row.map(printable));
  const widths = columns.map((column, c) =>
    Math.max(width(column.header), ...cells.map((row) => width(row[c] ?? ''))),
  );
  const shown = columns.map(() => true);
  const max = options.maxWidth;
  if (max !== undefined) {
    const total = () => widths.reduce((sum, w, c) => sum + (shown[c] ? w + GAP : 0), 0) - GAP;
    for (let c = columns.length - 1; c >= 0 && total() > max; c--) {
      if (!columns[c]!.shrink) continue;
      const min = Math.min(widths[c]!, Math.max(width(columns[c]!.header), 8));
      widths[c] = Math.max(min, widths[c]! - (total() - max));
    }
    for (let c = columns.length - 1; c >= 0 && total() > max; c--) {
      if (columns[c]!.optional) shown[c] = false;
    }
  }
  const line = (cells: readonly string[], row: number) => {
    let text = '';
    let used = 0;
    for (let c = 0; c < columns.length; c++) {
      if (!shown[c]) continue;
      if (max !== undefined && used >= max) break;
      const fitted = truncate(
        cells[c] ?? '',
        Math.min(widths[c]!, max === undefined ? widths[c]! : max - used),
      );
      text += row >= 0 && options.decorate ? options.decorate(row, c, fitted) : fitted;
      const pad = widths[c]! - width(fitted) + GAP;
      text += ' '.repeat(pad);
      used += width(fitted) + pad;
    }
    return text.trimEnd();
  };
  return [
    line(
      columns.map((column) => column.header),
      -1,
    ),
    ...cells.map((row, r) => line(row, r)),
  ]
    .map((text) => `${text}\n`)
    .join('');
}

function width(text: string): number {
  return [...text].length;
}

function truncate(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  return max <= 1 ? chars.slice(0, Math.max(0, max)).join('') : `${chars.slice(0, max - 1).join('')}…`;
}
