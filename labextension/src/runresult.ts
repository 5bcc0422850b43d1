/**
 * What a run magic started from the sidebar did, as a notification: read from the run summary
 * the magic displays (`RUN_SUMMARY_MIME`), never from a Python repr. Pure, unit-tested.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import type { IExecutionResult } from './kernel';
import { IKyteRunSummary } from './tokens';

/** A notification's type: its icon and colour. */
export type OutcomeType = 'success' | 'error' | 'warning' | 'info';

/** How a command's outcome is told. */
export interface IOutcome {
  /** The notification's type. */
  type: OutcomeType;
  /** One line saying what happened. */
  message: string;
  /** `not-run`, `interrupted`, `nothing-ran`, or the summary's state (or `ok`, `error`). */
  kind: string;
}

/** States of a task instance or run that count as a failure. */
const FAILED = new Set(['failed', 'upstream_failed']);

/**
 * Describe the outcome of code run in the notebook's kernel.
 *
 * @param code The magic line that was run (e.g. `%run_dag etl`).
 */
export function describeOutcome(
  trans: TranslationBundle,
  code: string,
  result: IExecutionResult
): IOutcome {
  if (result.aborted) {
    return {
      type: 'warning',
      kind: 'not-run',
      message: trans.__(
        '%1 was not run: the busy cell it waited for was interrupted or raised an error, so the kernel dropped it.',
        code
      )
    };
  }
  const summary = result.summaries[result.summaries.length - 1];
  if (!summary) {
    if (result.errorName === 'KeyboardInterrupt') {
      return {
        type: 'warning',
        kind: 'interrupted',
        message: trans.__('%1 was interrupted.', code)
      };
    }
    if (!result.ok) {
      return {
        type: 'error',
        kind: 'error',
        message: `${code}: ${firstLine(result.error) || trans.__('failed')}`
      };
    }
    return {
      type: 'success',
      kind: 'ok',
      message: `${code}: ${firstLine(result.result) || trans.__('done')}`
    };
  }
  return describeSummary(trans, code, summary);
}

/** Describe a run summary: its outcome, the failed tasks by name, the first error. */
export function describeSummary(
  trans: TranslationBundle,
  code: string,
  summary: IKyteRunSummary
): IOutcome {
  const tis = summary.task_instances ?? [];
  const duration = formatDuration(summary.duration_s);
  if (!summary.run_id && !tis.length) {
    return {
      type: 'warning',
      kind: 'nothing-ran',
      message: trans.__('%1: nothing ran.', code)
    };
  }
  const state = summary.state ?? 'none';
  if (FAILED.has(state) || summary.failed.length) {
    const failed = summary.failed.length
      ? summary.failed
      : tis.filter(ti => FAILED.has(ti.state ?? '')).map(ti => ti.key);
    const firstError = tis.find(ti => ti.error && failed.includes(ti.key));
    const names =
      failed.slice(0, 5).join(', ') + (failed.length > 5 ? ', …' : '');
    return {
      type: 'error',
      kind: state === 'none' ? 'failed' : state,
      message:
        trans._n(
          '%2 failed: task %3 failed',
          '%2 failed: tasks %3 failed',
          failed.length,
          code,
          names
        ) + (firstError ? ` (${firstError.key}: ${firstError.error})` : '')
    };
  }
  if (state === 'success') {
    return {
      type: 'success',
      kind: state,
      message: trans._n(
        '%2 succeeded: %1 task in %3',
        '%2 succeeded: %1 tasks in %3',
        tis.length,
        code,
        duration
      )
    };
  }
  return {
    type: state === 'skipped' ? 'info' : 'warning',
    kind: state,
    message: trans.__(
      '%1 ended %2 (%3)',
      code,
      state.replace(/_/g, ' '),
      duration
    )
  };
}

function formatDuration(seconds: number): string {
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

/** The first line of a text, at most 200 characters. */
export function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 200 ? line.slice(0, 199) + '\u2026' : line;
}
