/** One figure of a scenario: jobworker's value, its baseline's, their ratio and the budget's verdict. */
export interface Row {
  readonly scenario: string;
  readonly metric: string;
  /** jobworker's figure, formatted with its unit. */
  readonly jobworker: string;
  /** `name: value`, or '-' where the budget is absolute. */
  readonly baseline: string;
  /** jobworker / baseline (or `CompareInput.ratio` when given), or '-'. */
  readonly ratio: string;
  readonly budget: string;
  /** PASS or MISS against the budget; INFO for figures without one; SKIP when it could not run. */
  readonly verdict: 'PASS' | 'MISS' | 'INFO' | 'SKIP';
}

export interface CompareInput {
  readonly scenario: string;
  readonly metric: string;
  readonly value: number;
  readonly format: (value: number) => string;
  readonly baseline?: { readonly name: string; readonly value: number };
  /**
   * The ratio, when it is not `value / baseline`: the median of the ratios of rounds run in pairs,
   * which a stretch of noise that slows both sides of a pair leaves alone.
   */
  readonly ratio?: number;
  /** Text of the budget and whether the figures meet it; omitted for an informative row. */
  readonly budget?: { readonly text: string; readonly pass: boolean };
}

export function row(input: CompareInput): Row {
  const { baseline, budget } = input;
  return {
    scenario: input.scenario,
    metric: input.metric,
    jobworker: input.format(input.value),
    baseline: baseline ? `${baseline.name}: ${input.format(baseline.value)}` : '-',
    ratio: baseline ? `${(input.ratio ?? input.value / baseline.value).toFixed(2)}x` : '-',
    budget: budget?.text ?? '-',
    verdict: budget === undefined ? 'INFO' : budget.pass ? 'PASS' : 'MISS',
  };
}

export function skipped(scenario: string, metric: string, why: string): Row {
  return { scenario, metric, jobworker: '-', baseline: why, ratio: '-', budget: '-', verdict: 'SKIP' };
}

/** The line a scenario prints for each of its rows as soon as it has it. */
export function printRow(r: Row): void {
  const baseline = r.baseline === '-' ? '' : `, ${r.baseline}, ratio ${r.ratio}`;
  const budget = r.verdict === 'INFO' || r.verdict === 'SKIP' ? '' : ` (budget ${r.budget})`;
  console.log(`  ${r.verdict.padEnd(4)} ${r.metric}: jobworker ${r.jobworker}${baseline}${budget}`);
}

/** All rows as a Markdown table, the form docs/performance.md uses. */
export function markdownTable(rows: readonly Row[]): string {
  const header = ['scenario', 'figure', 'jobworker', 'baseline', 'ratio', 'budget', 'verdict'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const cells = [r.scenario, r.metric, r.jobworker, r.baseline, r.ratio, r.budget, r.verdict];
    lines.push(`| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

export const fmt = {
  rate: (unit: string) => (v: number) => `${Math.round(v).toLocaleString('en-US')} ${unit}`,
  ms: (v: number) => (v < 10 ? `${v.toFixed(3)} ms` : `${v.toFixed(1)} ms`),
  s: (v: number) => `${v.toFixed(3)} s`,
  mbps: (v: number) => `${v.toFixed(0)} MB/s`,
  mb: (v: number) => `${(v / 1e6).toFixed(1)} MB`,
  kb: (v: number) => `${(v / 1024).toFixed(1)} KiB`,
  count: (v: number) => Math.round(v).toLocaleString('en-US'),
  percent: (v: number) => `${(v * 100).toFixed(0)}%`,
};
