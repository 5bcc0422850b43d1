/**
 * The Kyte sidebar: follows the active notebook and shows its session's DAGs, their graph
 * with live task states, and teaching empty states.
 */
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import {
  ITranslator,
  TranslationBundle,
  nullTranslator
} from '@jupyterlab/translation';
import {
  CommandToolbarButton,
  Toolbar,
  ToolbarButton
} from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, PanelLayout, Widget } from '@lumino/widgets';

import { GraphView, IGraphActivation } from './graphview';
import { fitIcon, kyteIcon, zoomInIcon, zoomOutIcon } from './icons';
import { WORKER_THRESHOLD, LayoutRunner } from './layoutrunner';
import {
  IGraphModel,
  LEGEND_STATES,
  NO_STATUS_COLOR,
  buildGraphModel,
  stateColor
} from './model';
import { CommandIDs, IDagInfo, IKyteService, ISession } from './tokens';

/** DAGs with more tasks than this open with their task groups collapsed. */
export const COLLAPSE_GROUPS_ABOVE = 200;

/** The example shown when a notebook has no DAG yet. */
export const DAG_EXAMPLE = `%%dag
from datetime import datetime

from airflow.sdk import DAG, task

with DAG("hello", start_date=datetime(2025, 1, 1), schedule=None):

    @task
    def extract():
        return [1, 2, 3]

    @task
    def total(values):
        print("total:", sum(values))

    total(extract())`;

/** A task the user pointed at: clicked, or right-clicked for the context menu. */
export interface ITaskRef {
  /** The DAG id. */
  dagId: string;
  /** The task id. */
  taskId: string;
}

/** Timings of the last graph shown, in milliseconds. */
export interface IPanelTimings {
  /** Tasks in the DAG. */
  tasks: number;
  /** Boxes drawn. */
  nodes: number;
  /** dagre layout. */
  layoutMs: number;
  /** Building the SVG and the browser's style and layout of it. */
  renderMs: number;
  /** From the data at hand to the next painted frame (model + layout + render + paint). */
  totalMs: number;
}

type EmptyKind =
  'no-notebook' | 'no-kernel' | 'no-session' | 'no-dag' | 'error';

/**
 * The sidebar panel.
 */
export class KytePanel extends Widget {
  constructor(options: KytePanel.IOptions) {
    super();
    this._service = options.service;
    this._commands = options.commands;
    const trans = (this._trans = (options.translator ?? nullTranslator).load(
      'kyte_jupyter'
    ));
    this.id = 'kyte-sidebar';
    this.addClass('jp-kyte-Panel');
    this.title.icon = kyteIcon;
    this.title.caption = trans.__('Kyte: DAGs of this notebook');

    const layout = (this.layout = new PanelLayout());

    // The header: the DAG's name (or a selector) and the toolbar. A flex row that wraps, so
    // that when both do not fit the toolbar moves to a line of its own instead of spilling
    // over the summary below.
    this._header = new Panel();
    this._header.addClass('jp-kyte-Panel-header');
    this._toolbar = new Toolbar();
    this._toolbar.addClass('jp-kyte-Panel-toolbar');
    const titleNode = document.createElement('div');
    titleNode.className = 'jp-kyte-Panel-title';
    this._dagTitle = document.createElement('span');
    this._dagTitle.className = 'jp-kyte-Panel-dagTitle';
    this._dagSelect = document.createElement('select');
    this._dagSelect.className = 'jp-kyte-Panel-dagSelect jp-mod-styled';
    this._dagSelect.setAttribute('aria-label', trans.__('DAG'));
    this._dagSelect.hidden = true;
    this._dagSelect.addEventListener('change', () => {
      if (this._notebookPath) {
        this._selectedDag.set(this._notebookPath, this._dagSelect.value);
      }
      this._structureKey = '';
      const dag = this.currentDag;
      if (dag) {
        void this._showDag(dag, false);
      }
      this._checkContext();
    });
    titleNode.append(this._dagTitle, this._dagSelect);
    this._header.addWidget(new Widget({ node: titleNode }));
    this._toolbar.addItem(
      'run-dag',
      new CommandToolbarButton({
        commands: this._commands,
        id: CommandIDs.runDag,
        label: ''
      })
    );
    this._toolbar.addItem(
      'zoom-in',
      new ToolbarButton({
        icon: zoomInIcon,
        tooltip: trans.__('Zoom in (+)'),
        onClick: () => this._graph.zoomBy(1.25)
      })
    );
    this._toolbar.addItem(
      'zoom-out',
      new ToolbarButton({
        icon: zoomOutIcon,
        tooltip: trans.__('Zoom out (-)'),
        onClick: () => this._graph.zoomBy(0.8)
      })
    );
    this._toolbar.addItem(
      'fit',
      new ToolbarButton({
        icon: fitIcon,
        tooltip: trans.__('Fit the graph (0, or double-click the background)'),
        onClick: () => this._graph.fit()
      })
    );
    this._toolbar.addItem(
      'export',
      new CommandToolbarButton({
        commands: this._commands,
        id: CommandIDs.exportDag,
        label: ''
      })
    );
    this._header.addWidget(this._toolbar);
    layout.addWidget(this._header);

    this._info = new Widget();
    this._info.addClass('jp-kyte-Panel-info');
    layout.addWidget(this._info);

    this._empty = new Widget();
    this._empty.addClass('jp-kyte-Panel-empty');
    layout.addWidget(this._empty);

    this._graph = new GraphView();
    this._graph.activated.connect(this._onActivated, this);
    this._graph.node.addEventListener('contextmenu', this._onContextMenu, true);
    layout.addWidget(this._graph);

    this._legend = new Widget();
    this._legend.addClass('jp-kyte-Panel-legend');
    this._buildLegend();
    layout.addWidget(this._legend);

    this._poll = new Poll({
      auto: false,
      factory: () => this._tick(),
      frequency: { interval: 500, backoff: false, max: 5000 },
      name: 'kyte:dags',
      standby: () => !this.isVisible || document.visibilityState === 'hidden'
    });
    this._showEmpty('no-notebook');
  }

