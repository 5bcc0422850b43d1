/**
 * What-if runs: which task instances had their outcome forced (`--fail`, `--skip`,
 * `--succeed`, `--branch` …), as the server reads them from the session's audit trail
 * (`forced` of a run, of a node and of a task instance). Pure functions: unit-tested.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import type { IRunSummary, ITaskInstance } from './tokens';

/** The badge's text on a node: short, and not a state (states have colours). */
export const FORCED_BADGE = 'forced';

/**
 * How a task was forced, from its task instances in one run: the outcome of an unmapped
 * instance, or the forced mapped instances as `[0] fail, [2] skip` (the server's `Node.forced`
 * format); null when none was.
 */
export function taskForced(tis: readonly ITaskInstance[]): string | null {
  const unmapped = tis.find(ti => ti.map_index < 0 && ti.forced);
  if (unmapped) {
    return unmapped.forced;
  }
  const mapped = tis
    .filter(ti => ti.map_index >= 0 && ti.forced)
    .sort((a, b) => a.map_index - b.map_index)
    .map(ti => `[${ti.map_index}] ${ti.forced}`);
  return mapped.length ? mapped.join(', ') : null;
}

/** The forced task instances of a run, `key: outcome`, in key order. */
export function forcedList(run: Pick<IRunSummary, 'forced'> | null): string[] {
  const forced = run?.forced ?? {};
  return Object.keys(forced)
    .sort()
    .map(key => `${key}: ${forced[key]}`);
}

/**
 * The tooltip of a forced node: what was forced, and that the rest ran for real.
 */
export function forcedTitle(trans: TranslationBundle, forced: string): string {
  return trans.__(
    'Outcome forced by a what-if run: %1 (the task did not run for real)',
    forced
  );
}
