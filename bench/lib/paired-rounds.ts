import { median } from './stats.ts';

/**
 * Runs round `round` of a paired comparison: both sides, the first one first in even rounds and
 * the other first in odd ones (AB BA ...), so that neither side always runs right after the other
 * (api-get, output-capture).
 */
export async function pairedRound(
  round: number,
  first: () => Promise<void>,
  second: () => Promise<void>,
): Promise<void> {
  const [a, b] = round % 2 === 0 ? [first, second] : [second, first];
  await a();
  await b();
}

/**
 * The median of the pairs' ratios `values[i] / baselines[i]`: a stretch of the shared host's noise
 * slows both sides of a pair, and a burst that hits one side only is left out by the median.
 */
export function pairsRatio(values: readonly number[], baselines: readonly number[]): number {
  return median(values.map((value, i) => value / baselines[i]!));
}
