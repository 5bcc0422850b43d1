/**
 * The run selector of the sidebar: per DAG, the latest run (followed live) by default, or a
 * past run picked from a dropdown of runs with their DAG version (`v3`) and state. A past run
 * is shown as of its DAG version (GET …/versions/{n}) with that run's task states (GET
 * …/runs/{run_id}/tasks); the model puts that view in place of the DAG, so the graph, the
 * log viewer and the commands all follow the picked run.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { forcedList } from './forced';
import { runLabel } from './runview';
import type { IDagRun, IKyteModel, IKyteService } from './tokens';

export { PinnedRuns, dagAtRun, runLabel } from './runview';
export type { IPinnedRun } from './runview';

/** The value of the dropdown's first entry: the latest run, followed live. */
const LATEST = '';

/**
 * The dropdown of the shown DAG's runs, in the sidebar under the DAG's name.
 */
export class RunSelector extends Widget {
  constructor(options: RunSelector.IOptions) {
    super();
    this._model = options.model;
    this._service = options.service;
    this._trans = options.trans;
    this.addClass('jp-kyte-RunSelector');
    this.hide(); // until the shown DAG has runs
    const label = document.createElement('label');
    label.className = 'jp-kyte-RunSelector-label';
    label.textContent = this._trans.__('Run');
    this._select = document.createElement('select');
    this._select.className = 'jp-kyte-RunSelector-select jp-mod-styled';
    this._select.setAttribute(
      'aria-label',
      this._trans.__('Run shown in the graph')
    );
    this._select.title = this._trans.__(
      'Show a past run as of its DAG version, with its task states and logs'
    );
    label.appendChild(this._select);
    this.node.appendChild(label);
    this._select.addEventListener('change', this._onChange);
    // Runs are read again when the list is opened, so it is never stale.
    this._select.addEventListener('focus', () => void this._loadRuns());
    this._model.dagsChanged.connect(this._onDagsChanged, this);
    this._model.selectionChanged.connect(this._onDagsChanged, this);
    this._model.notebookChanged.connect(this._onNotebookChanged, this);
  }

  /** The runs listed for the shown DAG, newest first. */
  get runs(): readonly IDagRun[] {
    return this._runs;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._select.removeEventListener('change', this._onChange);
    super.dispose();
  }

  private _onNotebookChanged(): void {
    this._key = '';
    this._runs = [];
    this._render();
  }

  private _onDagsChanged(): void {
    const dag = this._model.currentDag;
    const session = this._model.session;
    const pinned = dag ? this._model.pinnedRun(dag.dag_id) : null;
    // The list changes when another DAG is shown or the DAG has a new or changed latest run.
    const key = [
      session?.id ?? '',
      dag?.dag_id ?? '',
      pinned ? '' : (dag?.latest_run?.run_id ?? ''),
      pinned ? '' : (dag?.latest_run?.state ?? '')
    ].join('\u0000');
    if (key !== this._key) {
      this._key = key;
      void this._loadRuns();
    } else {
      this._render();
    }
  }

  private async _loadRuns(): Promise<void> {
    const dag = this._model.currentDag;
    const session = this._model.session;
    if (!dag || !session) {
      this._runs = [];
      this._render();
      return;
    }
    const generation = ++this._generation;
    let runs: IDagRun[];
    try {
      runs = await this._service.getRuns(session.id, dag.dag_id);
    } catch {
      // The sidebar shows why the server is not answering; keep what was listed.
      runs = this._runs;
    }
    if (generation !== this._generation) {
      return;
    }
    this._runs = runs;
    this._render();
  }

  private _render(): void {
    const dag = this._model.currentDag;
    this.setHidden(!dag || !this._runs.length);
    if (!dag) {
      return;
    }
    const pinned = this._model.pinnedRun(dag.dag_id);
    const options = [this._option(LATEST, this._trans.__('Latest run (live)'))];
    const runs = [...this._runs];
    if (pinned && !runs.some(r => r.run_id === pinned.run_id)) {
      runs.push(pinned); // older than the runs listed: still show what is picked
    }
    for (const run of runs) {
      const o = this._option(run.run_id, runLabel(this._trans, run));
      o.dataset.state = run.state ?? 'none';
      o.dataset.version = String(run.dag_version ?? '');
      const forced = forcedList(run);
      if (forced.length) {
        o.dataset.forced = String(forced.length);
        o.title = this._trans.__(
          'What-if run; outcomes forced:\n%1',
          forced.join('\n')
        );
      }
      options.push(o);
    }
    this._select.replaceChildren(...options);
    this._select.value = pinned?.run_id ?? LATEST;
    this.node.classList.toggle('jp-mod-pinned', !!pinned);
  }

  private _option(value: string, text: string): HTMLOptionElement {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  }

  private _onChange = (): void => {
    const dag = this._model.currentDag;
    if (!dag) {
      return;
    }
    const run = this._runs.find(r => r.run_id === this._select.value) ?? null;
    this._model.pinRun(dag.dag_id, run);
  };

  private readonly _model: IKyteModel;
  private readonly _service: IKyteService;
  private readonly _trans: TranslationBundle;
  private readonly _select: HTMLSelectElement;
  private _runs: IDagRun[] = [];
  private _key = '';
  private _generation = 0;
}

/**
 * The RunSelector statics.
 */
export namespace RunSelector {
  /** Options to create a run selector. */
  export interface IOptions {
    /** The Kyte model (the shown DAG, and where the picked run goes). */
    model: IKyteModel;
    /** The REST client (the DAG's runs). */
    service: IKyteService;
    /** The translation bundle. */
    trans: TranslationBundle;
  }
}
