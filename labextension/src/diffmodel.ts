/**
 * The version diff drawn as a graph (issue 19): both versions' tasks and edges in one graph,
 * coloured the way a reviewer reads a diff — added green, removed red (dashed), changed amber,
 * unchanged dimmed — from GET …/dags/{dag_id}/diff (what `%dag_diff` shows). Pure functions,
 * no DOM: unit-tested with the real server's reply.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import { GROUP_NODE_PREFIX, IGraphModel, buildGraphModel } from './graphmodel';
import type {
  DiffChange,
  IDagInfo,
  IDagVersionDiff,
  IDiffNode
} from './tokens';

/** The colours of changes: the theme's success / error / warning colours (light and dark). */
export const CHANGE_COLORS: Readonly<Record<DiffChange, string>> =
  Object.freeze({
    added: 'var(--jp-success-color1)',
    removed: 'var(--jp-error-color1)',
    changed: 'var(--jp-warn-color1)',
    unchanged: 'var(--jp-border-color1)'
  });

/** The changes in the legend, in the order a reviewer reads them. */
export const CHANGE_ORDER: readonly DiffChange[] = [
  'added',
  'removed',
  'changed',
  'unchanged'
];

/** The mark a change gets in text (the summary list, tooltips). */
const MARKS: Readonly<Record<DiffChange, string>> = {
  added: '+',
  removed: '\u2212',
  changed: '~',
  unchanged: ' '
};

