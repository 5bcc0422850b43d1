/**
 * Left-to-right layout of a graph model with dagre. Pure (no DOM), so it runs in Node tests
 * and could run in a worker.
 */
import dagre from '@dagrejs/dagre';

import { IGraphModel, IGraphNode } from './graphmodel';

/** A laid-out box, by its top-left corner. */
export interface IBox {
  /** Left edge. */
  x: number;
  /** Top edge. */
  y: number;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** A laid-out edge. */
export interface IEdgeLayout {
  /** Drawn id of the upstream box. */
  from: string;
  /** Drawn id of the downstream box. */
  to: string;
  /** Polyline points, from the upstream border to the downstream border. */
  points: { x: number; y: number }[];
}

/** Which way the graph flows: left to right, or top to bottom (a narrow panel). */
export type LayoutDirection = 'LR' | 'TB';

/** The result of a layout. */
export interface IGraphLayout {
  /** Which way the graph flows. */
  direction: LayoutDirection;
  /** Boxes of the nodes by drawn id. */
  nodes: Map<string, IBox>;
  /** Boxes of the expanded groups by group id (including room for their header). */
  groups: Map<string, IBox>;
  /** Edges, in the model's order. */
  edges: IEdgeLayout[];
  /** Width of the whole drawing. */
  width: number;
  /** Height of the whole drawing. */
  height: number;
  /** Milliseconds the layout took. */
  elapsedMs: number;
}

/** Sizes used by the layout and the renderer. */
export const NODE_HEIGHT = 40;
/**
 * Narrow enough that a short chain (the tour's three tasks) fits a default-width sidebar at a
 * readable zoom; wide enough for a label of 10 characters.
 */
export const NODE_MIN_WIDTH = 100;
export const NODE_MAX_WIDTH = 240;
/** Approximate advance of one character of the label font (12px sans-serif). */
const CHAR_WIDTH = 7;
/** Room above a group's members for its header. */
export const GROUP_HEADER = 16;
const GROUP_PAD = 4;
/**
 * dagre's `edgesep` when there are groups. dagre keeps `(nodesep + edgesep) / 2` between a
 * cluster's border and the nodes on either side of it, and draws no room for a title; a wider
 * edgesep leaves room for the group's header and padding (GROUP_HEADER + GROUP_PAD) inside
 * that gap, so group boxes never cover nodes outside them.
 */
const GROUP_EDGESEP = 34;

/**
 * Above this many nodes, rank with dagre's `tight-tree` ranker instead of network simplex:
 * about 3x faster on 1,000 tasks (0.5 s instead of 1.4 s) for slightly longer edges.
 * (`longest-path` is faster still but fails on some compound graphs.)
 */
export const LARGE_GRAPH = 400;

/**
 * The width of a node's box: wide enough for its label and operator, within bounds.
 */
export function nodeWidth(node: IGraphNode): number {
  const chars = Math.max(
    node.label.length + (node.kind === 'group' ? 2 : 0),
    node.detail.length
  );
  const w = 26 + chars * CHAR_WIDTH + (node.isMapped ? 24 : 0);
  return Math.max(NODE_MIN_WIDTH, Math.min(NODE_MAX_WIDTH, Math.round(w)));
}

/**
 * Lay a graph model out, left to right (or top to bottom).
 */
export function layoutGraph(
  model: IGraphModel,
  direction: LayoutDirection = 'LR'
): IGraphLayout {
  const t0 = now();
  const large = model.nodes.length > LARGE_GRAPH;
  const g = new dagre.graphlib.Graph({
    compound: model.groups.length > 0,
    multigraph: false
  });
  g.setGraph({
    rankdir: direction,
    nodesep: 14,
    ranksep: 36,
    edgesep: model.groups.length ? GROUP_EDGESEP : 8,
    marginx: 16,
    marginy: 16 + (model.groups.length ? GROUP_HEADER : 0),
    ranker: large ? 'tight-tree' : 'network-simplex'
  });
  g.setDefaultEdgeLabel(() => ({}));

  for (const group of model.groups) {
    // A header node-sized label keeps room at the top of the cluster for the group title.
    g.setNode(group.id, { width: 0, height: 0 });
  }
  for (const group of model.groups) {
    if (group.parent) {
      g.setParent(group.id, group.parent);
    }
  }
  for (const node of model.nodes) {
    g.setNode(node.id, { width: nodeWidth(node), height: NODE_HEIGHT });
    if (node.parent) {
      g.setParent(node.id, node.parent);
    }
  }
  for (const [from, to] of model.edges) {
    g.setEdge(from, to);
  }

  dagre.layout(g);

  const nodes = new Map<string, IBox>();
  let maxX = 0;
  let maxY = 0;
  for (const node of model.nodes) {
    const n = g.node(node.id);
    const box = {
      x: n.x - n.width / 2,
      y: n.y - n.height / 2,
      width: n.width,
      height: n.height
    };
    nodes.set(node.id, box);
    maxX = Math.max(maxX, box.x + box.width);
    maxY = Math.max(maxY, box.y + box.height);
  }

  // Group boxes: the members' bounds plus padding and a header, computed bottom-up so that
  // nested groups enclose their subgroups (dagre's own cluster boxes leave no header room).
  const groups = new Map<string, IBox>();
  const children = new Map<string, string[]>();
  for (const node of model.nodes) {
    if (node.parent) {
      push(children, node.parent, node.id);
    }
  }
  for (const group of model.groups) {
    if (group.parent) {
      push(children, group.parent, GROUP_KEY + group.id);
    }
  }
  for (let i = model.groups.length - 1; i >= 0; i--) {
    const group = model.groups[i];
    let x0 = Number.POSITIVE_INFINITY;
    let y0 = Number.POSITIVE_INFINITY;
    let x1 = Number.NEGATIVE_INFINITY;
    let y1 = Number.NEGATIVE_INFINITY;
    for (const child of children.get(group.id) ?? []) {
      const b = child.startsWith(GROUP_KEY)
        ? groups.get(child.slice(GROUP_KEY.length))
        : nodes.get(child);
      if (!b) {
        continue;
      }
      x0 = Math.min(x0, b.x);
      y0 = Math.min(y0, b.y);
      x1 = Math.max(x1, b.x + b.width);
      y1 = Math.max(y1, b.y + b.height);
    }
    if (!Number.isFinite(x0)) {
      const n = g.node(group.id);
      x0 = n.x - n.width / 2;
      y0 = n.y - n.height / 2;
      x1 = x0 + n.width;
      y1 = y0 + n.height;
    }
    const box = {
      x: x0 - GROUP_PAD,
      y: y0 - GROUP_PAD - GROUP_HEADER,
      width: x1 - x0 + 2 * GROUP_PAD,
      height: y1 - y0 + 2 * GROUP_PAD + GROUP_HEADER
    };
    groups.set(group.id, box);
    maxX = Math.max(maxX, box.x + box.width);
    maxY = Math.max(maxY, box.y + box.height);
  }

  const edges: IEdgeLayout[] = model.edges.map(([from, to]) => {
    const e = g.edge(from, to) as
      { points?: { x: number; y: number }[] } | undefined;
    return { from, to, points: e?.points ?? [] };
  });

  return {
    direction,
    nodes,
    groups,
    edges,
    width: Math.max(maxX + 16, g.graph().width ?? 0),
    height: Math.max(maxY + 16, g.graph().height ?? 0),
    elapsedMs: now() - t0
  };
}

const GROUP_KEY = '\u0000group\u0000';

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) {
    list.push(value);
  } else {
    map.set(key, [value]);
  }
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/**
 * An SVG path through an edge's points: straight first and last segments, smoothed corners.
 */
export function edgePath(points: { x: number; y: number }[]): string {
  if (points.length === 0) {
    return '';
  }
  const f = (v: number): string => (Math.round(v * 10) / 10).toString();
  let d = `M${f(points[0].x)},${f(points[0].y)}`;
  if (points.length === 2) {
    return d + `L${f(points[1].x)},${f(points[1].y)}`;
  }
  // Quadratic curves through the midpoints of the segments (a cheap B-spline).
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const q = points[i + 1];
    const mx = i === points.length - 2 ? q.x : (p.x + q.x) / 2;
    const my = i === points.length - 2 ? q.y : (p.y + q.y) / 2;
    d += `Q${f(p.x)},${f(p.y)} ${f(mx)},${f(my)}`;
  }
  return d;
}
