import type { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import type { ISignal } from '@lumino/signaling';

import type { components } from './schema';

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
  /** Review, then publish the active notebook's DAG files to a target (POST kyte/publish). */
  export const publish = 'kyte:publish';
}

/** The schemas of docs/openapi.yaml (generated into schema.ts by `jlpm generate:api`). */
type Schemas = components['schemas'];

/**
 * An Airflow task-instance state, or `null` for a task that has no state in the latest run.
 * Unknown strings from newer Airflow versions are passed through unchanged.
 */
export type TaskState = Schemas['Node']['state'];

/** A notebook's Kyte session: its private Airflow home (GET kyte/sessions). */
export type ISession = Schemas['Session'];

/**
 * One task of a DAG graph. `map_states` (mapped tasks only) maps a map index, as a string,
 * to that instance's state: `{"0": "success", "1": "running"}`.
 */
export type IDagNode = Schemas['Node'];

/** A task group of a DAG. */
export type ITaskGroup = Schemas['TaskGroup'];

/** A summary of a DAG run (a DAG's `latest_run`). */
export type IRunSummary = Schemas['DagRunSummary'];

/**
 * A DAG with its graph and the states of its latest run (GET kyte/sessions/{id}/dags).
 * `warnings` are the kernel's and the notebook's disagreements (dropped cells, ...);
 * `findings` the static checks' findings of the DAG's last lint in the kernel.
 */
export type IDagInfo = Schemas['DagView'];

/**
 * A static-check finding of a DAG (`findings` of a DAG): `task_id` null = about the DAG as a
 * whole; `field` the template field (e.g. `sql`); `line` the line in its `%%dag` cell.
 */
export type IFinding = Schemas['Finding'];

/** A DAG run (GET kyte/sessions/{id}/dags/{dag_id}/runs). */
export type IDagRun = Schemas['DagRun'];

/** A task instance of a run (GET .../runs/{run_id}/tasks). */
export type ITaskInstance = Schemas['TaskInstance'];

/** A range of a task log (GET .../tasks/{task_id}/logs?try=N&offset=BYTES). */
export type ILogChunk = Schemas['LogRange'];

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
 * One problem that stopped an export, as the dialog shows it (parsed from the server's
 * `"cell 4, line 2: ..."` lines).
 */
export interface IExportProblem {
  /** What went wrong (without the cell and line). */
  message: string;
  /** The notebook cell concerned, numbered from 1 in notebook order, if any. */
  cell?: number;
  /** The line in the cell, if known. */
  line?: number;
}

/** The body of POST kyte/export (the fields with a default may be left out). */
export type IExportRequest = Pick<Schemas['ExportRequest'], 'path'> &
  Partial<Schemas['ExportRequest']>;

/** Result of a successful export (POST kyte/export). */
export type IExportResult = Schemas['ExportReply'];

/**
 * The whole-log search of a task log (GET .../logs?search=TEXT): every line holding the text,
 * case-insensitively, with its line number and byte offset.
 */
export type ILogSearch = Schemas['LogSearch'];

/**
 * The MIME type of the run summary that `%run_task`, `%run_dag` and `%%scenario` display next
 * to their HTML: the front end reads only this, never a Python repr.
 */
export const RUN_SUMMARY_MIME = 'application/vnd.kyte.run-summary+json';

/** One task instance of a run summary. */
export type IRunTaskInstance = Schemas['RunTaskInstance'];

/** What a run magic did (JSON under `RUN_SUMMARY_MIME`). */
export type IKyteRunSummary = Schemas['RunSummary'];

/** A recorded version of a DAG (GET …/dags/{dag_id}/versions). */
export type IDagVersion = Schemas['DagVersion'];

/** The graph of one version of a DAG (GET …/dags/{dag_id}/versions/{number}). */
export type IDagVersionGraph = Schemas['DagVersionGraph'];

/**
 * What changed between two versions of a DAG (GET …/dags/{dag_id}/diff?old=&new=): both
 * versions' graphs in one, each task and edge marked, as `%dag_diff` shows it.
 */
export type IDagVersionDiff = Schemas['DagVersionDiff'];

/** A task of a version diff, with how it changed (`added`, `removed`, `changed`, `unchanged`). */
export type IDiffNode = Schemas['DiffNode'];

/** An edge of a version diff, with how it changed. */
export type IDiffEdge = Schemas['DiffEdge'];

/** How a task differs between two versions. */
export type DiffChange = IDiffNode['change'];

/** Options of an export from the UI. */
export interface IExportOptions {
  /** Also write `test_<dag_id>.py` per DAG from the notebook's `%%scenario` cells. */
  tests?: boolean;
}

/** A publish target the operator configured (GET kyte/publish/targets). */
export type IPublishTarget = Schemas['PublishTarget'];

/** The body of POST kyte/publish: a dry run, or a publish of what was reviewed. */
export type IPublishRequest = Schemas['PublishRequest'];

/** One file of a publish: its status in the target, SHA-256 and diff. */
export type IPublishChange = Schemas['PublishChange'];

