/**
 * "Compare versions" in the sidebar (issue 19): pick two versions of the shown DAG (the last
 * two by default, as `%dag_diff DAG_ID`) and the graph shows what changed between them —
 * tasks and edges added, removed and changed, coloured — with the changes listed below and the
 * code diff one click away. Data from GET …/dags/{dag_id}/versions and …/diff.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { diffHeadline, diffSummaryLines } from './diffmodel';
import type {
  IDagVersion,
  IDagVersionDiff,
  IKyteModel,
  IKyteService
} from './tokens';

/**
 * The version comparison bar: a toggle, the two versions, and the changes in text.
 */
export class VersionDiffBar extends Widget {
  constructor(options: VersionDiffBar.IOptions) {
    super();
    this._model = options.model;
    this._service = options.service;
    const trans = (this._trans = options.trans);
    this.addClass('jp-kyte-VersionDiff');
    this.hide(); // until the shown DAG has two versions

    const row = document.createElement('div');
    row.className = 'jp-kyte-VersionDiff-row';
    this._toggle = document.createElement('button');
    this._toggle.className = 'jp-kyte-VersionDiff-toggle jp-mod-styled';
    this._toggle.setAttribute('aria-pressed', 'false');
    this._toggle.textContent = trans.__('Compare versions');
    this._toggle.title = trans.__(
      'Show what changed between two versions of this DAG in the graph (as %1)',
      '%dag_diff'
    );
    this._toggle.addEventListener('click', () => this.setActive(!this._active));
    this._old = this._select(trans.__('Older version'));
    this._new = this._select(trans.__('Newer version'));
    this._pickers = document.createElement('span');
    this._pickers.className = 'jp-kyte-VersionDiff-pickers';
    this._pickers.append(
      this._old,
      document.createTextNode(' \u2192 '),
      this._new
    );
    row.append(this._toggle, this._pickers);

    this._summary = document.createElement('div');
    this._summary.className = 'jp-kyte-VersionDiff-summary';
    this._summary.setAttribute('role', 'status');
    this.node.append(row, this._summary);
    this._render();

    this._model.dagsChanged.connect(this._onDagsChanged, this);
    this._model.selectionChanged.connect(this._onDagsChanged, this);
    this._model.notebookChanged.connect(this._onNotebookChanged, this);
  }

  /** Emitted when the diff to draw changes: a diff, or null to draw the DAG again. */
  get diffChanged(): ISignal<this, IDagVersionDiff | null> {
    return this._diffChanged;
  }

  /** The diff shown, or null. */
  get diff(): IDagVersionDiff | null {
    return this._diff;
  }

  /** Whether the comparison is on. */
  get active(): boolean {
    return this._active;
  }

  /** The shown DAG's versions, oldest first. */
  get versions(): readonly IDagVersion[] {
    return this._versions;
  }

  /** Turn the comparison on (the last two versions unless two were picked) or off. */
  setActive(active: boolean): void {
    if (active === this._active) {
      return;
    }
    this._active = active;
    this._render();
    if (active) {
      void this._loadDiff();
    } else {
      this._setDiff(null);
    }
  }

  private _select(label: string): HTMLSelectElement {
    const select = document.createElement('select');
    select.className = 'jp-kyte-VersionDiff-select jp-mod-styled';
    select.setAttribute('aria-label', label);
    select.addEventListener('change', () => {
      this._picked = true;
      void this._loadDiff();
    });
    return select;
  }

  private _onNotebookChanged(): void {
    this._key = '';
    this._versions = [];
    this._picked = false;
    this._active = false;
    this._setDiff(null);
    this._render();
  }

  private _onDagsChanged(): void {
    const dag = this._model.currentDag;
    const session = this._model.session;
    // The versions change when the DAG is redefined (its snapshot is rewritten).
    const key = [
      session?.id ?? '',
      dag?.dag_id ?? '',
      dag?.updated ?? '',
      dag?.nodes.length ?? 0
    ].join('\u0000');
    if (key === this._key) {
      if (this.isHidden && dag && this._versions.length >= 2) {
        this._render(); // shown again after an empty state hid it
      }
      return;
    }
    const otherDag = this._key.split('\u0000')[1] !== (dag?.dag_id ?? '');
    this._key = key;
    if (otherDag) {
      this._picked = false;
      this._active = false;
      this._setDiff(null);
    }
    void this._loadVersions();
  }

  private async _loadVersions(): Promise<void> {
    const dag = this._model.currentDag;
    const session = this._model.session;
    const generation = ++this._versionsGeneration;
    let versions: IDagVersion[] = [];
    if (dag && session) {
      try {
        versions = await this._service.getVersions(session.id, dag.dag_id);
      } catch {
        versions = this._versions; // the sidebar says why the server is not answering
      }
    }
    if (generation !== this._versionsGeneration) {
      return;
    }
    const grew =
      versions.length !== this._versions.length ||
      versions.some((v, i) => v.number !== this._versions[i]?.number);
    this._versions = versions;
    if (versions.length < 2) {
      this._active = false;
      this._setDiff(null);
    }
    this._render();
    if (grew && this._active) {
      void this._loadDiff(); // a new version: compare the latest two again
    }
  }

