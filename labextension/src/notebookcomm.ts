/**
 * Tells a notebook's kernel which `%%dag` cells the notebook holds (comm `kyte.notebook`), so
 * the kernel drops the DAGs of deleted or rewritten cells: on open, and after each change
 * (debounced). The kernel answers with what it dropped, shown as a notification.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

/** The comm's target name in the kernel. */
export const COMM_TARGET = 'kyte.notebook';

/** How long the notebook must be still before the cell list is sent (ms). */
export const DEBOUNCE_MS = 500;

/** A `%%dag` cell as the kernel is told it. */
export interface IDagCell {
  /** The cell's id (nbformat 4.5 ids). */
  cell_id: string;
  /** The cell's source. */
  source: string;
}

/** The message sent to the kernel. */
export interface ICellsMessage {
  /** Always `cells`. */
  type: 'cells';
  /** Every code cell of the notebook starting with `%%dag`, run or not, in order. */
  cells: IDagCell[];
}

/** The kernel's answer. */
export interface IDroppedMessage {
  /** Always `dropped`. */
  type: 'dropped';
  /** The DAGs whose cells are gone. */
  dag_ids: string[];
  /** What the kernel did, in sentences. */
  messages: string[];
}

const DAG_CELL = /^\s*%%dag(\s|$)/;

/** The `%%dag` cells among a notebook's cells. */
export function dagCells(
  cells: Iterable<{ cell_type: string; id: string; source: string }>
): IDagCell[] {
  const out: IDagCell[] = [];
  for (const cell of cells) {
    if (cell.cell_type === 'code' && DAG_CELL.test(cell.source)) {
      out.push({ cell_id: cell.id, source: cell.source });
    }
  }
  return out;
}

/** The messages of a kernel's `dropped` answer, if it is one. */
export function droppedMessages(data: unknown): string[] {
  if (!data || typeof data !== 'object') {
    return [];
  }
  const d = data as Partial<IDroppedMessage>;
  if (d.type !== 'dropped' || !Array.isArray(d.messages)) {
    return [];
  }
  return d.messages.filter((m): m is string => typeof m === 'string');
}

/**
 * Keeps one notebook's kernel told of the notebook's `%%dag` cells.
 */
export class NotebookCellSync implements IDisposable {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _onMessages: (messages: string[]) => void
  ) {
    const ctx = _panel.sessionContext;
    ctx.kernelChanged.connect(this._onKernelChanged, this);
    ctx.statusChanged.connect(this._onStatusChanged, this);
    void ctx.ready.then(() => this._schedule());
    _panel.context.ready.then(() => {
      if (!this._isDisposed) {
        _panel.model?.contentChanged.connect(this._schedule, this);
        this._schedule();
      }
    });
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The cells last sent (for tests and debugging). */
  get lastSent(): IDagCell[] | null {
    return this._lastSent;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    window.clearTimeout(this._timer);
    this._closeComm();
    const ctx = this._panel.sessionContext;
    ctx.kernelChanged.disconnect(this._onKernelChanged, this);
    ctx.statusChanged.disconnect(this._onStatusChanged, this);
    this._panel.model?.contentChanged.disconnect(this._schedule, this);
  }

  private _onKernelChanged(): void {
    this._closeComm();
    this._schedule();
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      // A restarted kernel has forgotten the comm and the cells.
      this._closeComm();
    } else if (status === 'idle' && !this._comm) {
      this._schedule();
    }
  }

  private _schedule(): void {
    if (this._isDisposed) {
      return;
    }
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => this._send(), DEBOUNCE_MS);
  }

  private _send(): void {
    const kernel = this._panel.sessionContext.session?.kernel;
    const model = this._panel.model;
    if (this._isDisposed || !kernel || !model) {
      return;
    }
    const cells = dagCells(
      Array.from(model.cells, cell => ({
        cell_type: cell.type,
        id: cell.id,
        source: cell.sharedModel.getSource()
      }))
    );
    const key = JSON.stringify(cells);
    const message: ICellsMessage = { type: 'cells', cells };
    const data =
      message as unknown as KernelMessage.ICommOpenMsg['content']['data'];
    if (!this._comm || this._comm.isDisposed) {
      // A kernel without Kyte loaded closes the comm at once; try again now and then.
      if (Date.now() - this._lastOpen < 3000 && this._openFailed) {
        return;
      }
      this._lastOpen = Date.now();
      this._openFailed = false;
      try {
        const comm = kernel.createComm(COMM_TARGET);
        comm.onMsg = msg => {
          const messages = droppedMessages(msg.content.data);
          if (messages.length) {
            this._onMessages(messages);
          }
        };
        comm.onClose = () => {
          if (this._comm === comm) {
            this._comm = null;
            this._openFailed = true;
            this._sentKey = '';
          }
        };
        this._comm = comm;
        comm.open(data);
      } catch {
        this._comm = null;
        this._openFailed = true;
        return;
      }
    } else if (key !== this._sentKey) {
      this._comm.send(data);
    } else {
      return;
    }
    this._sentKey = key;
    this._lastSent = cells;
  }

  private _closeComm(): void {
    const comm = this._comm;
    this._comm = null;
    this._sentKey = '';
    this._openFailed = false;
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // The kernel is gone already.
      }
    }
  }

  private _isDisposed = false;
  private _comm: Kernel.IComm | null = null;
  private _timer = 0;
  private _sentKey = '';
  private _lastSent: IDagCell[] | null = null;
  private _lastOpen = 0;
  private _openFailed = false;
}
