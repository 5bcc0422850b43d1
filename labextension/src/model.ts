/**
 * The Kyte model (jupyterlab-git's `GitExtension` is the pattern): it follows the active
 * notebook, finds its Kyte session, polls its DAGs and holds the shown DAG and the selected
 * task. Widgets and commands subscribe to its signals; none of them owns this data.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { PinnedRuns } from './runview';
import {
  IDagInfo,
  IDagRun,
  IKyteModel,
  IKyteService,
  ISession,
  ITaskRef,
  KyteStatus
} from './tokens';

/** How often the DAGs are read while the sidebar or a log is shown (ms). */
export const POLL_INTERVAL = 500;

/**
 * The Kyte model.
 */
export class KyteModel implements IKyteModel {
  constructor(options: KyteModel.IOptions) {
    this._service = options.service;
    this._pins = new PinnedRuns(options.service);
    const standby = options.standby;
    this._poll = new Poll({
      auto: false,
      factory: () => this._tick(),
      frequency: { interval: POLL_INTERVAL, backoff: false, max: 5000 },
      name: 'kyte:dags',
      standby: () =>
        (typeof document !== 'undefined' &&
          document.visibilityState === 'hidden') ||
        (standby ? standby() : false)
    });
    void this._poll.start();
  }

  get notebook(): NotebookPanel | null {
    return this._notebook;
  }

  get session(): ISession | null {
    return this._session;
  }

  get dags(): IDagInfo[] {
    return this._dags;
  }

  get currentDag(): IDagInfo | null {
    const id = this._notebookPath
      ? this._selectedDag.get(this._notebookPath)
      : undefined;
    return this._dags.find(d => d.dag_id === id) ?? this._dags[0] ?? null;
  }

  get selectedTask(): ITaskRef | null {
    return this._selectedTask;
  }

  get contextTask(): ITaskRef | null {
    return this._contextTask;
  }
  set contextTask(ref: ITaskRef | null) {
    this._contextTask = ref;
  }

  get status(): KyteStatus {
    return this._status;
  }

  get error(): string {
    return this._error;
  }

  get notebookChanged(): ISignal<IKyteModel, NotebookPanel | null> {
    return this._notebookChanged;
  }

  get dagsChanged(): ISignal<IKyteModel, IDagInfo[]> {
    return this._dagsChanged;
  }

  get statusChanged(): ISignal<IKyteModel, KyteStatus> {
    return this._statusChanged;
  }

  get selectionChanged(): ISignal<IKyteModel, void> {
    return this._selectionChanged;
  }

  get contextChanged(): ISignal<IKyteModel, void> {
    return this._contextChanged;
  }

  /** Whether the model is disposed. */
  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  setNotebook(notebook: NotebookPanel | null): void {
    if (notebook === this._notebook) {
      return;
    }
    if (this._notebook) {
      this._notebook.context.pathChanged.disconnect(this._reset, this);
      this._notebook.sessionContext.kernelChanged.disconnect(
        this._onKernelChanged,
        this
      );
      this._notebook.sessionContext.sessionChanged.disconnect(
        this._onKernelChanged,
        this
      );
    }
    this._notebook = notebook;
    if (notebook) {
      notebook.context.pathChanged.connect(this._reset, this);
      notebook.sessionContext.kernelChanged.connect(
        this._onKernelChanged,
        this
      );
      notebook.sessionContext.sessionChanged.connect(
        this._onKernelChanged,
        this
      );
    }
    this._reset();
  }

  selectDag(dagId: string): void {
    if (!this._notebookPath || this.currentDag?.dag_id === dagId) {
      return;
    }
    this._selectedDag.set(this._notebookPath, dagId);
    this._selectedTask = null;
    this._selectionChanged.emit();
    this._checkContext();
  }

  selectTask(ref: ITaskRef | null): void {
    const same =
      ref?.dagId === this._selectedTask?.dagId &&
      ref?.taskId === this._selectedTask?.taskId;
    if (same) {
      return;
    }
    this._selectedTask = ref ? { ...ref } : null;
    this._selectionChanged.emit();
  }

  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  pinnedRun(dagId: string): IDagRun | null {
    return this._pins.get(dagId)?.run ?? null;
  }

  pinRun(dagId: string, run: IDagRun | null): void {
    const latest = this._latestRunIds.get(dagId) ?? null;
    this._pins.set(dagId, run, latest);
    this._selectedTask = null;
    this._selectionChanged.emit();
    void this._poll.refresh();
  }