  private async _loadDiff(): Promise<void> {
    const dag = this._model.currentDag;
    const session = this._model.session;
    if (!dag || !session || !this._active) {
      return;
    }
    const generation = ++this._generation;
    const versions: { old?: number; new?: number } = {};
    if (this._picked) {
      versions.old = Number(this._old.value);
      versions.new = Number(this._new.value);
    }
    if (versions.old !== undefined && versions.old === versions.new) {
      this._summary.replaceChildren(
        this._line(this._trans.__('Pick two different versions.'))
      );
      this._setDiff(null);
      return;
    }
    let diff: IDagVersionDiff | null = null;
    let error = '';
    try {
      diff = await this._service.getVersionDiff(
        session.id,
        dag.dag_id,
        versions
      );
    } catch (e) {
      error = (e as Error).message;
    }
    if (generation !== this._generation || !this._active) {
      return;
    }
    this._setDiff(diff);
    if (error) {
      this._summary.replaceChildren(this._line(error));
    }
  }

  private _setDiff(diff: IDagVersionDiff | null): void {
    if (diff === this._diff) {
      return;
    }
    this._diff = diff;
    this._renderSummary();
    this._diffChanged.emit(diff);
  }

  private _render(): void {
    const dag = this._model.currentDag;
    this.setHidden(!dag || this._versions.length < 2);
    this._toggle.setAttribute('aria-pressed', String(this._active));
    this._toggle.classList.toggle('jp-mod-active', this._active);
    this.node.classList.toggle('jp-mod-active', this._active);
    this._pickers.hidden = !this._active;
    const numbers = this._versions.map(v => v.number);
    for (const [select, fallback] of [
      [this._old, numbers[numbers.length - 2]],
      [this._new, numbers[numbers.length - 1]]
    ] as const) {
      const current = this._picked ? Number(select.value) : fallback;
      select.replaceChildren(
        ...numbers.map(n => {
          const o = document.createElement('option');
          o.value = String(n);
          o.textContent = `v${n}`;
          return o;
        })
      );
      select.value = String(numbers.includes(current) ? current : fallback);
    }
    if (!this._active) {
      this._summary.replaceChildren();
    }
  }

  private _renderSummary(): void {
    const diff = this._diff;
    if (!diff) {
      this._summary.replaceChildren();
      return;
    }
    if (!this._picked) {
      this._old.value = String(diff.old);
      this._new.value = String(diff.new);
    }
    const headline = this._line(diffHeadline(this._trans, diff));
    headline.classList.add('jp-kyte-VersionDiff-headline');
    const ul = document.createElement('ul');
    ul.className = 'jp-kyte-VersionDiff-changes';
    for (const text of diffSummaryLines(diff)) {
      const li = document.createElement('li');
      li.textContent = text;
      li.dataset.mark = text[0];
      ul.appendChild(li);
    }
    const parts: HTMLElement[] = [headline, ul];
    if (diff.code_diff) {
      const details = document.createElement('details');
      details.className = 'jp-kyte-VersionDiff-code';
      const summary = document.createElement('summary');
      summary.textContent = this._trans.__('Code diff');
      const pre = document.createElement('pre');
      for (const line of diff.code_diff.split('\n')) {
        const span = document.createElement('span');
        span.textContent = line + '\n';
        if (/^[+-](?![+-]{2} )/.test(line)) {
          span.dataset.mark = line[0];
        }
        pre.appendChild(span);
      }
      details.append(summary, pre);
      parts.push(details);
    }
    this._summary.replaceChildren(...parts);
  }

  private _line(text: string): HTMLElement {
    const p = document.createElement('div');
    p.textContent = text;
    return p;
  }

  private readonly _model: IKyteModel;
  private readonly _service: IKyteService;
  private readonly _trans: TranslationBundle;
  private readonly _toggle: HTMLButtonElement;
  private readonly _old: HTMLSelectElement;
  private readonly _new: HTMLSelectElement;
  private readonly _pickers: HTMLElement;
  private readonly _summary: HTMLElement;
  private readonly _diffChanged = new Signal<this, IDagVersionDiff | null>(
    this
  );
  private _versions: IDagVersion[] = [];
  private _diff: IDagVersionDiff | null = null;
  private _active = false;
  private _picked = false;
  private _key = '';
  private _generation = 0;
  private _versionsGeneration = 0;
}

/**
 * The VersionDiffBar statics.
 */
export namespace VersionDiffBar {
  /** Options to create the bar. */
  export interface IOptions {
    /** The Kyte model (the shown DAG). */
    model: IKyteModel;
    /** The REST client (versions and diffs). */
    service: IKyteService;
    /** The translation bundle. */
    trans: TranslationBundle;
  }
}
