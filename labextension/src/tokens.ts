import { Token } from '@lumino/coreutils';

/**
 * Command ids of the Kyte extension.
 */
export namespace CommandIDs {
  /** Show the Kyte sidebar panel. */
  export const openPanel = 'kyte:open-panel';
  /** Run one task in the notebook's kernel (`%run_task DAG TASK`). */
  export const runTask = 'kyte:run-task';
  /** Run a task and everything upstream of it (`%run_task DAG TASK --upstream`). */
  export const runTaskUpstream = 'kyte:run-task-upstream';
  /** Run a task and everything downstream of it (`%run_task DAG TASK --downstream`). */
  export const runTaskDownstream = 'kyte:run-task-downstream';
  /** Show the XCom value of a task's latest try (`%xcom DAG TASK`). */
  export const showXCom = 'kyte:show-xcom';
  /** Open the log viewer for a task. */
  export const openLog = 'kyte:open-log';
  /** Run the whole DAG in the notebook's kernel (`%run_dag DAG`). */
  export const runDag = 'kyte:run-dag';
  /** Fit the graph into the panel. */
  export const fitGraph = 'kyte:fit-graph';
  /** Export the active notebook to Airflow DAG files (POST kyte/export). */
  export const exportDag = 'kyte:export';
}

/**
 * An Airflow task-instance state, or `null` for a task that has no state in the latest run.
 * Unknown strings from newer Airflow versions are passed through unchanged.
 */
export type TaskState =
  | 'success'
  | 'failed'
  | 'running'
  | 'queued'
  | 'skipped'
  | 'upstream_failed'
  | 'up_for_retry'
  | 'up_for_reschedule'
  | 'scheduled'
  | 'deferred'
  | 'removed'
  | 'restarting'
  | string
  | null;

/**
 * A notebook's Kyte session: its private Airflow home (GET kyte/sessions).
 */
export interface ISession {
  /** Stable session id (`<notebook stem slug>-<hash>`). */
  id: string;
  /** The notebook the session belongs to. */
  notebook_path: string;
  /** Absolute path of the session's Airflow home on the server. */
  home: string;
  /** When the home was created (ISO 8601). */
  created: string;
  /** Version of Airflow the home's metastore was migrated with. */
  airflow_version: string;
}

/**
 * One task of a DAG graph.
 */
export interface IDagNode {
  /** Full task id, including task-group prefixes (`group.task`). */
  task_id: string;
  /** Short label shown in the graph (the task id without its group prefix). */
  label?: string;
  /** Operator class name, e.g. `PythonOperator`. */
  operator: string;
  /** Id of the innermost task group holding the task, or null at the top level. */
  task_group: string | null;
  /** Whether the task is dynamically mapped (`.expand()`). */
  is_mapped: boolean;
  /** State of the task in the DAG's latest run, null when it has none. */
  state: TaskState;
  /**
   * For mapped tasks: the states of the mapped instances, either as a list (one entry per map
   * index) or as counts per state.
   */
  map_states?: TaskState[] | Record<string, number>;
}

/**
 * A task group of a DAG.
 */
export interface ITaskGroup {
  /** Full group id (`outer.inner`). */
  group_id: string;
  /** Id of the enclosing group, null at the top level. */
  parent: string | null;
  /** Short label of the group. */
  label: string;
}

/**
 * A summary of a DAG run.
 */
export interface IRunSummary {
  /** The run id, e.g. `manual__2026-01-01T00:00:00+00:00`. */
  run_id: string;
  /** The run's state (`queued`, `running`, `success`, `failed`). */
  state: string | null;
  /** The run's logical date (ISO 8601) or null. */
  logical_date: string | null;
  /** When the run started, or null. */
  start_date: string | null;
  /** When the run ended, or null. */
  end_date: string | null;
}

/**
 * A DAG with its graph and the states of its latest run (GET kyte/sessions/{id}/dags).
 */
export interface IDagInfo {
  /** The DAG id. */
  dag_id: string;
  /** The DAG's description, if any. */
  description: string | null;
  /** The DAG's schedule, as text, if any. */
  schedule: string | null;
  /** The tasks. */
  nodes: IDagNode[];
  /** Dependencies as `[upstream_task_id, downstream_task_id]` pairs. */
  edges: [string, string][];
  /** All task groups, outermost first. */
  task_groups: ITaskGroup[];
  /** The latest run, or null if the DAG never ran. */
  latest_run: IRunSummary | null;
}