  /** Emitted when a task is clicked (open its log). */
  get taskActivated(): ISignal<this, ITaskRef> {
    return this._taskActivated;
  }

  /** Emitted after each poll that read the DAGs. */
  get dagsChanged(): ISignal<this, IDagInfo[]> {
    return this._dagsChanged;
  }

  /**
   * Emitted when what the panel's commands act on changes: the followed notebook, its kernel,
   * its Kyte session or the DAG shown (the commands' enabled state may have changed).
   */
  get contextChanged(): ISignal<this, void> {
    return this._contextChanged;
  }

  /** The notebook followed. */
  get notebook(): NotebookPanel | null {
    return this._notebook;
  }

  /** The followed notebook's Kyte session, once it has one. */
  get session(): ISession | null {
    return this._session;
  }

  /** All DAGs of the session, as last read. */
  get dags(): IDagInfo[] {
    return this._dags;
  }

  /** The DAG shown. */
  get currentDag(): IDagInfo | null {
    const id = this._notebookPath
      ? this._selectedDag.get(this._notebookPath)
      : undefined;
    return this._dags.find(d => d.dag_id === id) ?? this._dags[0] ?? null;
  }

  /** The graph widget. */
  get graph(): GraphView {
    return this._graph;
  }

  /** Timings of the last graph drawn. */
  get timings(): IPanelTimings | null {
    return this._timings;
  }

  /** The task last right-clicked (what the context-menu commands act on). */
  get contextTask(): ITaskRef | null {
    return this._contextTask;
  }

