import { nullTranslator } from '@jupyterlab/translation';

import { PinnedRuns, dagAtRun, runLabel } from '../runview';
import { IDagRun, IDagVersionGraph, IKyteService } from '../tokens';
import { mkDag, mkNode, mkTi } from './fixtures';

const trans = nullTranslator.load('kyte_jupyter');

function mkRun(
  run_id: string,
  dag_version: number | null,
  state = 'success',
  forced: Record<string, string> = {}
): IDagRun {
  return {
    run_id,
    state,
    run_type: 'manual',
    logical_date: null,
    start_date: '2026-11-29T20:00:00+00:00',
    end_date: null,
    conf: null,
    dag_version,
    forced
  };
}

/** Version 1 of `shop`: extract >> load (version 2, shown now, added report). */
const v1: IDagVersionGraph = {
  dag_id: 'shop',
  number: 1,
  created_at: '2026-11-29T20:00:00+00:00',
  description: null,
  schedule: null,
  fileloc: null,
  updated: null,
  warnings: [],
  findings: [],
  nodes: [
    {
      task_id: 'extract',
      label: 'extract',
      operator: '@task',
      task_group: null,
      is_mapped: false,
      is_setup: false,
      is_teardown: false,
      trigger_rule: 'all_success'
    },
    {
      task_id: 'load',
      label: 'load',
      operator: '@task',
      task_group: null,
      is_mapped: true,
      is_setup: false,
      is_teardown: false,
      trigger_rule: 'all_success'
    }
  ],
  edges: [['extract', 'load']],
  task_groups: []
};

const now = mkDag({
  dag_id: 'shop',
  nodes: [
    mkNode({ task_id: 'extract', state: 'running' }),
    mkNode({ task_id: 'load', state: null }),
    mkNode({ task_id: 'report', state: null })
  ],
  edges: [
    ['extract', 'load'],
    ['load', 'report']
  ],
  latest_run: {
    run_id: 'r3',
    state: 'running',
    run_type: 'manual',
    logical_date: null,
    start_date: null,
    end_date: null,
    forced: {}
  },
  warnings: ['cell 4 was deleted']
});

describe('the view of a past run', () => {
  it('is the graph of its version with its own task states', () => {
    const run = mkRun('r1', 1, 'failed');
    const view = dagAtRun(now, v1, run, [
      mkTi('extract', 'success', -1, 2),
      mkTi('load', 'success', 0),
      mkTi('load', 'failed', 1)
    ]);
    expect(view.nodes.map(n => n.task_id)).toEqual(['extract', 'load']);
    expect(view.edges).toEqual([['extract', 'load']]);
    expect(view.nodes[0]).toMatchObject({ state: 'success', try_number: 2 });
    expect(view.nodes[1].map_states).toEqual({ '0': 'success', '1': 'failed' });
    expect(view.nodes[1].state).toBe('failed');
    expect(view.latest_run?.run_id).toBe('r1');
    expect(view.latest_run?.state).toBe('failed');
    expect(view.dag_id).toBe('shop');
    expect(view.warnings).toEqual(['cell 4 was deleted']);
  });

  it('uses the current graph when the run has no recorded version', () => {
    const view = dagAtRun(now, null, mkRun('r0', null), [
      mkTi('extract', 'failed')
    ]);
    expect(view.nodes.map(n => [n.task_id, n.state])).toEqual([
      ['extract', 'failed'],
      ['load', null],
      ['report', null]
    ]);
    expect(view.nodes[0].try_number).toBe(1);
    expect(view.nodes[1].try_number).toBe(0);
  });

  it('labels a run with its version and state', () => {
    expect(runLabel(trans, mkRun('manual__1', 3))).toBe(
      'v3 \u00B7 success \u00B7 manual__1'
    );
    expect(runLabel(trans, mkRun('manual__0', null, 'failed'))).toBe(
      'v? \u00B7 failed \u00B7 manual__0'
    );
  });
});

/** A REST client that answers the calls the pinned runs make, and counts them. */
function fakeService(): IKyteService & {
  calls: string[];
  missing: Set<string>;
} {
  const calls: string[] = [];
  const missing = new Set<string>();
  const service = {
    calls,
    missing,
    getVersionGraph: async (_s: string, _d: string, version: number) => {
      calls.push(`version ${version}`);
      return { ...v1, number: version };
    },
    getTaskInstances: async (_s: string, _d: string, runId: string) => {
      calls.push(`tasks ${runId}`);
      if (missing.has(runId)) {
        throw Object.assign(new Error('gone'), { response: { status: 404 } });
      }
      return [mkTi('extract', 'success')];
    }
  };
  return service as unknown as IKyteService & {
    calls: string[];
    missing: Set<string>;
  };
}

describe('pinned runs', () => {
  it('replace the DAG by the run view, reading each version graph once', async () => {
    const service = fakeService();
    const pins = new PinnedRuns(service);
    pins.set('shop', mkRun('r1', 1), 'r3');
    const first = await pins.apply('s', [now]);
    const second = await pins.apply('s', [now]);
    expect(first[0].latest_run?.run_id).toBe('r1');
    expect(second[0].nodes.map(n => n.task_id)).toEqual(['extract', 'load']);
    expect(service.calls).toEqual(['version 1', 'tasks r1', 'tasks r1']);
    expect(pins.get('shop')?.run.run_id).toBe('r1');
  });

  it('unpin when the DAG has a newer run, or the run is gone', async () => {
    const service = fakeService();
    const pins = new PinnedRuns(service);
    pins.set('shop', mkRun('r1', 1), 'r2');
    const shown = await pins.apply('s', [now]);
    expect(shown[0]).toBe(now);
    expect(pins.get('shop')).toBeNull();

    pins.set('shop', mkRun('r9', 1), 'r3');
    service.missing.add('r9');
    expect((await pins.apply('s', [now]))[0]).toBe(now);
    expect(pins.get('shop')).toBeNull();
  });

  it('leave other DAGs alone', async () => {
    const pins = new PinnedRuns(fakeService());
    const other = mkDag({ dag_id: 'other', nodes: [mkNode({ task_id: 'a' })] });
    pins.set('shop', mkRun('r1', 1), 'r3');
    const shown = await pins.apply('s', [now, other]);
    expect(shown[1]).toBe(other);
    pins.set('shop', null, null);
    expect((await pins.apply('s', [now]))[0]).toBe(now);
  });
});