  /** Stop polling and disconnect. */
  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.setNotebook(null);
    this._poll.dispose();
    Signal.clearData(this);
  }

  private _onKernelChanged(): void {
    this._checkContext();
    // A new kernel makes (or finds) the notebook's Kyte session: look for it now.
    void this._poll.refresh();
  }

  /** Emit `contextChanged` when the notebook, kernel, session or shown DAG changed. */
  private _checkContext(): void {
    const key = [
      this._notebook?.id ?? '',
      this._notebook?.sessionContext.session?.id ?? '',
      this._notebook?.sessionContext.session?.kernel?.id ?? '',
      this._session?.id ?? '',
      this.currentDag?.dag_id ?? ''
    ].join('\u0000');
    if (key !== this._contextKey) {
      this._contextKey = key;
      this._contextChanged.emit();
    }
  }

  private _setStatus(status: KyteStatus, error = ''): void {
    if (status === this._status && error === this._error) {
      return;
    }
    this._status = status;
    this._error = error;
    this._statusChanged.emit(status);
  }

  private _reset(): void {
    this._generation++;
    this._session = null;
    this._dags = [];
    this._pins.clear();
    this._lastLookup = 0;
    this._selectedTask = null;
    this._contextTask = null;
    this._notebookPath = this._notebook
      ? this._notebook.context.localPath
      : null;
    this._notebookChanged.emit(this._notebook);
    this._setStatus(this._notebook ? 'no-session' : 'no-notebook');
    this._checkContext();
    void this._poll.refresh();
  }

  private _hasKernel(): boolean {
    return !!this._notebook?.sessionContext.session?.kernel;
  }

  private async _tick(): Promise<void> {
    const notebook = this._notebook;
    const generation = this._generation;
    if (!notebook) {
      this._setStatus('no-notebook');
      return;
    }
    if (!this._session) {
      // Ask for the session at most once a second until the kernel has made one.
      const now = Date.now();
      if (now - this._lastLookup < 1000) {
        return;
      }
      this._lastLookup = now;
      let session: ISession | null;
      try {
        session = await this._service.findSession(notebook.context.localPath);
      } catch (error) {
        if (generation === this._generation) {
          this._setStatus('error', (error as Error).message);
        }
        return;
      }
      if (generation !== this._generation) {
        return;
      }
      if (!session) {
        this._setStatus(this._hasKernel() ? 'no-session' : 'no-kernel');
        return;
      }
      this._session = session;
      this._checkContext();
    }
    let dags: IDagInfo[];
    try {
      dags = await this._service.getDags(this._session.id);
    } catch (error) {
      if (generation !== this._generation) {
        return;
      }
      if ((error as { response?: Response }).response?.status === 404) {
        // The session went away (deleted, or the notebook renamed): look it up again.
        this._session = null;
        this._checkContext();
        return;
      }
      this._setStatus('error', (error as Error).message);
      return;
    }
    if (generation !== this._generation) {
      return;
    }
    this._latestRunIds = new Map(
      dags.map(d => [d.dag_id, d.latest_run?.run_id ?? null])
    );
    try {
      // A DAG whose past run is picked shows that run (graph as of its version, its states).
      dags = await this._pins.apply(this._session.id, dags);
    } catch (error) {
      if (generation === this._generation) {
        this._setStatus('error', (error as Error).message);
      }
      return;
    }
    if (generation !== this._generation) {
      return;
    }
    const before = this.currentDag?.dag_id;
    this._dags = dags;
    this._setStatus(dags.length ? 'ready' : 'no-dag');
    this._dagsChanged.emit(dags);
    if (this.currentDag?.dag_id !== before) {
      this._selectionChanged.emit();
    }
    this._checkContext();
  }

  private readonly _service: IKyteService;
  private readonly _poll: Poll;
  private readonly _pins: PinnedRuns;
  private _latestRunIds = new Map<string, string | null>();
  private readonly _selectedDag = new Map<string, string>();
  private readonly _notebookChanged = new Signal<
    IKyteModel,
    NotebookPanel | null
  >(this);
  private readonly _dagsChanged = new Signal<IKyteModel, IDagInfo[]>(this);
  private readonly _statusChanged = new Signal<IKyteModel, KyteStatus>(this);
  private readonly _selectionChanged = new Signal<IKyteModel, void>(this);
  private readonly _contextChanged = new Signal<IKyteModel, void>(this);
  private _notebook: NotebookPanel | null = null;
  private _notebookPath: string | null = null;
  private _session: ISession | null = null;
  private _dags: IDagInfo[] = [];
  private _selectedTask: ITaskRef | null = null;
  private _contextTask: ITaskRef | null = null;
  private _status: KyteStatus = 'no-notebook';
  private _error = '';
  private _contextKey = '';
  private _lastLookup = 0;
  private _generation = 0;
}

/**
 * The KyteModel statics.
 */
export namespace KyteModel {
  /** Options to create a model. */
  export interface IOptions {
    /** The REST client. */
    service: IKyteService;
    /**
     * Whether polling may pause (e.g. nothing that shows the DAGs is visible); polling also
     * pauses while the browser tab is hidden.
     */
    standby?: () => boolean;
  }
}
