/**
 * The SVG drawing of a laid-out DAG, with pan (drag), zoom (wheel, buttons) and fit.
 *
 * Kept lean for 1,000-task DAGs: one `<g>` with two rects and two texts per task, one path per
 * edge, event delegation instead of per-node listeners, state changes applied as one CSS
 * custom property per changed node (no re-layout, no re-render), and labels hidden when
 * zoomed far out.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  GROUP_HEADER,
  IBox,
  IGraphLayout,
  NODE_MAX_WIDTH,
  edgePath
} from './layout';
import { findingBadge, findingsKey } from './findings';
import { FORCED_BADGE } from './forced';
import { IGraphModel, IGraphNode } from './graphmodel';
import {
  IViewTransform,
  MIN_SCALE,
  drawingBounds,
  fitView,
  initialView
} from './view';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Below this zoom factor, labels are hidden (they would be unreadable anyway). */
const LABEL_MIN_SCALE = 0.35;
const MAX_SCALE = 3;

/** Timings of the last full render, in milliseconds. */
export interface IRenderTimings {
  /** Number of boxes drawn. */
  nodes: number;
  /** Number of edges drawn. */
  edges: number;
  /** Time spent by the layout. */
  layoutMs: number;
  /** Time spent building the SVG and letting the browser lay it out. */
  renderMs: number;
}

/**
 * What a click or keyboard action on the graph asks for.
 */
export interface IGraphActivation {
  /** `task` for a task box, `group` for a group header or a collapsed group. */
  kind: 'task' | 'group';
  /** The task id or the group id. */
  id: string;
}

/**
 * The DAG graph widget.
 */
export class GraphView extends Widget {
  constructor() {
    super();
    this.addClass('jp-kyte-GraphView');
    this.node.tabIndex = 0;
    this._markerId = `jp-kyte-arrow-${++GraphView._instances}`;

    this._svg = svg('svg', { class: 'jp-kyte-GraphView-svg' }) as SVGSVGElement;
    const defs = svg('defs');
    const marker = svg('marker', {
      id: this._markerId,
      viewBox: '0 0 10 10',
      refX: '9',
      refY: '5',
      markerWidth: '7',
      markerHeight: '7',
      orient: 'auto-start-reverse'
    });
    marker.appendChild(
      svg('path', { d: 'M0,0L10,5L0,10z', class: 'jp-kyte-GraphView-arrow' })
    );
    defs.appendChild(marker);
    this._svg.appendChild(defs);
    this._viewport = svg('g', {
      class: 'jp-kyte-GraphView-viewport'
    }) as SVGGElement;
    this._svg.appendChild(this._viewport);
    this.node.appendChild(this._svg);
  }

  /** Emitted when a task box, a group header or a collapsed group is clicked. */
  get activated(): ISignal<this, IGraphActivation> {
    return this._activated;
  }

  /** Timings of the last full render. */
  get timings(): IRenderTimings | null {
    return this._timings;
  }

  /** The current zoom factor. */
  get scale(): number {
    return this._k;
  }

  /**
   * Whether the user panned or zoomed since the graph was last fitted: then the view stays
   * where the user put it; otherwise it is fitted again when the graph grows or the panel is
   * resized.
   */
  get userMoved(): boolean {
    return this._userMoved;
  }

  /** The task drawn as selected (its log is open), or null. */
  get selectedTask(): string | null {
    return this._selected;
  }
  set selectedTask(taskId: string | null) {
    if (this._selected) {
      this._nodeEls.get(this._selected)?.classList.remove('jp-mod-selected');
    }
    this._selected = taskId;
    if (taskId) {
      this._nodeEls.get(taskId)?.classList.add('jp-mod-selected');
    }
  }

