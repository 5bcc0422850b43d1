import { nullTranslator } from '@jupyterlab/translation';

import { forcedList, forcedTitle, taskForced } from '../forced';
import { buildGraphModel } from '../graphmodel';
import { dagAtRun, runLabel } from '../runview';
import type { IDagInfo, IDagRun, ITaskInstance } from '../tokens';
// Replies of the real server after `%run_dag shop --fail load` (tests/server/
// test_versions_api.py): the DAG with its latest run, and the DAG's runs, newest first.
import { mkTi } from './fixtures';
import serverDags from './fixtures/server_dags_forced.json';
import serverRuns from './fixtures/server_runs_forced.json';

const trans = nullTranslator.load('kyte_jupyter');
const dag = serverDags as unknown as IDagInfo;
const runs = serverRuns as IDagRun[];

/** A failed task instance of `task_id`, forced or not. */
function ti(
  task_id: string,
  map_index: number,
  forced: string | null
): ITaskInstance {
  return mkTi(task_id, 'failed', map_index, 1, forced);
}

describe('the forced badge (the real server reply)', () => {
  it('is on the forced task only, with its outcome, and keeps the state colour', () => {
    const model = buildGraphModel(dag, new Set());
    const byId = new Map(model.nodes.map(n => [n.id, n]));
    expect(byId.get('load')?.forced).toBe('fail');
    expect(byId.get('load')?.state).toBe('failed');
    expect(byId.get('load')?.color).toBe('red'); // Airflow's failed colour, not a new one
    expect(byId.get('extract')?.forced).toBeNull();
    expect(byId.get('audit')?.forced).toBeNull();
  });

  it('is on a collapsed group holding a forced task, naming it', () => {
    const grouped: IDagInfo = {
      ...dag,
      nodes: dag.nodes.map(n =>
        n.task_id === 'load' ? { ...n, task_group: 'g' } : n
      ),
      task_groups: [{ group_id: 'g', parent: null, label: 'g' }]
    };
    const model = buildGraphModel(grouped, new Set(['g']));
    expect(model.nodes.find(n => n.id === 'group:g')?.forced).toBe(
      'load: fail'
    );
  });

  it('names the run as a what-if run in the header and the run selector', () => {
    expect(forcedList(dag.latest_run)).toEqual(['load: fail']);
    expect(forcedList(null)).toEqual([]);
    expect(runLabel(trans, runs[0])).toBe(
      'v3 \u00B7 failed \u00B7 what-if (1 forced) \u00B7 manual__RUN_3'
    );
    expect(runLabel(trans, runs[1])).toBe(
      'v2 \u00B7 success \u00B7 manual__RUN_2'
    );
    expect(forcedTitle(trans, 'fail')).toContain('fail');
  });

  it('follows a past run picked in the selector (its task instances)', () => {
    const view = dagAtRun(dag, null, runs[1], [ti('load', -1, null)]);
    expect(view.nodes.find(n => n.task_id === 'load')?.forced).toBeNull();
    expect(view.latest_run?.forced).toEqual({});
    const forcedView = dagAtRun(dag, null, runs[0], [ti('load', -1, 'fail')]);
    expect(forcedView.nodes.find(n => n.task_id === 'load')?.forced).toBe(
      'fail'
    );
    expect(forcedView.latest_run?.forced).toEqual({ load: 'fail' });
  });
});

describe('taskForced', () => {
  it('reads an unmapped instance, or lists the forced mapped instances in order', () => {
    expect(taskForced([])).toBeNull();
    expect(taskForced([ti('t', -1, 'skip')])).toBe('skip');
    expect(
      taskForced([ti('t', 2, 'skip'), ti('t', 0, 'fail'), ti('t', 1, null)])
    ).toBe('[0] fail, [2] skip');
  });
});
