/**
 * Runs layouts: small graphs at once on the main thread, large ones in a web worker (falling
 * back to the main thread where workers are unavailable).
 */
import { IDisposable } from '@lumino/disposable';

import { IGraphLayout, LayoutDirection, layoutGraph } from './layout';
import { IGraphModel } from './graphmodel';

/** Graphs with more boxes than this are laid out in the worker. */
export const WORKER_THRESHOLD = 150;

interface IPending {
  resolve: (layout: IGraphLayout) => void;
  reject: (error: Error) => void;
}

/**
 * Lays graph models out, in a worker for large graphs.
 */
export class LayoutRunner implements IDisposable {
  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Lay a graph model out. */
  run(
    model: IGraphModel,
    direction: LayoutDirection = 'LR'
  ): Promise<IGraphLayout> {
    if (model.nodes.length <= WORKER_THRESHOLD || !this._ensureWorker()) {
      return Promise.resolve(layoutGraph(model, direction));
    }
    const id = ++this._next;
    return new Promise<IGraphLayout>((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._worker!.postMessage({ id, model, direction });
    }).catch(error => {
      console.warn(
        'Kyte: layout worker failed, laying out on the main thread.',
        error
      );
      return layoutGraph(model, direction);
    });
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._worker?.terminate();
    this._worker = null;
    for (const p of this._pending.values()) {
      p.reject(new Error('disposed'));
    }
    this._pending.clear();
  }

  private _ensureWorker(): boolean {
    if (this._worker) {
      return true;
    }
    if (this._workerFailed || typeof Worker === 'undefined') {
      return false;
    }
    try {
      const worker = new Worker(new URL('./layout.worker.js', import.meta.url));
      worker.onmessage = (event: MessageEvent) => {
        const { id, layout, error } = event.data as {
          id: number;
          layout?: IGraphLayout;
          error?: string;
        };
        const pending = this._pending.get(id);
        this._pending.delete(id);
        if (!pending) {
          return;
        }
        if (layout) {
          pending.resolve(layout);
        } else {
          pending.reject(new Error(error ?? 'layout failed'));
        }
      };
      worker.onerror = event => {
        // The worker could not load (e.g. blocked by a content security policy).
        event.preventDefault();
        this._workerFailed = true;
        this._worker = null;
        worker.terminate();
        for (const p of this._pending.values()) {
          p.reject(new Error(event.message || 'layout worker error'));
        }
        this._pending.clear();
      };
      this._worker = worker;
      return true;
    } catch {
      this._workerFailed = true;
      return false;
    }
  }

  private _isDisposed = false;
  private _worker: Worker | null = null;
  private _workerFailed = false;
  private _next = 0;
  private _pending = new Map<number, IPending>();
}
