/**
 * The notification of a run started from the sidebar reads the run summary the magic
 * displays under RUN_SUMMARY_MIME (issue 12.1), says "not run" for a run that never ran
 * (12.3), and never shows a Python repr.
 */
import { nullTranslator } from '@jupyterlab/translation';

import type { IExecutionResult } from '../kernel';
import { readRunSummary } from '../kernel';
import { describeOutcome } from '../runresult';
import { IKyteRunSummary, RUN_SUMMARY_MIME } from '../tokens';

const trans = nullTranslator.load('kyte_jupyter');

/** The summary `%run_dag mydag` displays when `load` raises (PLAN.md's shape). */
const FAILED_RUN: IKyteRunSummary = {
  version: 1,
  magic: 'run_dag',
  dag_id: 'mydag',
  run_id: 'manual__2026-01-01T00:00:00+00:00',
  state: 'failed',
  run_state: 'failed',
  duration_s: 1.23,
  task_instances: [
    {
      key: 'extract',
      task_id: 'extract',
      map_index: -1,
      state: 'success',
      try_number: 1,
      duration_s: 0.1,
      forced: null,
      error: null
    },
    {
      key: 'load',
      task_id: 'load',
      map_index: -1,
      state: 'failed',
      try_number: 1,
      duration_s: 0.2,
      forced: null,
      error: 'RuntimeError: login failed ***'
    },
    {
      key: 'report',
      task_id: 'report',
      map_index: -1,
      state: 'upstream_failed',
      try_number: 0,
      duration_s: null,
      forced: null,
      error: null
    }
  ],
  failed: ['load', 'report']
};

function result(extra: Partial<IExecutionResult>): IExecutionResult {
  return {
    ok: true,
    output: '',
    result: '',
    error: '',
    errorName: '',
    summaries: [],
    aborted: false,
    ...extra
  };
}

describe('readRunSummary', () => {
  it('reads the summary from a display bundle and ignores the repr next to it', () => {
    const bundle = {
      'text/plain': "<RunSummary dag_id='mydag' state='success'>",
      'text/html': '<b>failed</b>',
      [RUN_SUMMARY_MIME]: FAILED_RUN
    };
    expect(readRunSummary(bundle)).toEqual(FAILED_RUN);
  });

  it('finds nothing in a bundle without one, or with a malformed one', () => {
    expect(readRunSummary({ 'text/plain': 'x' })).toBeNull();
    expect(readRunSummary({ [RUN_SUMMARY_MIME]: 'no' })).toBeNull();
    expect(readRunSummary({ [RUN_SUMMARY_MIME]: { state: 'x' } })).toBeNull();
  });
});

describe('describeOutcome', () => {
  it('tells a failed run as an error naming the failed tasks, never as a success', () => {
    const outcome = describeOutcome(
      trans,
      '%run_dag mydag',
      result({
        ok: true,
        result: '<IPython.core.display.HTML object>',
        summaries: [FAILED_RUN]
      })
    );
    expect(outcome.type).toBe('error');
    expect(outcome.message).toContain('%run_dag mydag failed');
    expect(outcome.message).toContain('load, report');
    expect(outcome.message).toContain('RuntimeError: login failed ***');
    expect(outcome.message).not.toContain('IPython');
    expect(outcome.message).not.toContain('<');
  });

  it('tells a successful run as a success with its task count', () => {
    const ok: IKyteRunSummary = {
      ...FAILED_RUN,
      state: 'success',
      run_state: 'success',
      failed: [],
      task_instances: FAILED_RUN.task_instances.map(ti => ({
        ...ti,
        state: 'success'
      }))
    };
    const outcome = describeOutcome(
      trans,
      '%run_task mydag load',
      result({ summaries: [ok] })
    );
    expect(outcome.type).toBe('success');
    expect(outcome.message).toBe(
      '%run_task mydag load succeeded: 3 tasks in 1.2 s'
    );
  });

  it('says a run queued behind a busy cell, then interrupted, was not run', () => {
    const outcome = describeOutcome(
      trans,
      '%run_task mydag load',
      result({ ok: false, aborted: true })
    );
    expect(outcome.kind).toBe('not-run');
    expect(outcome.type).toBe('warning');
    expect(outcome.message).toContain('was not run');
    expect(outcome.message).not.toContain('failed');
  });

  it('says an interrupted run was interrupted, not that it failed', () => {
    const outcome = describeOutcome(
      trans,
      '%run_dag mydag',
      result({
        ok: false,
        errorName: 'KeyboardInterrupt',
        error: 'KeyboardInterrupt: \n...'
      })
    );
    expect(outcome.kind).toBe('interrupted');
    expect(outcome.type).toBe('warning');
  });

  it('says when nothing ran', () => {
    const outcome = describeOutcome(
      trans,
      '%run_dag mydag',
      result({
        summaries: [
          {
            ...FAILED_RUN,
            run_id: null,
            task_instances: [],
            failed: [],
            state: null
          }
        ]
      })
    );
    expect(outcome.kind).toBe('nothing-ran');
  });

  it('shows the error of a magic that raised without a summary', () => {
    const outcome = describeOutcome(
      trans,
      '%xcom mydag load',
      result({
        ok: false,
        errorName: 'KeyError',
        error: 'KeyError: load\nTraceback'
      })
    );
    expect(outcome.type).toBe('error');
    expect(outcome.message).toBe('%xcom mydag load: KeyError: load');
  });
});
