/**
 * The graph model of the DAG viewer: what is drawn for a DAG given which task groups are
 * collapsed, and the colours of task states. Pure functions, no DOM: unit-tested in Node.
 */
import { findingsByTask } from './findings';
import { DiffChange, IDagInfo, IDagNode, IFinding, TaskState } from './tokens';

/**
 * Airflow's task-state colours (`airflow.settings.STATE_COLORS`), so the graph reads like
 * Airflow's own UI. A task with no state uses the theme's border colour instead.
 */
export const STATE_COLORS: Readonly<Record<string, string>> = Object.freeze({
  success: 'green',
  failed: 'red',
  running: 'lime',
  queued: 'gray',
  skipped: 'hotpink',
  upstream_failed: 'orange',
  up_for_retry: 'gold',
  up_for_reschedule: 'turquoise',
  scheduled: 'tan',
  deferred: 'mediumpurple',
  removed: 'lightgrey',
  restarting: 'violet'
});

/** The colour of a task with no state: the theme's border colour (light and dark themes). */
export const NO_STATUS_COLOR = 'var(--jp-border-color1)';

/** The states shown in the legend, in Airflow's order. */
export const LEGEND_STATES: readonly string[] = [
  'success',
  'running',
  'failed',
  'upstream_failed',
  'skipped',
  'up_for_retry',
  'up_for_reschedule',
  'queued',
  'scheduled',
  'deferred',
  'removed',
  'restarting'
];

/**
 * The colour of a task state: Airflow's colour, or the no-status colour for null/unknown.
 */
export function stateColor(state: TaskState | undefined): string {
  return (state && STATE_COLORS[state]) || NO_STATUS_COLOR;
}

/**
 * How urgent a state is when many are summarised into one (collapsed groups, mapped tasks):
 * failures first, then work in progress, then waiting, then done.
 */
const STATE_PRIORITY: readonly string[] = [
  'failed',
  'upstream_failed',
  'up_for_retry',
  'up_for_reschedule',
  'running',
  'restarting',
  'deferred',
  'queued',
  'scheduled',
  'removed',
  'success',
  'skipped'
];

/**
 * One state standing for many: the most urgent one, except that a mix of finished and
 * unstarted tasks counts as not finished (null), and all-skipped stays skipped.
 */
export function summarizeStates(states: Iterable<TaskState>): TaskState {
  let best: TaskState = null;
  let bestRank = Number.POSITIVE_INFINITY;
  let sawNull = false;
  let count = 0;
  for (const state of states) {
    count++;
    if (!state) {
      sawNull = true;
      continue;
    }
    const rank = STATE_PRIORITY.indexOf(state);
    const r = rank < 0 ? STATE_PRIORITY.length : rank;
    if (r < bestRank) {
      best = state;
      bestRank = r;
    }
  }
  if (count === 0) {
    return null;
  }
  if (sawNull && (best === 'success' || best === 'skipped')) {
    // Part done, part not started: not a final state yet.
    return null;
  }
  return best;
}

/**
 * The states of a mapped task's instances, in map-index order. The server sends `map_states`
 * as map index (a string) -> state, e.g. `{"0": "success", "1": "running"}`.
 */
export function mappedStates(node: IDagNode): TaskState[] {
  const ms = node.map_states;
  if (!ms) {
    return [];
  }
  return Object.entries(ms)
    .map(([index, state]) => [Number(index), state] as const)
    .filter(([index]) => Number.isInteger(index) && index >= 0)
    .sort((a, b) => a[0] - b[0])
    .map(([, state]) => state);
}

/** Prefix of the ids of nodes that stand for collapsed task groups. */
export const GROUP_NODE_PREFIX = 'group:';

/**
 * A box drawn in the graph: one task, or one collapsed task group.
 */
export interface IGraphNode {
  /** Unique id in the drawn graph: the task id, or `group:<group_id>` for a collapsed group. */
  id: string;
  /** Whether the node is a task or a collapsed group. */
  kind: 'task' | 'group';
  /** Task id, or the group id of a collapsed group. */
  refId: string;
  /** First line: the task's short label (or the group label). */
  label: string;
  /** Second line: the operator class name (or the number of tasks of the group). */
  detail: string;
  /** The (summarised) state. */
  state: TaskState;
  /** The drawn colour of the state. */
  color: string;
  /** The expanded group the node is drawn in, or null at the top level. */
  parent: string | null;
  /** Whether the task is mapped. */
  isMapped: boolean;
  /** Number of mapped instances (0 when unknown or not mapped). */
  mapCount: number;
  /** Static-check findings of the task (of all its tasks, for a collapsed group). */
  findings: IFinding[];
  /**
   * The outcome a what-if run forced on the task (for a collapsed group, its forced tasks as
   * `task: outcome` lines), or null: drawn as a badge, not as a state colour.
   */
  forced: string | null;
  /** In a version diff: how the task (or a collapsed group's tasks) changed. */
  change?: DiffChange;
  /** In a version diff: the tooltip's lines about the change (changed arguments …). */
  changeNote?: string;
}