  /**
   * Draw a laid-out graph, replacing what was drawn.
   *
   * @param keepView Keep the current pan and zoom (the same DAG was re-laid out); otherwise
   * fit the new graph into view.
   * @returns The time spent, in milliseconds.
   */
  render(model: IGraphModel, layout: IGraphLayout, keepView: boolean): number {
    const t0 = performance.now();
    const nodeEls = new Map<string, SVGGElement>();
    const states = new Map<string, string>();

    const groupLayer = svg('g', { class: 'jp-kyte-GraphView-groups' });
    for (const group of model.groups) {
      const box = layout.groups.get(group.id);
      if (!box) {
        continue;
      }
      const g = svg('g', {
        class: 'jp-kyte-group',
        'data-group-id': group.id,
        transform: `translate(${r(box.x)},${r(box.y)})`
      });
      g.appendChild(
        svg('rect', {
          class: 'jp-kyte-group-box',
          width: r(box.width),
          height: r(box.height),
          rx: '6'
        })
      );
      const header = svg('text', {
        class: 'jp-kyte-group-header',
        x: '8',
        y: String(GROUP_HEADER - 4),
        'data-group-id': group.id,
        role: 'button'
      });
      header.textContent = `\u25BE ${group.label}`;
      const title = svg('title');
      title.textContent = `Task group ${group.id}: click to collapse`;
      header.appendChild(title);
      g.appendChild(header);
      groupLayer.appendChild(g);
    }

    const edgeLayer = svg('g', { class: 'jp-kyte-GraphView-edges' });
    const markerRef = `url(#${this._markerId})`;
    for (const edge of layout.edges) {
      const path = svg('path', {
        class: 'jp-kyte-edge',
        d: edgePath(edge.points),
        'marker-end': markerRef,
        'data-from': edge.from,
        'data-to': edge.to
      });
      const change = model.edgeChanges?.get(edge.from + '\u0000' + edge.to);
      if (model.edgeChanges) {
        path.setAttribute('data-change', change ?? 'unchanged');
      }
      edgeLayer.appendChild(path);
    }

    const nodeLayer = svg('g', { class: 'jp-kyte-GraphView-nodes' });
    for (const node of model.nodes) {
      const box = layout.nodes.get(node.id);
      if (!box) {
        continue;
      }
      const g = this._drawNode(node, box.x, box.y, box.width, box.height);
      nodeEls.set(node.id, g);
      states.set(node.id, drawnKey(node));
      nodeLayer.appendChild(g);
    }

    this._viewport.replaceChildren(groupLayer, edgeLayer, nodeLayer);
    this._nodeEls = nodeEls;
    this._states = states;
    this._drawn = layout;
    this._bounds = drawingBounds(layout);
    this.node.dataset.nodeCount = String(model.nodes.length);
    if (this._selected && nodeEls.has(this._selected)) {
      nodeEls.get(this._selected)!.classList.add('jp-mod-selected');
    }
    if (!keepView || !this._hasView || !this._userMoved) {
      this.initialView();
    } else {
      this._applyTransform();
    }
    // Make the browser style and lay the SVG out now, so the timing includes it.
    void this._svg.getBoundingClientRect();
    void (nodeLayer as SVGGElement).getBBox();
    const renderMs = performance.now() - t0;
    this._timings = {
      nodes: model.nodes.length,
      edges: layout.edges.length,
      layoutMs: layout.elapsedMs,
      renderMs
    };
    this.node.dataset.layoutMs = layout.elapsedMs.toFixed(1);
    this.node.dataset.renderMs = renderMs.toFixed(1);
    return renderMs;
  }

  /**
   * Recolour the drawn boxes whose state changed (the structure must be unchanged).
   *
   * @returns The number of boxes recoloured.
   */
  updateStates(model: IGraphModel): number {
    let changed = 0;
    for (const node of model.nodes) {
      const state = drawnKey(node);
      if (this._states.get(node.id) === state) {
        continue;
      }
      const el = this._nodeEls.get(node.id);
      if (!el) {
        continue;
      }
      this._states.set(node.id, state);
      this._applyState(el, node);
      changed++;
    }
    return changed;
  }

  /** Remove the drawing. */
  clear(): void {
    this._viewport.replaceChildren();
    this._nodeEls.clear();
    this._states.clear();
    this._hasView = false;
    this._userMoved = false;
    this._timings = null;
    this._drawn = null;
    this._bounds = null;
    delete this.node.dataset.nodeCount;
  }

  /** Fit the whole graph into the view, centred (never zooming in beyond 100%). */
  fit(): void {
    this._userMoved = false;
    if (this._bounds) {
      this._setView(fitView(this._bounds, ...this._viewSize()));
    }
  }

  /**
   * Show a newly drawn graph: fitted when that keeps the labels readable, otherwise at a
   * readable zoom showing the DAG's start (see `initialView` in view.ts).
   */
  initialView(): void {
    this._userMoved = false;
    if (this._drawn && this._bounds) {
      const view = initialView(this._drawn, this._bounds, ...this._viewSize());
      this.node.dataset.fitted = String(view.fitted);
      this._setView(view);
    }
  }