/** An argument value as the diff shows it: JSON, or "(default)" for null (not serialized). */
export function argumentText(value: unknown): string {
  if (value === null || value === undefined) {
    return '(default)';
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 60 ? text.slice(0, 59) + '\u2026' : text;
}

/** The lines describing one task's change (the tooltip and the summary list). */
export function nodeChangeLines(node: IDiffNode): string[] {
  return node.arguments.map(
    a => `${a.name}: ${argumentText(a.old)} \u2192 ${argumentText(a.new)}`
  );
}

/** The diff as a DAG (no states), so it is laid out and drawn as any graph. */
export function diffAsDag(diff: IDagVersionDiff): IDagInfo {
  return {
    dag_id: diff.dag_id,
    description: null,
    schedule: null,
    fileloc: null,
    source: 'notebook',
    updated: null,
    nodes: diff.nodes.map(n => ({
      task_id: n.task_id,
      label: n.label,
      operator: n.operator,
      task_group: n.task_group,
      is_mapped: n.is_mapped,
      is_setup: n.is_setup,
      is_teardown: n.is_teardown,
      trigger_rule: n.trigger_rule,
      state: null,
      try_number: 0,
      map_states: {},
      forced: null
    })),
    edges: diff.edges.map(e => [e.source, e.target] as [string, string]),
    task_groups: diff.task_groups,
    latest_run: null,
    warnings: [],
    findings: []
  };
}

/** The change of several tasks seen as one (a collapsed group). */
function summarizeChanges(changes: DiffChange[]): DiffChange {
  if (changes.every(c => c === changes[0])) {
    return changes[0] ?? 'unchanged';
  }
  return changes.some(c => c !== 'unchanged') ? 'changed' : 'unchanged';
}

/**
 * The drawable graph of a version diff: every task and edge of either version, each with its
 * change and colour. Its structure key differs from any DAG's, so switching between a DAG and
 * its diff always re-lays out.
 *
 * @param diff The server's reply.
 * @param collapsed Ids of the collapsed task groups.
 */
export function buildDiffGraphModel(
  diff: IDagVersionDiff,
  collapsed: ReadonlySet<string> = new Set()
): IGraphModel {
  const dag = diffAsDag(diff);
  const base = buildGraphModel(dag, collapsed);
  const byTask = new Map(diff.nodes.map(n => [n.task_id, n]));
  const members = new Map<string, DiffChange[]>();
  const repOf = new Map<string, string>();
  for (const node of base.nodes) {
    if (node.kind === 'task') {
      repOf.set(node.refId, node.id);
    }
  }
  // Tasks hidden in a collapsed group are represented by the group's node.
  for (const n of diff.nodes) {
    if (!repOf.has(n.task_id)) {
      const group = [...collapsed].find(
        g => n.task_group === g || n.task_group?.startsWith(g + '.')
      );
      if (group) {
        repOf.set(n.task_id, GROUP_NODE_PREFIX + group);
        const list = members.get(group) ?? [];
        list.push(n.change);
        members.set(group, list);
      }
    }
  }
  const nodes = base.nodes.map(node => {
    const d = node.kind === 'task' ? byTask.get(node.refId) : undefined;
    const change: DiffChange = d
      ? d.change
      : summarizeChanges(members.get(node.refId) ?? []);
    return {
      ...node,
      detail: node.detail,
      state: null,
      color: CHANGE_COLORS[change],
      change,
      changeNote: d ? nodeChangeLines(d).join('\n') : ''
    };
  });
  const edgeChanges = new Map<string, DiffChange>();
  for (const e of diff.edges) {
    const a = repOf.get(e.source);
    const b = repOf.get(e.target);
    if (!a || !b || a === b) {
      continue;
    }
    const key = a + '\u0000' + b;
    const prev = edgeChanges.get(key);
    edgeChanges.set(
      key,
      prev && prev !== e.change ? 'changed' : (e.change as DiffChange)
    );
  }
  const structureKey = [
    `diff:${diff.old}:${diff.new}`,
    base.structureKey,
    nodes.map(n => `${n.id}=${n.change}`).join(';'),
    [...edgeChanges].map(([k, c]) => `${k}=${c}`).join(';')
  ].join('\n');
  return { ...base, nodes, edgeChanges, structureKey };
}

/** How many tasks and edges of each kind changed. */
export interface IDiffCounts {
  /** Tasks by change. */
  tasks: Record<DiffChange, number>;
  /** Edges added and removed. */
  edges: { added: number; removed: number };
}

/** Count the changes of a diff. */
export function diffCounts(diff: IDagVersionDiff): IDiffCounts {
  const tasks: Record<DiffChange, number> = {
    added: 0,
    removed: 0,
    changed: 0,
    unchanged: 0
  };
  for (const n of diff.nodes) {
    tasks[n.change]++;
  }
  return {
    tasks,
    edges: {
      added: diff.edges.filter(e => e.change === 'added').length,
      removed: diff.edges.filter(e => e.change === 'removed').length
    }
  };
}

/**
 * The diff in lines of text, most important first, as `%dag_diff` prints it:
 * `+ task audit`, `− task report`, `+ edge extract >> audit`, `~ load.retries: … → 2`.
 */
export function diffSummaryLines(diff: IDagVersionDiff): string[] {
  const lines: string[] = [];
  const tasks = (change: DiffChange): IDiffNode[] =>
    diff.nodes.filter(n => n.change === change);
  for (const change of ['added', 'removed'] as const) {
    for (const n of tasks(change)) {
      lines.push(`${MARKS[change]} task ${n.task_id}`);
    }
  }
  for (const change of ['added', 'removed'] as const) {
    for (const e of diff.edges.filter(e => e.change === change)) {
      lines.push(`${MARKS[change]} edge ${e.source} >> ${e.target}`);
    }
  }
  for (const n of tasks('changed')) {
    for (const line of nodeChangeLines(n)) {
      lines.push(`~ ${n.task_id}.${line}`);
    }
  }
  return lines;
}

/** The one-line headline of a diff: `v2 → v3: 1 added, 1 removed, 1 changed`. */
export function diffHeadline(
  trans: TranslationBundle,
  diff: IDagVersionDiff
): string {
  const c = diffCounts(diff);
  const parts: string[] = [];
  if (c.tasks.added) {
    parts.push(trans._n('%1 task added', '%1 tasks added', c.tasks.added));
  }
  if (c.tasks.removed) {
    parts.push(
      trans._n('%1 task removed', '%1 tasks removed', c.tasks.removed)
    );
  }
  if (c.tasks.changed) {
    parts.push(
      trans._n('%1 task changed', '%1 tasks changed', c.tasks.changed)
    );
  }
  const edges = c.edges.added + c.edges.removed;
  if (edges) {
    parts.push(trans._n('%1 edge changed', '%1 edges changed', edges));
  }
  if (!parts.length) {
    parts.push(
      diff.code_diff
        ? trans.__('same graph, code changed')
        : trans.__('no difference')
    );
  }
  return `v${diff.old} \u2192 v${diff.new}: ${parts.join(', ')}`;
}
