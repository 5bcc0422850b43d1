/**
 * The view of a past run: its DAG version's graph with the run's task states, and the past
 * runs picked per DAG (the model shows their views in place of the DAGs). No DOM: unit-tested.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import { taskForced } from './forced';
import { summarizeStates } from './graphmodel';
import type {
  IDagInfo,
  IDagNode,
  IDagRun,
  IDagVersionGraph,
  IKyteService,
  ITaskInstance,
  TaskState
} from './tokens';

/** A past run shown instead of a DAG's latest run. */
export interface IPinnedRun {
  /** The run. */
  run: IDagRun;
  /** The DAG's latest run id when it was picked: a newer run unpins it (shown live). */
  latestAtPin: string | null;
}

/**
 * The DAG as it was in a past run: the graph of the run's DAG version (the current graph when
 * the run has no recorded version) with that run's task states. Pure: unit-tested.
 *
 * @param current The DAG as the server shows it now (latest run).
 * @param graph The graph of the run's DAG version, or null.
 * @param run The run to show.
 * @param tasks The run's task instances.
 */
export function dagAtRun(
  current: IDagInfo,
  graph: IDagVersionGraph | null,
  run: IDagRun,
  tasks: ITaskInstance[]
): IDagInfo {
  const byTask = new Map<string, ITaskInstance[]>();
  for (const ti of tasks) {
    const list = byTask.get(ti.task_id) ?? [];
    list.push(ti);
    byTask.set(ti.task_id, list);
  }
  const base = graph ?? current;
  const nodes: IDagNode[] = base.nodes.map(n => {
    const tis = byTask.get(n.task_id) ?? [];
    const mapped = tis
      .filter(ti => ti.map_index >= 0)
      .sort((a, b) => a.map_index - b.map_index);
    const unmapped = tis.find(ti => ti.map_index < 0);
    const tryNumber = Math.max(0, ...tis.map(ti => ti.try_number));
    const node: IDagNode = {
      task_id: n.task_id,
      label: n.label,
      operator: n.operator ?? null,
      task_group: n.task_group ?? null,
      is_mapped: !!n.is_mapped,
      is_setup: !!n.is_setup,
      is_teardown: !!n.is_teardown,
      trigger_rule: n.trigger_rule ?? 'all_success',
      state: null,
      try_number: tryNumber,
      map_states: {},
      forced: taskForced(tis)
    };
    if (mapped.length || n.is_mapped) {
      const states: Record<string, TaskState> = {};
      for (const ti of mapped) {
        states[String(ti.map_index)] = ti.state;
      }
      node.map_states = states;
      node.state = mapped.length
        ? summarizeStates(mapped.map(ti => ti.state))
        : (unmapped?.state ?? null);
    } else {
      node.state = unmapped?.state ?? null;
    }
    return node;
  });
  return {
    ...current,
    nodes,
    edges: base.edges.map(([a, b]) => [a, b] as [string, string]),
    task_groups: base.task_groups ?? [],
    latest_run: {
      run_id: run.run_id,
      state: run.state,
      run_type: run.run_type,
      logical_date: run.logical_date,
      start_date: run.start_date,
      end_date: run.end_date,
      forced: run.forced ?? {}
    }
  };
}

/**
 * The label of a run in the dropdown: `v3 · success · manual__2026-…`, and for a what-if run
 * `v3 · failed · what-if (1 forced) · manual__2026-…`.
 */
export function runLabel(trans: TranslationBundle, run: IDagRun): string {
  const version =
    run.dag_version === null || run.dag_version === undefined
      ? trans.__('v?')
      : `v${run.dag_version}`;
  const forced = Object.keys(run.forced ?? {}).length;
  const whatIf = forced
    ? ` \u00B7 ${trans._n('what-if (%1 forced)', 'what-if (%1 forced)', forced)}`
    : '';
  return `${version} \u00B7 ${run.state ?? trans.__('no status')}${whatIf} \u00B7 ${run.run_id}`;
}

/**
 * The past runs picked per DAG, and the views that replace those DAGs in the model. The graph
 * of a DAG version never changes, so it is read once; a run's task states are read each poll
 * while it is shown (it may still be running).
 */
export class PinnedRuns {
  constructor(private readonly _service: IKyteService) {}

  /** The run picked for a DAG, or null (the latest run is shown). */
  get(dagId: string): IPinnedRun | null {
    return this._pins.get(dagId) ?? null;
  }

  /** Pick a past run of a DAG (null: follow the latest run again). */
  set(dagId: string, run: IDagRun | null, latestRunId: string | null): void {
    if (run) {
      this._pins.set(dagId, { run, latestAtPin: latestRunId });
    } else {
      this._pins.delete(dagId);
    }
  }

  /** Forget every pick (another notebook or session). */
  clear(): void {
    this._pins.clear();
    this._graphs.clear();
  }

  /**
   * The DAGs with each picked run's view in place of the DAG. A DAG that has a newer run than
   * when its run was picked, or whose run is gone, is unpinned and shown live.
   */
  async apply(sessionId: string, dags: IDagInfo[]): Promise<IDagInfo[]> {
    const out: IDagInfo[] = [];
    for (const dag of dags) {
      const pin = this._pins.get(dag.dag_id);
      const latest = dag.latest_run?.run_id ?? null;
      if (!pin || latest !== pin.latestAtPin) {
        this._pins.delete(dag.dag_id);
        out.push(dag);
        continue;
      }
      try {
        const version = pin.run.dag_version;
        const [graph, tasks] = await Promise.all([
          version === null || version === undefined
            ? Promise.resolve(null)
            : this._graph(sessionId, dag.dag_id, version),
          this._service.getTaskInstances(sessionId, dag.dag_id, pin.run.run_id)
        ]);
        out.push(dagAtRun(dag, graph, pin.run, tasks));
      } catch (error) {
        if ((error as { response?: Response }).response?.status === 404) {
          this._pins.delete(dag.dag_id); // the run or version is gone: show the DAG live
          out.push(dag);
          continue;
        }
        throw error;
      }
    }
    return out;
  }

  private _graph(
    sessionId: string,
    dagId: string,
    version: number
  ): Promise<IDagVersionGraph> {
    const key = `${sessionId}\u0000${dagId}\u0000${version}`;
    let graph = this._graphs.get(key);
    if (!graph) {
      graph = this._service.getVersionGraph(sessionId, dagId, version);
      graph.catch(() => this._graphs.delete(key));
      this._graphs.set(key, graph);
    }
    return graph;
  }

  private readonly _pins = new Map<string, IPinnedRun>();
  private readonly _graphs = new Map<string, Promise<IDagVersionGraph>>();
}
