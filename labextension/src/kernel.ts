/**
 * Running Kyte magics in a notebook's own kernel, so the notebook's namespace, session and
 * Airflow home are used.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { KernelMessage } from '@jupyterlab/services';

import { stripAnsi } from './logformat';
import { IKyteRunSummary, RUN_SUMMARY_MIME } from './tokens';

/** What a magic printed and returned. */
export interface IExecutionResult {
  /** Whether the code ran without raising. */
  ok: boolean;
  /** Everything printed (stdout and stderr), without ANSI colour codes. */
  output: string;
  /** The `text/plain` of the result (`execute_result`) or of displayed data. */
  result: string;
  /** The error name and value, and its traceback (plain text), if the code raised. */
  error: string;
  /** The error's name (`KeyboardInterrupt`, ...), if the code raised. */
  errorName: string;
  /** The run summaries the code displayed (`RUN_SUMMARY_MIME`), in order. */
  summaries: IKyteRunSummary[];
  /**
   * Whether the kernel never ran the code: it was queued behind a busy cell that was
   * interrupted or failed (the kernel answers `aborted`).
   */
  aborted: boolean;
}

/** The run summary in a display output's data bundle, if it holds a valid one. */
export function readRunSummary(
  data: Record<string, unknown>
): IKyteRunSummary | null {
  const value = data[RUN_SUMMARY_MIME];
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return null;
  }
  const s = value as Partial<IKyteRunSummary>;
  if (typeof s.dag_id !== 'string' || typeof s.magic !== 'string') {
    return null;
  }
  return {
    version: typeof s.version === 'number' ? s.version : 1,
    magic: s.magic,
    dag_id: s.dag_id,
    run_id: typeof s.run_id === 'string' ? s.run_id : null,
    state: typeof s.state === 'string' ? s.state : null,
    run_state: typeof s.run_state === 'string' ? s.run_state : null,
    duration_s: typeof s.duration_s === 'number' ? s.duration_s : 0,
    task_instances: Array.isArray(s.task_instances) ? s.task_instances : [],
    failed: Array.isArray(s.failed)
      ? s.failed.filter((k): k is string => typeof k === 'string')
      : []
  };
}

/** Task and DAG ids are Airflow keys: letters, digits, `_`, `.` and `-` only. */
const AIRFLOW_KEY = /^[A-Za-z0-9_.-]{1,250}$/;

/** Whether a string is a valid Airflow DAG or task id (safe to put on a magic line). */
export function isAirflowKey(value: string): boolean {
  return AIRFLOW_KEY.test(value);
}

/** The `%run_task` line for a task, with `--upstream`/`--downstream` when asked. */
export function runTaskCode(
  dagId: string,
  taskId: string,
  direction: 'upstream' | 'downstream' | null = null
): string {
  checkKeys(dagId, taskId);
  return `%run_task ${dagId} ${taskId}${direction ? ` --${direction}` : ''}`;
}

/** The `%run_dag` line for a DAG. */
export function runDagCode(dagId: string): string {
  checkKeys(dagId);
  return `%run_dag ${dagId}`;
}

/** The `%xcom` line for a task. */
export function xcomCode(dagId: string, taskId: string): string {
  checkKeys(dagId, taskId);
  return `%xcom ${dagId} ${taskId}`;
}

function checkKeys(...keys: string[]): void {
  for (const key of keys) {
    if (!isAirflowKey(key)) {
      throw new Error(`"${key}" is not a valid Airflow id.`);
    }
  }
}

/**
 * Run code in a notebook's kernel, outside of any cell, and collect what it prints.
 *
 * @throws If the notebook has no running kernel.
 */
export async function executeInKernel(
  sessionContext: ISessionContext,
  code: string
): Promise<IExecutionResult> {
  const kernel = sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error(
      'The notebook has no running kernel. Start its kernel, then try again.'
    );
  }
  const future = kernel.requestExecute({
    code,
    silent: false,
    store_history: false,
    allow_stdin: false,
    stop_on_error: false
  });
  const output: string[] = [];
  const result: string[] = [];
  const summaries: IKyteRunSummary[] = [];
  let error = '';
  let errorName = '';
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    const type = msg.header.msg_type;
    if (type === 'stream') {
      output.push((msg as KernelMessage.IStreamMsg).content.text);
    } else if (type === 'execute_result' || type === 'display_data') {
      const data = (msg as KernelMessage.IExecuteResultMsg).content.data;
      const summary = readRunSummary(data);
      if (summary) {
        // The summary's text/plain is a repr: the structured summary replaces it.
        summaries.push(summary);
        return;
      }
      const text = data['text/plain'];
      if (typeof text === 'string') {
        result.push(text);
      }
    } else if (type === 'error') {
      const content = (msg as KernelMessage.IErrorMsg).content;
      errorName = content.ename;
      error = `${content.ename}: ${content.evalue}\n${content.traceback.join('\n')}`;
    }
  };
  const reply = await future.done;
  const ok = reply.content.status === 'ok';
  if (!ok && !error && reply.content.status === 'error') {
    const c = reply.content as KernelMessage.IReplyErrorContent;
    errorName = c.ename;
    error = `${c.ename}: ${c.evalue}`;
  }
  return {
    ok,
    output: stripAnsi(output.join('')),
    result: stripAnsi(result.join('\n')),
    error: stripAnsi(error),
    errorName,
    summaries,
    aborted: (reply.content.status as string) === 'aborted'
  };
}