/**
 * An expanded task group, drawn as a box around its members.
 */
export interface IGraphGroup {
  /** The group id. */
  id: string;
  /** The group's short label. */
  label: string;
  /** The expanded group holding this one, or null at the top level. */
  parent: string | null;
}

/**
 * The drawable graph of a DAG.
 */
export interface IGraphModel {
  /** The DAG id. */
  dagId: string;
  /** Boxes to draw. */
  nodes: IGraphNode[];
  /** Unique edges between drawn boxes, as `[from id, to id]`. */
  edges: [string, string][];
  /** Expanded groups, outermost first. */
  groups: IGraphGroup[];
  /**
   * A key that changes exactly when the layout must change (nodes, edges, groups, labels):
   * state changes alone keep it, so a poll only recolours.
   */
  structureKey: string;
  /**
   * In a version diff: how each drawn edge changed, by `from + '\u0000' + to` (edges absent
   * from the map are unchanged).
   */
  edgeChanges?: ReadonlyMap<string, DiffChange>;
}

interface IGroupInfo {
  id: string;
  parent: string | null;
  label: string;
}

/**
 * All groups of a DAG by id, including groups only named by tasks or as parents.
 */
function collectGroups(dag: IDagInfo): Map<string, IGroupInfo> {
  const groups = new Map<string, IGroupInfo>();
  for (const g of dag.task_groups ?? []) {
    if (g.group_id) {
      groups.set(g.group_id, {
        id: g.group_id,
        parent: g.parent || null,
        label: g.label || lastPart(g.group_id)
      });
    }
  }
  const ensure = (id: string): void => {
    if (groups.has(id)) {
      return;
    }
    const dot = id.lastIndexOf('.');
    const parent = dot > 0 ? id.slice(0, dot) : null;
    groups.set(id, { id, parent, label: lastPart(id) });
    if (parent) {
      ensure(parent);
    }
  };
  for (const n of dag.nodes) {
    if (n.task_group) {
      ensure(n.task_group);
    }
  }
  for (const g of [...groups.values()]) {
    if (g.parent) {
      ensure(g.parent);
    }
  }
  return groups;
}

function lastPart(id: string): string {
  const dot = id.lastIndexOf('.');
  return dot >= 0 ? id.slice(dot + 1) : id;
}

/** The chain of groups from the outermost to `groupId`, guarding against parent cycles. */
function groupChain(
  groups: Map<string, IGroupInfo>,
  groupId: string | null
): string[] {
  const chain: string[] = [];
  const seen = new Set<string>();
  let g = groupId;
  while (g && !seen.has(g)) {
    seen.add(g);
    chain.push(g);
    g = groups.get(g)?.parent ?? null;
  }
  return chain.reverse();
}

/**
 * Build the drawable graph of a DAG: tasks inside collapsed groups are replaced by one node
 * per outermost collapsed group, edges are re-attached to what is drawn, deduplicated and
 * stripped of self-loops; only groups that still contain something are drawn.
 *
 * @param dag The DAG as served by `GET kyte/sessions/{id}/dags`.
 * @param collapsed Ids of the collapsed task groups.
 */
