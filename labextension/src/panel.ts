/**
 * The Kyte sidebar: follows the active notebook and shows its session's DAGs, their graph
 * with live task states, and teaching empty states.
 */
import { PathExt } from '@jupyterlab/coreutils';
import { NotebookActions } from '@jupyterlab/notebook';
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
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, PanelLayout, Widget } from '@lumino/widgets';

import { GraphView, IGraphActivation } from './graphview';
import { fitIcon, kyteIcon, zoomInIcon, zoomOutIcon } from './icons';
import { LayoutDirection } from './layout';
import { RunSelector } from './runselector';
import { VersionDiffBar } from './versiondiff';
import { CHANGE_COLORS, CHANGE_ORDER, buildDiffGraphModel } from './diffmodel';
import { forcedList } from './forced';
import { WORKER_THRESHOLD, LayoutRunner } from './layoutrunner';
import { dagFindings, findingText, findingsKey } from './findings';
import {
  IGraphModel,
  LEGEND_STATES,
  NO_STATUS_COLOR,
  buildGraphModel,
  stateColor
} from './graphmodel';
import {
  CommandIDs,
  IDagInfo,
  IDagVersionDiff,
  IKyteModel,
  IKyteService,
  ITaskRef,
  KyteStatus
} from './tokens';

export type { ITaskRef } from './tokens';

/** A panel narrower than this (px) lays graphs out top to bottom. */
export const NARROW_PANEL = 400;

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

type EmptyKind = Exclude<KyteStatus, 'ready'>;

/**
 * The sidebar panel.
 */
export class KytePanel extends Widget {
  constructor(options: KytePanel.IOptions) {
    super();
    this._model = options.model;
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
    this._dagSelect.addEventListener('change', () =>
      this._model.selectDag(this._dagSelect.value)
    );
    this._notebookName = document.createElement('div');
    this._notebookName.className = 'jp-kyte-Panel-notebook';
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
    layout.addWidget(new Widget({ node: this._notebookName }));
    layout.addWidget(this._header);

    this._warnings = new Widget();
    this._warnings.addClass('jp-kyte-Panel-warnings');
    this._warnings.hide();
    layout.addWidget(this._warnings);

    this._info = new Widget();
    this._info.addClass('jp-kyte-Panel-info');
    layout.addWidget(this._info);

    if (options.service) {
      this._runSelector = new RunSelector({
        model: this._model,
        service: options.service,
        trans
      });
      layout.addWidget(this._runSelector);
      this._diffBar = new VersionDiffBar({
        model: this._model,
        service: options.service,
        trans
      });
      this._diffBar.diffChanged.connect(this._onDiffChanged, this);
      layout.addWidget(this._diffBar);
    }

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

    this._model.notebookChanged.connect(this._onNotebookChanged, this);
    this._model.statusChanged.connect(this._onStatusChanged, this);
    this._model.dagsChanged.connect(this._onDagsChanged, this);
    this._model.selectionChanged.connect(this._onSelectionChanged, this);
    this._onNotebookChanged();
    this._onStatusChanged();
  }

  /** Emitted when a task is clicked (open its log). */
  get taskActivated(): ISignal<this, ITaskRef> {
    return this._taskActivated;
  }

  /** The model the panel shows. */
  get model(): IKyteModel {
    return this._model;
  }

  /** The graph widget. */
  get graph(): GraphView {
    return this._graph;
  }

  /** Timings of the last graph drawn. */
  get timings(): IPanelTimings | null {
    return this._timings;
  }

  /** Fit the graph into the panel. */
  fit(): void {
    this._graph.fit();
  }

  /** Expand or collapse a task group of the shown DAG. */
  toggleGroup(groupId: string): void {
    const dag = this._model.currentDag;
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
    const dag = this._model.currentDag;
    if (!dag) {
      return;
    }
    const collapsed = this._collapsedFor(dag);
    collapsed.clear();
    if (collapse) {
      for (const g of dag.task_groups) {
        if (g.group_id) {
          collapsed.add(g.group_id);
        }
      }
    }
    void this._showDag(dag, true);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    Signal.disconnectReceiver(this);
    this._runner.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this._model.refresh();
  }