  /** Zoom by a factor around a point of the view (its centre by default). */
  zoomBy(factor: number, cx?: number, cy?: number): void {
    const x = cx ?? this.node.clientWidth / 2;
    const y = cy ?? this.node.clientHeight / 2;
    const k = Math.max(MIN_SCALE, Math.min(MAX_SCALE, this._k * factor));
    const f = k / this._k;
    this._tx = x - (x - this._tx) * f;
    this._ty = y - (y - this._ty) * f;
    this._k = k;
    this._hasView = true;
    this._userMoved = true;
    this._applyTransform();
  }

  /** Scroll a task into the middle of the view. */
  reveal(nodeId: string): void {
    const el = this._nodeEls.get(nodeId);
    if (!el) {
      return;
    }
    const box = el.getBBox();
    const m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(
      el.getAttribute('transform') ?? ''
    );
    const x = (m ? parseFloat(m[1]) : 0) + box.width / 2;
    const y = (m ? parseFloat(m[2]) : 0) + box.height / 2;
    this._tx = this.node.clientWidth / 2 - x * this._k;
    this._ty = this.node.clientHeight / 2 - y * this._k;
    this._applyTransform();
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case 'wheel':
        this._onWheel(event as WheelEvent);
        break;
      case 'pointerdown':
        this._onPointerDown(event as PointerEvent);
        break;
      case 'pointermove':
        this._onPointerMove(event as PointerEvent);
        break;
      case 'pointerup':
      case 'pointercancel':
        this._onPointerUp(event as PointerEvent);
        break;
      case 'click':
        this._onClick(event as MouseEvent);
        break;
      case 'dblclick':
        if (!(event.target as Element).closest('.jp-kyte-node')) {
          this.fit();
        }
        break;
      case 'keydown':
        this._onKeyDown(event as KeyboardEvent);
        break;
    }
  }

  /** A resized view is fitted again, unless the user panned or zoomed. */
  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    if (this._userMoved || !this._drawn || this._resizeFrame) {
      return;
    }
    this._resizeFrame = requestAnimationFrame(() => {
      this._resizeFrame = 0;
      if (!this._userMoved && this._drawn && this.isVisible) {
        this.initialView();
      }
    });
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._userMoved && this._drawn) {
      this.initialView();
    }
  }

  protected onAfterAttach(): void {
    this.node.addEventListener('wheel', this, { passive: false });
    this.node.addEventListener('pointerdown', this);
    this.node.addEventListener('pointermove', this);
    this.node.addEventListener('pointerup', this);
    this.node.addEventListener('pointercancel', this);
    this.node.addEventListener('click', this);
    this.node.addEventListener('dblclick', this);
    this.node.addEventListener('keydown', this);
  }

  protected onBeforeDetach(): void {
    this.node.removeEventListener('wheel', this);
    this.node.removeEventListener('pointerdown', this);
    this.node.removeEventListener('pointermove', this);
    this.node.removeEventListener('pointerup', this);
    this.node.removeEventListener('pointercancel', this);
    this.node.removeEventListener('click', this);
    this.node.removeEventListener('dblclick', this);
    this.node.removeEventListener('keydown', this);
  }

  private _drawNode(
    node: IGraphNode,
    x: number,
    y: number,
    w: number,
    h: number
  ): SVGGElement {
    const isGroup = node.kind === 'group';
    const g = svg('g', {
      class: isGroup ? 'jp-kyte-node jp-kyte-node-collapsed' : 'jp-kyte-node',
      transform: `translate(${r(x)},${r(y)})`,
      role: 'button',
      'data-id': node.id
    }) as SVGGElement;
    if (isGroup) {
      g.setAttribute('data-group-id', node.refId);
    } else {
      g.setAttribute('data-task-id', node.refId);
    }
    if (node.change) {
      g.setAttribute('data-change', node.change);
    }
    if (node.isMapped) {
      g.appendChild(
        svg('rect', {
          class: 'jp-kyte-node-stack',
          x: '4',
          y: '-4',
          width: r(w),
          height: r(h),
          rx: '4'
        })
      );
    }
    g.appendChild(
      svg('rect', {
        class: 'jp-kyte-node-box',
        width: r(w),
        height: r(h),
        rx: '4'
      })
    );
    g.appendChild(
      svg('rect', {
        class: 'jp-kyte-node-bar',
        width: '6',
        height: r(h),
        rx: '2'
      })
    );
    const maxChars = Math.floor(
      (Math.min(w, NODE_MAX_WIDTH) - 26 - (node.isMapped ? 24 : 0)) / 7
    );
    const label = svg('text', {
      class: 'jp-kyte-node-label',
      x: '14',
      y: '17'
    });
    label.textContent = truncate(
      isGroup ? `\u25B8 ${node.label}` : node.label,
      maxChars
    );
    const detail = svg('text', {
      class: 'jp-kyte-node-detail',
      x: '14',
      y: '31'
    });
    detail.textContent = truncate(node.detail, maxChars + 2);
    g.appendChild(label);
    g.appendChild(detail);
    if (node.isMapped) {
      const badge = svg('text', {
        class: 'jp-kyte-node-badge',
        x: String(Math.round(w) - 6),
        y: '17',
        'text-anchor': 'end'
      });
      badge.textContent = node.mapCount ? `[${node.mapCount}]` : '[ ]';
      g.appendChild(badge);
    }
    const finding = svg('g', {
      class: 'jp-kyte-node-finding',
      transform: `translate(${r(w)},0)`
    });
    finding.append(
      svg('circle', { r: '7' }),
      svg('text', { 'text-anchor': 'middle', y: '3.5' }),
      svg('title')
    );
    g.appendChild(finding);
    // The what-if badge: a labelled tag on the box's top edge, never a state colour.
    const forced = svg('g', {
      class: 'jp-kyte-node-forced',
      transform: 'translate(10,-7)'
    });
    forced.append(
      svg('rect', { width: '42', height: '13', rx: '6.5' }),
      svg('text', { x: '21', y: '9.5', 'text-anchor': 'middle' })
    );
    forced.lastChild!.textContent = FORCED_BADGE;
    g.appendChild(forced);
    g.appendChild(svg('title'));
    this._applyState(g, node);
    return g;
  }

  /** The badge of a box with findings (hidden without): error or warning, a tooltip. */
  private _applyFindings(g: SVGGElement, node: IGraphNode): void {
    const el = g.querySelector('.jp-kyte-node-finding');
    if (!el) {
      return;
    }
    const badge = findingBadge(
      node.findings,
      node.kind === 'task' ? node.refId : null
    );
    el.classList.toggle('jp-mod-error', badge?.severity === 'error');
    el.classList.toggle('jp-mod-warning', badge?.severity === 'warning');
    el.setAttribute('visibility', badge ? 'visible' : 'hidden');
    if (badge) {
      el.setAttribute('data-severity', badge.severity);
    } else {
      el.removeAttribute('data-severity');
    }
    el.querySelector('text')!.textContent = badge
      ? badge.count > 9
        ? '9+'
        : String(badge.count)
      : '';
    el.querySelector('title')!.textContent = badge?.title ?? '';
    g.toggleAttribute('data-findings', !!badge);
  }

  private _applyState(g: SVGGElement, node: IGraphNode): void {
    this._applyFindings(g, node);
    g.style.setProperty('--jp-kyte-state-color', node.color);
    g.setAttribute('data-state', node.state ?? 'none');
    const forced = g.querySelector('.jp-kyte-node-forced');
    forced?.setAttribute('visibility', node.forced ? 'visible' : 'hidden');
    if (node.forced) {
      g.setAttribute('data-forced', node.forced);
    } else {
      g.removeAttribute('data-forced');
    }
    const title = g.lastChild as SVGTitleElement;
    const what =
      node.kind === 'group'
        ? `Task group ${node.refId} (${node.detail})`
        : node.refId;
    if (node.change) {
      title.textContent =
        `${what}: ${node.change}` +
        (node.changeNote ? `\n${node.changeNote}` : '');
      return;
    }
    title.textContent =
      `${what}\n${node.kind === 'group' ? 'summary state' : node.detail}: ` +
      `${node.state ?? 'no status'}` +
      (node.forced ? `\nOutcome forced by a what-if run: ${node.forced}` : '') +
      (node.kind === 'group'
        ? '\nClick to expand.'
        : '\nClick for the log, right-click to run.');
  }

  /** The size of the view (a default while it is not laid out yet). */
  private _viewSize(): [number, number] {
    return [this.node.clientWidth || 300, this.node.clientHeight || 300];
  }

  private _setView(view: IViewTransform): void {
    this._k = view.k;
    this._tx = view.tx;
    this._ty = view.ty;
    this._hasView = true;
    this._applyTransform();
  }

  private _applyTransform(): void {
    this._viewport.setAttribute(
      'transform',
      `translate(${this._tx.toFixed(1)},${this._ty.toFixed(1)}) scale(${this._k.toFixed(4)})`
    );
    this.node.classList.toggle(
      'jp-kyte-mod-zoomedOut',
      this._k < LABEL_MIN_SCALE
    );
    this.node.dataset.scale = this._k.toFixed(3);
    this.node.dataset.userMoved = String(this._userMoved);
  }

  private _onWheel(event: WheelEvent): void {
    event.preventDefault();
    const rect = this.node.getBoundingClientRect();
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    if (event.ctrlKey || event.metaKey || !event.shiftKey) {
      this.zoomBy(
        Math.exp(-delta * 0.0015),
        event.clientX - rect.left,
        event.clientY - rect.top
      );
    } else {
      this._tx -= event.deltaX || delta;
      this._userMoved = true;
      this._applyTransform();
    }
  }

  private _onPointerDown(event: PointerEvent): void {
    if (event.button !== 0) {
      return;
    }
    this._drag = {
      x: event.clientX,
      y: event.clientY,
      tx: this._tx,
      ty: this._ty,
      moved: false
    };
  }

  private _onPointerMove(event: PointerEvent): void {
    const drag = this._drag;
    if (!drag) {
      return;
    }
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) {
      return;
    }
    if (!drag.moved) {
      drag.moved = true;
      this.node.setPointerCapture(event.pointerId);
      this.addClass('jp-mod-panning');
    }
    this._tx = drag.tx + dx;
    this._ty = drag.ty + dy;
    this._hasView = true;
    this._userMoved = true;
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._applyTransform();
      });
    }
  }

  private _onPointerUp(event: PointerEvent): void {
    const drag = this._drag;
    this._drag = null;
    if (drag?.moved) {
      this._suppressClick = true;
      this.removeClass('jp-mod-panning');
      if (this.node.hasPointerCapture(event.pointerId)) {
        this.node.releasePointerCapture(event.pointerId);
      }
      setTimeout(() => (this._suppressClick = false), 0);
    }
  }

  private _onClick(event: MouseEvent): void {
    if (this._suppressClick) {
      return;
    }
    const target = event.target as Element;
    const header = target.closest('.jp-kyte-group-header');
    if (header) {
      this._activated.emit({
        kind: 'group',
        id: header.getAttribute('data-group-id')!
      });
      return;
    }
    const node = target.closest('.jp-kyte-node');
    if (!node) {
      return;
    }
    const groupId = node.getAttribute('data-group-id');
    if (groupId) {
      this._activated.emit({ kind: 'group', id: groupId });
    } else {
      this._activated.emit({
        kind: 'task',
        id: node.getAttribute('data-task-id')!
      });
    }
  }

  private _onKeyDown(event: KeyboardEvent): void {
    const step = 40;
    switch (event.key) {
      case '+':
      case '=':
        this.zoomBy(1.25);
        break;
      case '-':
        this.zoomBy(0.8);
        break;
      case '0':
        this.fit();
        break;
      case 'ArrowLeft':
        this._tx += step;
        this._applyTransform();
        break;
      case 'ArrowRight':
        this._tx -= step;
        this._applyTransform();
        break;
      case 'ArrowUp':
        this._ty += step;
        this._applyTransform();
        break;
      case 'ArrowDown':
        this._ty -= step;
        this._applyTransform();
        break;
      default:
        return;
    }
    if (event.key.startsWith('Arrow')) {
      this._userMoved = true;
    }
    event.preventDefault();
  }

  private static _instances = 0;
  private readonly _markerId: string;
  private readonly _svg: SVGSVGElement;
  private readonly _viewport: SVGGElement;
  private readonly _activated = new Signal<this, IGraphActivation>(this);
  private _nodeEls = new Map<string, SVGGElement>();
  private _states = new Map<string, string>();
  private _selected: string | null = null;
  private _timings: IRenderTimings | null = null;
  private _drawn: IGraphLayout | null = null;
  private _bounds: IBox | null = null;
  private _k = 1;
  private _tx = 0;
  private _ty = 0;
  private _hasView = false;
  private _userMoved = false;
  private _resizeFrame = 0;
  private _frame = 0;
  private _suppressClick = false;
  private _drag: {
    x: number;
    y: number;
    tx: number;
    ty: number;
    moved: boolean;
  } | null = null;
}

function svg(tag: string, attrs: Record<string, string> = {}): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const key in attrs) {
    el.setAttribute(key, attrs[key]);
  }
  return el;
}

function r(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function truncate(text: string, max: number): string {
  return text.length > max && max > 1
    ? text.slice(0, max - 1) + '\u2026'
    : text;
}

/**
 * What the drawing of a box depends on besides the layout: its state, its findings and how a
 * what-if run forced it.
 */
function drawnKey(node: IGraphNode): string {
  return (
    (node.state ?? '') +
    '\u0001' +
    findingsKey(node.findings) +
    '\u0001' +
    (node.forced ?? '')
  );
}