export function buildGraphModel(
  dag: IDagInfo,
  collapsed: ReadonlySet<string>
): IGraphModel {
  const groups = collectGroups(dag);
  const chains = new Map<string | null, string[]>();
  const chainOf = (g: string | null): string[] => {
    let c = chains.get(g);
    if (!c) {
      c = groupChain(groups, g);
      chains.set(g, c);
    }
    return c;
  };

  /** Drawn id of each task. */
  const repOf = new Map<string, string>();
  const nodes: IGraphNode[] = [];
  const groupMembers = new Map<string, TaskState[]>();
  const groupFindings = new Map<string, IFinding[]>();
  const groupForced = new Map<string, string[]>();
  const byTask = findingsByTask(dag);
  const usedGroups = new Set<string>();

  for (const task of dag.nodes) {
    const chain = chainOf(task.task_group);
    const hiddenBy = chain.find(g => collapsed.has(g));
    if (hiddenBy) {
      const id = GROUP_NODE_PREFIX + hiddenBy;
      repOf.set(task.task_id, id);
      let members = groupMembers.get(hiddenBy);
      if (!members) {
        members = [];
        groupMembers.set(hiddenBy, members);
      }
      const ms = task.is_mapped ? mappedStates(task) : [];
      members.push(ms.length ? summarizeStates(ms) : task.state);
      if (task.forced) {
        groupForced.set(hiddenBy, [
          ...(groupForced.get(hiddenBy) ?? []),
          `${task.task_id}: ${task.forced}`
        ]);
      }
      const found = byTask.get(task.task_id);
      if (found) {
        groupFindings.set(hiddenBy, [
          ...(groupFindings.get(hiddenBy) ?? []),
          ...found
        ]);
      }
      // The collapsed group's own expanded ancestors are still drawn.
      for (const g of chain.slice(0, chain.indexOf(hiddenBy))) {
        usedGroups.add(g);
      }
      continue;
    }
    repOf.set(task.task_id, task.task_id);
    for (const g of chain) {
      usedGroups.add(g);
    }
    const ms = task.is_mapped ? mappedStates(task) : [];
    const state = task.state ?? (ms.length ? summarizeStates(ms) : null);
    nodes.push({
      id: task.task_id,
      kind: 'task',
      refId: task.task_id,
      label:
        task.label || (task.task_group ? lastPart(task.task_id) : task.task_id),
      detail: task.operator || '',
      state,
      color: stateColor(state),
      parent: chain.length ? chain[chain.length - 1] : null,
      isMapped: !!task.is_mapped,
      mapCount: ms.length,
      findings: byTask.get(task.task_id) ?? [],
      forced: task.forced ?? null
    });
  }

  for (const [groupId, members] of groupMembers) {
    const chain = chainOf(groupId);
    const parent = chain.length > 1 ? chain[chain.length - 2] : null;
    const state = summarizeStates(members);
    nodes.push({
      id: GROUP_NODE_PREFIX + groupId,
      kind: 'group',
      refId: groupId,
      label: groups.get(groupId)?.label ?? lastPart(groupId),
      detail: `${members.length} task${members.length === 1 ? '' : 's'}`,
      state,
      color: stateColor(state),
      parent,
      isMapped: false,
      mapCount: 0,
      findings: groupFindings.get(groupId) ?? [],
      forced: groupForced.get(groupId)?.join('\n') ?? null
    });
  }

  const edges: [string, string][] = [];
  const seenEdges = new Set<string>();
  for (const [from, to] of dag.edges) {
    const a = repOf.get(from);
    const b = repOf.get(to);
    if (!a || !b || a === b) {
      continue;
    }
    const key = a + '\u0000' + b;
    if (!seenEdges.has(key)) {
      seenEdges.add(key);
      edges.push([a, b]);
    }
  }

  // Outermost first, so parents are declared before children.
  const drawnGroups: IGraphGroup[] = [...usedGroups]
    .map(id => ({ id, depth: chainOf(id).length }))
    .sort(
      (x, y) => x.depth - y.depth || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)
    )
    .map(({ id }) => {
      const chain = chainOf(id);
      return {
        id,
        label: groups.get(id)?.label ?? lastPart(id),
        parent: chain.length > 1 ? chain[chain.length - 2] : null
      };
    });

  const structureKey = [
    dag.dag_id,
    nodes
      .map(
        n => `${n.id}|${n.label}|${n.detail}|${n.parent ?? ''}|${n.isMapped}`
      )
      .join(';'),
    edges.map(e => e.join('>')).join(';'),
    drawnGroups.map(g => `${g.id}|${g.parent ?? ''}`).join(';')
  ].join('\n');

  return { dagId: dag.dag_id, nodes, edges, groups: drawnGroups, structureKey };
}

/**
 * All task ids of a group and its subgroups.
 */
export function tasksInGroup(dag: IDagInfo, groupId: string): string[] {
  const prefix = groupId + '.';
  const groups = collectGroups(dag);
  return dag.nodes
    .filter(n => {
      if (!n.task_group) {
        return false;
      }
      if (n.task_group === groupId || n.task_group.startsWith(prefix)) {
        return true;
      }
      return groupChain(groups, n.task_group).includes(groupId);
    })
    .map(n => n.task_id);
}
