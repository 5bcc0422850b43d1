/**
 * DAG fixtures in the shape of GET kyte/sessions/{id}/dags.
 */
import { IDagInfo, IDagNode, ITaskGroup, ITaskInstance } from '../tokens';

/** A node of a DagView reply, the fields not given filled as the server fills them. */
export function mkNode(
  n: Partial<IDagNode> & Pick<IDagNode, 'task_id'>
): IDagNode {
  return {
    label: n.task_id,
    operator: 'PythonOperator',
    task_group: null,
    is_mapped: false,
    is_setup: false,
    is_teardown: false,
    trigger_rule: 'all_success',
    state: null,
    try_number: 0,
    map_states: {},
    forced: null,
    ...n
  };
}

/** A DagView reply, the fields not given filled as the server fills them. */
export function mkDag(
  d: Partial<IDagInfo> & Pick<IDagInfo, 'dag_id' | 'nodes'>
): IDagInfo {
  return {
    description: null,
    schedule: null,
    fileloc: null,
    source: 'notebook',
    updated: null,
    edges: [],
    task_groups: [],
    latest_run: null,
    warnings: [],
    findings: [],
    ...d
  };
}

/** The ETL DAG of the design notes: a task group `g` with two tasks, then `load`. */
export const etlDag: IDagInfo = mkDag({
  dag_id: 'etl',
  description: 'Extract, transform, load',
  schedule: '@daily',
  nodes: [
    mkNode({
      task_id: 'g.extract',
      label: 'extract',
      operator: 'PythonOperator',
      task_group: 'g',
      is_mapped: false,
      state: 'success'
    }),
    mkNode({
      task_id: 'g.transform',
      label: 'transform',
      operator: '@task',
      task_group: 'g',
      is_mapped: false,
      state: 'failed'
    }),
    mkNode({
      task_id: 'load',
      label: 'load',
      operator: 'BashOperator',
      task_group: null,
      is_mapped: false,
      state: 'upstream_failed'
    }),
    mkNode({
      task_id: 'notify',
      label: 'notify',
      operator: 'EmptyOperator',
      task_group: null,
      is_mapped: true,
      state: null,
      map_states: { '0': 'success', '1': 'running', '2': null }
    })
  ],
  edges: [
    ['g.extract', 'g.transform'],
    ['g.transform', 'load'],
    ['g.extract', 'load'],
    ['load', 'notify']
  ],
  task_groups: [{ group_id: 'g', parent: null, label: 'g' }],
  latest_run: {
    run_id: 'manual__2026-01-01T00:00:00+00:00',
    state: 'failed',
    logical_date: '2026-01-01T00:00:00+00:00',
    start_date: '2026-01-01T00:00:01+00:00',
    end_date: '2026-01-01T00:00:09+00:00',
    run_type: 'manual',
    forced: {}
  }
});

/**
 * The three-task DAG `numbers` of examples/tour.ipynb (two `@task`s and a BashOperator in a
 * row), not run yet.
 */
export const tourDag: IDagInfo = mkDag({
  dag_id: 'numbers',
  description: null,
  schedule: '@daily',
  nodes: [
    { ...node('extract', null, null), operator: '@task' },
    { ...node('transform', null, null), operator: '@task' },
    { ...node('report', null, null), operator: 'BashOperator' }
  ],
  edges: [
    ['extract', 'transform'],
    ['transform', 'report']
  ],
  task_groups: [],
  latest_run: null
});

/**
 * A synthetic DAG of `n` tasks: `width` parallel chains joined into a fan-in, every chain in
 * a task group of `groupSize` tasks (no groups when 0), with a few cross edges.
 */
export function syntheticDag(n: number, groupSize = 0, width = 20): IDagInfo {
  const nodes: IDagNode[] = [];
  const edges: [string, string][] = [];
  const groups: ITaskGroup[] = [];
  const states = ['success', 'running', 'failed', 'queued', 'skipped', null];
  const perChain = Math.max(1, Math.ceil((n - 2) / width));
  nodes.push(node('start', null, 'success'));
  let count = 1;
  const ends: string[] = [];
  for (let c = 0; c < width && count < n - 1; c++) {
    let prev = 'start';
    for (let i = 0; i < perChain && count < n - 1; i++) {
      const groupId =
        groupSize > 0 ? `chain_${c}_part_${Math.floor(i / groupSize)}` : null;
      if (groupId && !groups.some(g => g.group_id === groupId)) {
        groups.push({ group_id: groupId, parent: null, label: groupId });
      }
      const local = `task_${c}_${i}`;
      const id = groupId ? `${groupId}.${local}` : local;
      nodes.push(node(id, groupId, states[(c + i) % states.length], local));
      edges.push([prev, id]);
      if (i > 1 && c > 0 && i % 7 === 0) {
        const other = nodes[nodes.length - perChain - 2];
        if (other && other.task_id !== id) {
          edges.push([other.task_id, id]);
        }
      }
      prev = id;
      count++;
    }
    ends.push(prev);
  }
  nodes.push(node('end', null, null));
  for (const e of ends) {
    edges.push([e, 'end']);
  }
  return mkDag({
    dag_id: `synthetic_${n}`,
    description: null,
    schedule: null,
    nodes,
    edges,
    task_groups: groups,
    latest_run: null
  });
}

function node(
  taskId: string,
  group: string | null,
  state: string | null,
  label = taskId
): IDagNode {
  return mkNode({
    task_id: taskId,
    label,
    operator: 'PythonOperator',
    task_group: group,
    is_mapped: false,
    state
  });
}

/** A task instance of a run (GET …/runs/{run_id}/tasks), as the server fills it. */
export function mkTi(
  task_id: string,
  state: string | null,
  map_index = -1,
  try_number = 1,
  forced: string | null = null
): ITaskInstance {
  return {
    task_id,
    map_index,
    state,
    try_number,
    start_date: null,
    end_date: null,
    duration: null,
    operator: null,
    rendered_map_index: null,
    forced
  };
}