  /** A panel made narrower or wider may need the other layout direction. */
  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    const dag = this._model.currentDag;
    if (
      dag &&
      this._shownDagId === dag.dag_id &&
      this.node.dataset.direction &&
      this.node.dataset.direction !== this._direction()
    ) {
      void this._showDag(dag, true);
    }
  }

  /** Top to bottom in a narrow panel (labels stay readable), else left to right. */
  private _direction(): LayoutDirection {
    const width = this.node.clientWidth;
    return width > 0 && width < NARROW_PANEL ? 'TB' : 'LR';
  }

  private _onNotebookChanged(): void {
    const nb = this._model.notebook;
    this._generation++;
    this._requestedDagId = null;
    this._structureKey = '';
    this._graph.clear();
    this._dagSelect.hidden = true;
    this._dagTitle.textContent = '';
    this._info.node.replaceChildren();
    this._infoKey = '';
    this._selectorKey = '';
    this._warningsKey = '';
    this._warnings.hide();
    const path = nb?.context.localPath ?? '';
    this._notebookName.textContent = path ? PathExt.basename(path) : '';
    this._notebookName.title = path;
    this._notebookName.hidden = !path;
    this.title.caption = path
      ? this._trans.__('Kyte: DAGs of %1', path)
      : this._trans.__('Kyte: DAGs of this notebook');
  }

  private _onStatusChanged(): void {
    const status = this._model.status;
    if (status === 'ready') {
      return;
    }
    if (status !== 'error') {
      this._structureKey = '';
      this._graph.clear();
    }
    this._showEmpty(status, this._model.error);
  }

  private _onDagsChanged(): void {
    const dag = this._model.currentDag;
    if (!dag) {
      return;
    }
    this._updateSelector();
    void this._showDag(dag, true);
  }

  private _onSelectionChanged(): void {
    const dag = this._model.currentDag;
    const task = this._model.selectedTask;
    this._graph.selectedTask =
      task && dag && task.dagId === dag.dag_id ? task.taskId : null;
    if (dag && dag.dag_id !== this._requestedDagId) {
      // Another DAG was picked (a poll that only brought the first DAG draws it already).
      this._structureKey = '';
      this._updateSelector();
      void this._showDag(dag, false);
    }
  }

  /**
   * Draw a DAG: re-layout when its structure changed, otherwise only recolour.
   */
  private async _showDag(dag: IDagInfo, keepView: boolean): Promise<void> {
    const generation = this._generation;
    const t0 = performance.now();
    this._requestedDagId = dag.dag_id;
    const diff = this._shownDiff(dag);
    const model = diff
      ? buildDiffGraphModel(diff)
      : buildGraphModel(dag, this._collapsedFor(dag));
    this._setLegend(diff);
    this._hideEmpty();
    this._updateInfo(dag);
    this._updateWarnings(dag);
    const direction = this._direction();
    const layoutKey = `${direction}\n${model.structureKey}`;
    if (layoutKey === this._structureKey) {
      this._graph.updateStates(model);
      return;
    }
    const sameDag = this._shownDagId === dag.dag_id;
    this._structureKey = layoutKey;
    if (model.nodes.length > WORKER_THRESHOLD) {
      this.node.classList.add('jp-mod-layingOut');
    }
    let layout;
    try {
      layout = await this._runner.run(model, direction);
    } finally {
      this.node.classList.remove('jp-mod-layingOut');
    }
    if (generation !== this._generation || this._structureKey !== layoutKey) {
      return;
    }
    this.node.dataset.direction = direction;
    this._shownDagId = dag.dag_id;
    // The freshest states may have arrived while laying out.
    const fresh = this._model.dags.find(d => d.dag_id === dag.dag_id);
    const latest: IGraphModel =
      fresh && fresh !== dag && !diff
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

  /** The version diff to draw instead of the DAG, if the comparison is on for it. */
  private _shownDiff(dag: IDagInfo): IDagVersionDiff | null {
    const diff = this._diffBar?.diff ?? null;
    return diff && diff.dag_id === dag.dag_id ? diff : null;
  }

  private _onDiffChanged(): void {
    const dag = this._model.currentDag;
    if (dag && this._model.status === 'ready') {
      void this._showDag(dag, false);
    }
  }

  private _collapsedFor(dag: IDagInfo): Set<string> {
    const key = `${this._model.session?.id ?? ''}/${dag.dag_id}`;
    let set = this._collapsed.get(key);
    if (!set) {
      set = new Set(
        dag.nodes.length > COLLAPSE_GROUPS_ABOVE
          ? dag.task_groups.map(g => g.group_id ?? '')
          : []
      );
      this._collapsed.set(key, set);
    }
    return set;
  }

  private _updateSelector(): void {
    const dags = this._model.dags;
    const ids = dags.map(d => d.dag_id);
    const key = ids.join('\u0000');
    const current = this._model.currentDag;
    if (key !== this._selectorKey) {
      this._selectorKey = key;
      this._dagSelect.replaceChildren(
        ...dags.map(d => {
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
    const pinned = !!this._model.pinnedRun(dag.dag_id);
    const key = `${dag.dag_id}|${run?.run_id ?? ''}|${run?.state ?? ''}|${dag.nodes.length}|${pinned}|${forcedList(run ?? null).join(',')}`;
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
      id.textContent = run.run_id ?? '';
      id.title = run.run_id ?? '';
      line.append(
        document.createTextNode(
          (pinned
            ? this._trans.__('Past run:')
            : this._trans.__('Latest run:')) + ' '
        ),
        dot,
        document.createTextNode(' '),
        id
      );
      const forced = forcedList(run);
      if (forced.length) {
        const badge = document.createElement('span');
        badge.className = 'jp-kyte-forcedBadge';
        badge.textContent = this._trans.__('what-if');
        badge.title = this._trans.__(
          'Outcomes forced in this run:\n%1',
          forced.join('\n')
        );
        line.append(document.createTextNode(' '), badge);
      }
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

  /**
   * The kernel's and the notebook's disagreements, and the static checks' findings about the
   * DAG as a whole (task findings are badges on the nodes), in the DAG's header.
   */
  private _updateWarnings(dag: IDagInfo): void {
    const warnings = dag.warnings ?? [];
    const findings = dagFindings(dag);
    const key = [dag.dag_id, ...warnings, findingsKey(findings)].join('\u0000');
    if (key === this._warningsKey) {
      return;
    }
    this._warningsKey = key;
    const items = warnings.map(w => {
      const li = document.createElement('li');
      li.textContent = w;
      return li;
    });
    for (const f of findings) {
      const li = document.createElement('li');
      li.className = `jp-kyte-Panel-finding jp-mod-${f.severity}`;
      li.dataset.rule = f.rule;
      li.textContent = findingText(f);
      items.push(li);
    }
    const ul = document.createElement('ul');
    ul.append(...items);
    this._warnings.node.replaceChildren(ul);
    this._warnings.node.setAttribute('role', 'status');
    this._warnings.setHidden(!items.length);
  }

  /** The legend of state colours, or of change colours while a version diff is drawn. */
  private _setLegend(diff: IDagVersionDiff | null): void {
    const kind = diff ? 'diff' : 'states';
    if (this._legend.node.dataset.kind !== kind) {
      this._buildLegend(!!diff);
    }
  }

  private _buildLegend(diff = false): void {
    const items: Node[] = [];
    const add = (state: string, color: string, attr = 'state'): void => {
      const item = document.createElement('span');
      item.className = 'jp-kyte-Panel-legendItem';
      item.dataset[attr] = state;
      const swatch = document.createElement('span');
      swatch.className = 'jp-kyte-Panel-swatch';
      swatch.style.setProperty('--jp-kyte-state-color', color);
      item.append(swatch, document.createTextNode(state.replace(/_/g, ' ')));
      items.push(item);
    };
    if (diff) {
      for (const change of CHANGE_ORDER) {
        add(change, CHANGE_COLORS[change], 'change');
      }
    } else {
      for (const state of LEGEND_STATES) {
        add(state, stateColor(state));
      }
      add('no status', NO_STATUS_COLOR);
    }
    this._legend.node.dataset.kind = diff ? 'diff' : 'states';
    this._legend.node.replaceChildren(...items);
    this._legend.node.setAttribute(
      'aria-label',
      diff
        ? this._trans.__('Version change colours')
        : this._trans.__('Task state colours')
    );
  }

  private _showEmpty(kind: EmptyKind, detail = ''): void {
    const notebook = this._model.notebook;
    const key = `${kind}|${detail}|${!!notebook?.sessionContext.session?.kernel}`;
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
          (kind === 'no-session' && notebook?.sessionContext.session?.kernel
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
    this._warnings.hide();
    this._runSelector?.hide();
    this._diffBar?.hide();
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
      const nb = this._model.notebook;
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
    const dag = this._model.currentDag;
    if (dag) {
      const ref = { dagId: dag.dag_id, taskId: what.id };
      this._model.selectTask(ref);
      this._taskActivated.emit(ref);
    }
  }

  private _onContextMenu = (event: MouseEvent): void => {
    const node = (event.target as Element).closest(
      '.jp-kyte-node[data-task-id]'
    );
    const dag = this._model.currentDag;
    this._model.contextTask =
      node && dag
        ? { dagId: dag.dag_id, taskId: node.getAttribute('data-task-id')! }
        : null;
  };

  private readonly _model: IKyteModel;
  private readonly _trans: TranslationBundle;
  private readonly _commands: CommandRegistry;
  private readonly _header: Panel;
  private readonly _toolbar: Toolbar;
  private readonly _notebookName: HTMLElement;
  private readonly _dagTitle: HTMLElement;
  private readonly _dagSelect: HTMLSelectElement;
  private readonly _warnings: Widget;
  private readonly _info: Widget;
  private readonly _runSelector: RunSelector | null = null;
  private readonly _diffBar: VersionDiffBar | null = null;
  private readonly _empty: Widget;
  private readonly _graph: GraphView;
  private readonly _legend: Widget;
  private readonly _runner = new LayoutRunner();
  private readonly _taskActivated = new Signal<this, ITaskRef>(this);
  private readonly _collapsed = new Map<string, Set<string>>();
  private _structureKey = '';
  private _shownDagId: string | null = null;
  private _requestedDagId: string | null = null;
  private _selectorKey = '';
  private _infoKey = '';
  private _warningsKey = '';
  private _emptyKey = '';
  private _timings: IPanelTimings | null = null;
  private _generation = 0;
}

/**
 * The KytePanel statics.
 */
export namespace KytePanel {
  /** Options to create a panel. */
  export interface IOptions {
    /** The model shown. */
    model: IKyteModel;
    /** The application's commands (toolbar buttons). */
    commands: CommandRegistry;
    /** The translator (no translation when omitted). */
    translator?: ITranslator;
    /** The REST client: with it, the panel has a run selector (past runs, versions). */
    service?: IKyteService;
  }
}