/** What a publish (or its dry run) reported (POST kyte/publish). */
export type IPublishReply = Schemas['PublishReply'];

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
  /** Search a whole task log for a text (case-insensitive). */
  searchLog(
    sessionId: string,
    dagId: string,
    runId: string,
    taskId: string,
    query: string,
    request?: ILogRequest,
    init?: RequestInit
  ): Promise<ILogSearch>;
  /** The session's audit log entries. */
  getAudit(sessionId: string): Promise<Record<string, unknown>[]>;
  /** Export a notebook's DAGs to DAG files; rejects with a `KyteRequestError` on problems. */
  exportNotebook(
    notebookPath: string,
    dagId?: string,
    options?: IExportOptions
  ): Promise<IExportResult>;
  /** The recorded versions of a DAG, oldest first. */
  getVersions(sessionId: string, dagId: string): Promise<IDagVersion[]>;
  /** The graph of one version of a DAG. */
  getVersionGraph(
    sessionId: string,
    dagId: string,
    version: number
  ): Promise<IDagVersionGraph>;
  /**
   * What changed between two versions of a DAG (default: its last two); rejects with a 404
   * `KyteRequestError` when the DAG has fewer than two versions.
   */
  getVersionDiff(
    sessionId: string,
    dagId: string,
    versions?: { old?: number; new?: number }
  ): Promise<IDagVersionDiff>;
  /** The publish targets the operator configured. */
  getPublishTargets(): Promise<IPublishTarget[]>;
  /** Review (dry run) or publish; rejects with a `KyteRequestError` saying why not. */
  publish(request: IPublishRequest): Promise<IPublishReply>;
}

/**
 * The Kyte REST client, provided by the `kyte-jupyter:service` plugin.
 */
export const IKyteService = new Token<IKyteService>(
  'kyte-jupyter:IKyteService',
  'Client of the Kyte server extension REST API (sessions, DAGs, runs, logs, export).'
);

/** A task the user pointed at: clicked, selected, or right-clicked for the context menu. */
export interface ITaskRef {
  /** The DAG id. */
  dagId: string;
  /** The task id. */
  taskId: string;
}

/**
 * What the sidebar can show for the followed notebook: `ready` when it has DAGs, otherwise
 * why not (and what the user should do).
 */
export type KyteStatus =
  'no-notebook' | 'no-kernel' | 'no-session' | 'no-dag' | 'error' | 'ready';

/**
 * The Kyte model: the followed notebook, its session, its DAGs (polled), the shown DAG and the
 * selected task. The sidebar, the log viewer and the commands render it and act through it;
 * they hold no data of their own. Provided by the `kyte-jupyter:model` plugin.
 */
export interface IKyteModel {
  /** The notebook followed (the active one), or null. */
  readonly notebook: NotebookPanel | null;
  /** The followed notebook's Kyte session, once its kernel made one. */
  readonly session: ISession | null;
  /** All DAGs of the session, as last read. */
  readonly dags: IDagInfo[];
  /** The DAG shown: the one selected for this notebook, else the first. */
  readonly currentDag: IDagInfo | null;
  /** The selected task (its log is open), or null. */
  readonly selectedTask: ITaskRef | null;
  /** The task last right-clicked: what the context-menu commands act on. */
  contextTask: ITaskRef | null;
  /** What can be shown, and why not. */
  readonly status: KyteStatus;
  /** The error message when `status` is `error`. */
  readonly error: string;
  /** Emitted when the followed notebook changes (or is renamed). */
  readonly notebookChanged: ISignal<IKyteModel, NotebookPanel | null>;
  /** Emitted after each poll that read the DAGs. */
  readonly dagsChanged: ISignal<IKyteModel, IDagInfo[]>;
  /** Emitted when `status` or `error` changes. */
  readonly statusChanged: ISignal<IKyteModel, KyteStatus>;
  /** Emitted when the shown DAG or the selected task changes. */
  readonly selectionChanged: ISignal<IKyteModel, void>;
  /**
   * Emitted when what the commands act on changes: the notebook, its kernel, its session or
   * the shown DAG (their enabled state may have changed).
   */
  readonly contextChanged: ISignal<IKyteModel, void>;
  /** Follow another notebook (or none). */
  setNotebook(notebook: NotebookPanel | null): void;
  /** Show another DAG of the session. */
  selectDag(dagId: string): void;
  /** Select a task (or none). */
  selectTask(ref: ITaskRef | null): void;
  /** Read the DAGs now. */
  refresh(): Promise<void>;
  /**
   * The past run shown for a DAG, or null when its latest run is shown (live). While a run
   * is picked, the DAG in `dags` is that run's view: its graph as of the run's DAG version,
   * the run's task states, and the run as `latest_run` (so logs open that run's).
   */
  pinnedRun(dagId: string): IDagRun | null;
  /** Show a past run of a DAG (null: its latest run again); a newer run unpins it. */
  pinRun(dagId: string, run: IDagRun | null): void;
}

/** The Kyte model, provided by the `kyte-jupyter:model` plugin. */
export const IKyteModel = new Token<IKyteModel>(
  'kyte-jupyter:IKyteModel',
  'The followed notebook, its Kyte session and DAGs (polled), the shown DAG and task.'
);