  /**
   * Follow another notebook (or none).
   */
  setNotebook(notebook: NotebookPanel | null): void {
    if (notebook === this._notebook) {
      return;
    }
    if (this._notebook) {
      this._notebook.context.pathChanged.disconnect(this._onPathChanged, this);
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
      notebook.context.pathChanged.connect(this._onPathChanged, this);
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

  /** Read the DAGs now. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /** Fit the graph into the panel. */
  fit(): void {
    this._graph.fit();
  }

  /** Expand or collapse a task group of the shown DAG. */
  toggleGroup(groupId: string): void {
    const dag = this.currentDag;
    if (!dag) {
      return;
    }
    const collapsed = this._collapsedFor(dag);
    if (collapsed.has(groupId)) {
      collapsed.delete(groupId);
    } else {
      collapsed.add(groupId);
    }
    void this._showDag(dag, true);
  }

  /** Expand (or collapse) every task group of the shown DAG. */
  setAllGroups(collapse: boolean): void {
    const dag = this.currentDag;
    if (!dag) {
      return;
    }
    const collapsed = this._collapsedFor(dag);
    collapsed.clear();
    if (collapse) {
      for (const g of dag.task_groups) {
        collapsed.add(g.group_id);
      }
    }
    void this._showDag(dag, true);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    this._runner.dispose();
    super.dispose();
  }

  protected onAfterAttach(): void {
    void this._poll.start();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  private _onPathChanged(): void {
    this._reset();
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

  private _reset(): void {
    this._generation++;
    this._session = null;
    this._dags = [];
    this._structureKey = '';
    this._lastLookup = 0;
    this._notebookPath = this._notebook
      ? this._notebook.context.localPath
      : null;
    this._graph.clear();
    this._dagSelect.hidden = true;
    this._dagTitle.textContent = '';
    this._info.node.replaceChildren();
    this._infoKey = '';
    this._selectorKey = '';
    this._showEmpty(this._notebook ? 'no-session' : 'no-notebook');
    this._checkContext();
    void this._poll.refresh();
  }

  private async _tick(): Promise<void> {
    const notebook = this._notebook;
    const generation = this._generation;
    if (!notebook) {
      this._showEmpty('no-notebook');
      return;
    }
    const path = notebook.context.localPath;
    if (!this._session) {
      // Ask for the session at most once a second until the kernel has made one.
      const now = Date.now();
      if (now - this._lastLookup < 1000) {
        return;
      }
      this._lastLookup = now;
      let session: ISession | null;
      try {
        session = await this._service.findSession(path);
      } catch (error) {
        if (generation === this._generation) {
          this._showEmpty('error', (error as Error).message);
        }
        return;
      }
      if (generation !== this._generation) {
        return;
      }
      if (!session) {
        this._showEmpty(
          notebook.sessionContext.session?.kernel ? 'no-session' : 'no-kernel'
        );
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
      this._showEmpty('error', (error as Error).message);
      return;
    }
    if (generation !== this._generation) {
      return;
    }
    this._dags = dags;
    this._dagsChanged.emit(dags);
    this._checkContext();
    if (dags.length === 0) {
      this._structureKey = '';
      this._graph.clear();
      this._showEmpty('no-dag');
      return;
    }
    this._updateSelector();
    await this._showDag(this.currentDag!, true);
  }

  /**
   * Draw a DAG: re-layout when its structure changed, otherwise only recolour.
   */
  private async _showDag(dag: IDagInfo, keepView: boolean): Promise<void> {
    const generation = this._generation;
    const t0 = performance.now();
    const model = buildGraphModel(dag, this._collapsedFor(dag));
    this._hideEmpty();
    this._updateInfo(dag);
    if (model.structureKey === this._structureKey) {
      this._graph.updateStates(model);
      return;
    }
    const sameDag = this._shownDagId === dag.dag_id;
    this._structureKey = model.structureKey;
    if (model.nodes.length > WORKER_THRESHOLD) {
      this.node.classList.add('jp-mod-layingOut');
    }
    let layout;
    try {
      layout = await this._runner.run(model);
    } finally {
      this.node.classList.remove('jp-mod-layingOut');
    }
    if (
      generation !== this._generation ||
      this._structureKey !== model.structureKey
    ) {
      return;
    }
    this._shownDagId = dag.dag_id;
    // The freshest states may have arrived while laying out.
    const fresh = this._dags.find(d => d.dag_id === dag.dag_id);
    const latest: IGraphModel =
      fresh && fresh !== dag
        ? buildGraphModel(fresh, this._collapsedFor(fresh))
        : model;
    const renderMs = this._graph.render(
      latest.structureKey === model.structureKey ? latest : model,
      layout,
      keepView && sameDag
    );
    requestAnimationFrame(() => {
      const totalMs = performance.now() - t0;
      this._timings = {
        tasks: dag.nodes.length,
        nodes: model.nodes.length,
        layoutMs: layout.elapsedMs,
        renderMs,
        totalMs
      };
      this.node.dataset.totalMs = totalMs.toFixed(1);
      this.node.dataset.layoutMs = layout.elapsedMs.toFixed(1);
      this.node.dataset.renderMs = renderMs.toFixed(1);
      this.node.dataset.tasks = String(dag.nodes.length);
    });
  }

  private _collapsedFor(dag: IDagInfo): Set<string> {
    const key = `${this._session?.id ?? ''}/${dag.dag_id}`;
    let set = this._collapsed.get(key);
    if (!set) {
      set = new Set(
        dag.nodes.length > COLLAPSE_GROUPS_ABOVE
          ? dag.task_groups.map(g => g.group_id)
          : []
      );
      this._collapsed.set(key, set);
    }
    return set;
  }

  private _updateSelector(): void {
    const ids = this._dags.map(d => d.dag_id);
    const key = ids.join('\u0000');
    const current = this.currentDag;
    if (key !== this._selectorKey) {
      this._selectorKey = key;
      this._dagSelect.replaceChildren(
        ...this._dags.map(d => {
          const o = document.createElement('option');
          o.value = d.dag_id;
          o.textContent = this._trans._n(
            '%2 (%1 task)',
            '%2 (%1 tasks)',
            d.nodes.length,
            d.dag_id
          );
          return o;
        })
      );
    }
    this._dagSelect.hidden = ids.length < 2;
    this._dagTitle.hidden = ids.length >= 2;
    if (current) {
      this._dagSelect.value = current.dag_id;
      this._dagTitle.textContent = current.dag_id;
      this._dagTitle.title = current.description ?? current.dag_id;
    }
  }

  private _updateInfo(dag: IDagInfo): void {
    const run = dag.latest_run;
    const key = `${dag.dag_id}|${run?.run_id ?? ''}|${run?.state ?? ''}|${dag.nodes.length}`;
    if (key === this._infoKey) {
      return;
    }
    this._infoKey = key;
    const parts: Node[] = [];
    const line = document.createElement('div');
    line.className = 'jp-kyte-Panel-run';
    if (run) {
      line.dataset.state = run.state ?? 'none';
      const dot = document.createElement('span');
      dot.className = 'jp-kyte-Panel-runState';
      dot.style.setProperty('--jp-kyte-state-color', stateColor(run.state));
      dot.textContent = run.state ?? this._trans.__('no status');
      const id = document.createElement('span');
      id.className = 'jp-kyte-Panel-runId';
      id.textContent = run.run_id;
      id.title = run.run_id;
      line.append(
        document.createTextNode(this._trans.__('Latest run:') + ' '),
        dot,
        document.createTextNode(' '),
        id
      );
    } else {
      line.textContent = this._trans.__(
        'Not run yet. Run it: %run_dag %1',
        dag.dag_id
      );
    }
    parts.push(line);
    const counts = document.createElement('div');
    counts.className = 'jp-kyte-Panel-counts';
    const groups = dag.task_groups.length;
    counts.textContent =
      this._trans._n('%1 task', '%1 tasks', dag.nodes.length) +
      (groups ? ', ' + this._trans._n('%1 group', '%1 groups', groups) : '') +
      (dag.schedule
        ? ' \u00B7 ' + this._trans.__('schedule %1', dag.schedule)
        : '');
    if (groups) {
      const expand = document.createElement('button');
      expand.className = 'jp-kyte-Panel-link';
      expand.textContent = this._trans.__('expand all');
      expand.onclick = () => this.setAllGroups(false);
      const collapse = document.createElement('button');
      collapse.className = 'jp-kyte-Panel-link';
      collapse.textContent = this._trans.__('collapse all');
      collapse.onclick = () => this.setAllGroups(true);
      counts.append(
        document.createTextNode(' \u00B7 '),
        expand,
        document.createTextNode(' / '),
        collapse
      );
    }
    parts.push(counts);
    this._info.node.replaceChildren(...parts);
  }

  private _buildLegend(): void {
    const items: Node[] = [];
    const add = (state: string, color: string): void => {
      const item = document.createElement('span');
      item.className = 'jp-kyte-Panel-legendItem';
      item.dataset.state = state;
      const swatch = document.createElement('span');
      swatch.className = 'jp-kyte-Panel-swatch';
      swatch.style.setProperty('--jp-kyte-state-color', color);
      item.append(swatch, document.createTextNode(state.replace(/_/g, ' ')));
      items.push(item);
    };
    for (const state of LEGEND_STATES) {
      add(state, stateColor(state));
    }
    add('no status', NO_STATUS_COLOR);
    this._legend.node.replaceChildren(...items);
    this._legend.node.setAttribute(
      'aria-label',
      this._trans.__('Task state colours')
    );
  }

  private _showEmpty(kind: EmptyKind, detail = ''): void {
    const key = `${kind}|${detail}|${!!this._notebook?.sessionContext.session?.kernel}`;
    if (key === this._emptyKey && !this._empty.isHidden) {
      return;
    }
    this._emptyKey = key;
    const node = this._empty.node;
    const trans = this._trans;
    node.dataset.kind = kind;
    const h = document.createElement('h3');
    const p = document.createElement('p');
    const extra: Node[] = [];
    switch (kind) {
      case 'no-notebook':
        h.textContent = trans.__('No notebook');
        p.textContent = trans.__(
          'Open or create a notebook: Kyte shows the Airflow DAGs defined in the active notebook, with their task states and logs. Every notebook has its own private Airflow.'
        );
        break;
      case 'no-kernel':
        h.textContent = trans.__('No kernel');
        p.textContent = trans.__(
          'Start the notebook\u2019s kernel (Kernel \u203A Restart Kernel, or run a cell). Kyte gives it its own Airflow; then define a DAG in a %1 cell.',
          '%%dag'
        );
        break;
      case 'no-session':
      case 'no-dag':
        h.textContent = trans.__('No DAG yet');
        p.textContent =
          trans.__(
            'Define a DAG in a code cell that starts with %1 (ordinary DAG-file code), run the cell, and its graph appears here. Then run it with %2, or right-click a task to run it.',
            '%%dag',
            '%run_dag hello'
          ) +
          (kind === 'no-session' &&
          this._notebook?.sessionContext.session?.kernel
            ? ' ' +
              trans.__(
                '(If %1 is unknown, run %2 first.)',
                '%%dag',
                '%load_ext kyte_jupyter'
              )
            : '');
        extra.push(this._example());
        break;
      case 'error':
        h.textContent = trans.__('Kyte is not answering');
        p.textContent =
          detail || trans.__('The Kyte server extension did not answer.');
        break;
    }
    node.replaceChildren(h, p, ...extra);
    this._empty.show();
    this._graph.hide();
    this._legend.hide();
    this._info.hide();
    this._header.hide();
  }

  private _hideEmpty(): void {
    this._empty.hide();
    this._graph.show();
    this._legend.show();
    this._info.show();
    this._header.show();
  }

  private _example(): HTMLElement {
    const box = document.createElement('div');
    box.className = 'jp-kyte-Panel-example';
    const pre = document.createElement('pre');
    pre.textContent = DAG_EXAMPLE;
    const insert = document.createElement('button');
    insert.className = 'jp-mod-styled jp-mod-accept';
    insert.textContent = this._trans.__('Insert this cell');
    insert.title = this._trans.__(
      'Add the example as a new cell below the active cell'
    );
    insert.onclick = () => {
      const nb = this._notebook;
      if (!nb) {
        return;
      }
      NotebookActions.insertBelow(nb.content);
      nb.content.activeCell?.model.sharedModel.setSource(DAG_EXAMPLE);
      nb.content.activate();
    };
    box.append(pre, insert);
    return box;
  }

  private _onActivated(_: GraphView, what: IGraphActivation): void {
    if (what.kind === 'group') {
      this.toggleGroup(what.id);
      return;
    }
    const dag = this.currentDag;
    if (dag) {
      this._graph.selectedTask = what.id;
      this._taskActivated.emit({ dagId: dag.dag_id, taskId: what.id });
    }
  }

  private _onContextMenu = (event: MouseEvent): void => {
    const node = (event.target as Element).closest(
      '.jp-kyte-node[data-task-id]'
    );
    const dag = this.currentDag;
    this._contextTask =
      node && dag
        ? { dagId: dag.dag_id, taskId: node.getAttribute('data-task-id')! }
        : null;
  };

  private readonly _service: IKyteService;
  private readonly _trans: TranslationBundle;
  private readonly _commands: CommandRegistry;
  private readonly _header: Panel;
  private readonly _toolbar: Toolbar;
  private readonly _dagTitle: HTMLElement;
  private readonly _dagSelect: HTMLSelectElement;
  private readonly _info: Widget;
  private readonly _empty: Widget;
  private readonly _graph: GraphView;
  private readonly _legend: Widget;
  private readonly _poll: Poll;
  private readonly _runner = new LayoutRunner();
  private readonly _taskActivated = new Signal<this, ITaskRef>(this);
  private readonly _dagsChanged = new Signal<this, IDagInfo[]>(this);
  private readonly _contextChanged = new Signal<this, void>(this);
  private readonly _selectedDag = new Map<string, string>();
  private readonly _collapsed = new Map<string, Set<string>>();
  private _notebook: NotebookPanel | null = null;
  private _notebookPath: string | null = null;
  private _session: ISession | null = null;
  private _dags: IDagInfo[] = [];
  private _structureKey = '';
  private _shownDagId: string | null = null;
  private _selectorKey = '';
  private _infoKey = '';
  private _emptyKey = '';
  private _contextKey = '';
  private _lastLookup = 0;
  private _generation = 0;
  private _timings: IPanelTimings | null = null;
  private _contextTask: ITaskRef | null = null;
}

/**
 * The KytePanel statics.
 */
export namespace KytePanel {
  /** Options to create a panel. */
  export interface IOptions {
    /** The REST client. */
    service: IKyteService;
    /** The application's commands (toolbar buttons). */
    commands: CommandRegistry;
    /** The translator (no translation when omitted). */
    translator?: ITranslator;
  }
}