/**
 * A DAG run (GET kyte/sessions/{id}/dags/{dag_id}/runs).
 */
export interface IDagRun extends IRunSummary {
  /** How the run was created (`manual`, `scheduled`, ...). */
  run_type: string;
  /** The run's conf. */
  conf: Record<string, unknown> | null;
}

/**
 * A task instance of a run (GET .../runs/{run_id}/tasks).
 */
export interface ITaskInstance {
  /** The task id. */
  task_id: string;
  /** The map index, -1 for unmapped tasks. */
  map_index: number;
  /** The state. */
  state: TaskState;
  /** The current (or last) try number. */
  try_number: number;
  /** When the instance started, or null. */
  start_date: string | null;
  /** When the instance ended, or null. */
  end_date: string | null;
  /** Duration in seconds, or null. */
  duration: number | null;
  /** Operator class name. */
  operator: string;
}

/**
 * A range of a task log (GET .../tasks/{task_id}/logs?try=N&offset=BYTES).
 */
export interface ILogChunk {
  /** The text of the range (decoded). */
  text: string;
  /** Byte offset the range starts at. */
  offset: number;
  /** Byte offset to ask for next. */
  next_offset: number;
  /** Size of the whole log file in bytes, so far. */
  size: number;
  /** The try this log belongs to. */
  try_number: number;
  /** All tries that have a log, e.g. `[1, 2]`. */
  tries: number[];
  /** The task instance's state. */
  state: TaskState;
  /** True when the try has finished and the log will not grow any more. */
  complete: boolean;
}

/**
 * Where to read a log from.
 */
export interface ILogRequest {
  /** The try to read; the latest when omitted. */
  tryNumber?: number;
  /** Byte offset to start at. */
  offset?: number;
  /** Map index for mapped tasks, -1 otherwise. */
  mapIndex?: number;
  /** Read at most this many bytes (the server's default when omitted). */
  limit?: number;
}

/**
 * A problem that stopped an export.
 */
export interface IExportProblem {
  /** What went wrong. */
  message: string;
  /** Index or id of the notebook cell concerned, if any. */
  cell?: number | string;
  /** Line in the cell, if known. */
  line?: number;
  /** Any other detail the server adds. */
  [key: string]: unknown;
}

/**
 * Result of a successful export (POST kyte/export).
 */
export interface IExportResult {
  /** Paths of the DAG files written. */
  files: string[];
}

/**
 * The client side of Kyte's REST API. All requests go through `requestAPI()`.
 */
export interface IKyteService {
  /** The session of a notebook (path relative to the server root), or null if none yet. */
  findSession(notebookPath: string): Promise<ISession | null>;
  /** The DAGs of a session, with graph and latest-run states. */
  getDags(sessionId: string, init?: RequestInit): Promise<IDagInfo[]>;
  /** Runs of a DAG, newest first. */
  getRuns(sessionId: string, dagId: string): Promise<IDagRun[]>;
  /** Task instances of a run. */
  getTaskInstances(
    sessionId: string,
    dagId: string,
    runId: string
  ): Promise<ITaskInstance[]>;
  /** A range of a task log. */
  getLog(
    sessionId: string,
    dagId: string,
    runId: string,
    taskId: string,
    request?: ILogRequest,
    init?: RequestInit
  ): Promise<ILogChunk>;
  /** The session's audit log entries. */
  getAudit(sessionId: string): Promise<Record<string, unknown>[]>;
  /** Export a notebook's DAGs to DAG files; rejects with a `KyteRequestError` on problems. */
  exportNotebook(notebookPath: string, dagId?: string): Promise<IExportResult>;
}

/**
 * The Kyte REST client, provided by the `kyte-jupyter:service` plugin.
 */
export const IKyteService = new Token<IKyteService>(
  'kyte-jupyter:IKyteService',
  'Client of the Kyte server extension REST API (sessions, DAGs, runs, logs, export).'
);
