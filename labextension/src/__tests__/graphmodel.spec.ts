import {
  GROUP_NODE_PREFIX,
  NO_STATUS_COLOR,
  STATE_COLORS,
  buildGraphModel,
  mappedStates,
  stateColor,
  summarizeStates,
  tasksInGroup
} from '../graphmodel';
import { IDagInfo } from '../tokens';
import { etlDag, mkNode } from './fixtures';
import serverDags from './fixtures/server_dags.json';

describe('state colours', () => {
  it('uses Airflow colours for every state', () => {
    expect(stateColor('success')).toBe('green');
    expect(stateColor('failed')).toBe('red');
    expect(stateColor('running')).toBe('lime');
    expect(stateColor('queued')).toBe('gray');
    expect(stateColor('skipped')).toBe('hotpink');
    expect(stateColor('upstream_failed')).toBe('orange');
    expect(stateColor('up_for_retry')).toBe('gold');
    expect(stateColor('scheduled')).toBe('tan');
    expect(stateColor('deferred')).toBe('mediumpurple');
    expect(stateColor('removed')).toBe('lightgrey');
    expect(Object.keys(STATE_COLORS)).toHaveLength(12);
  });

  it('uses the theme border colour for no status and unknown states', () => {
    expect(stateColor(null)).toBe(NO_STATUS_COLOR);
    expect(stateColor(undefined)).toBe(NO_STATUS_COLOR);
    expect(stateColor('something_new')).toBe(NO_STATUS_COLOR);
    expect(NO_STATUS_COLOR).toMatch(/^var\(--jp-/);
  });

  it('summarises states by urgency', () => {
    expect(summarizeStates(['success', 'failed', 'running'])).toBe('failed');
    expect(summarizeStates(['success', 'running'])).toBe('running');
    expect(summarizeStates(['success', 'success'])).toBe('success');
    expect(summarizeStates(['success', null])).toBeNull();
    expect(summarizeStates(['skipped', 'success'])).toBe('success');
    expect(summarizeStates([])).toBeNull();
  });
});

describe('buildGraphModel', () => {
  it('draws every task and edge with groups expanded', () => {
    const m = buildGraphModel(etlDag, new Set());
    expect(m.nodes.map(n => n.id)).toEqual([
      'g.extract',
      'g.transform',
      'load',
      'notify'
    ]);
    expect(m.edges).toEqual([
      ['g.extract', 'g.transform'],
      ['g.transform', 'load'],
      ['g.extract', 'load'],
      ['load', 'notify']
    ]);
    expect(m.groups).toEqual([{ id: 'g', label: 'g', parent: null }]);
    const extract = m.nodes[0];
    expect(extract.label).toBe('extract');
    expect(extract.detail).toBe('PythonOperator');
    expect(extract.parent).toBe('g');
    expect(extract.color).toBe('green');
    expect(m.nodes[2].color).toBe('orange');
  });

  it('summarises a mapped task from its instances', () => {
    const m = buildGraphModel(etlDag, new Set());
    const notify = m.nodes.find(n => n.id === 'notify')!;
    expect(notify.isMapped).toBe(true);
    expect(notify.mapCount).toBe(3);
    expect(notify.state).toBe('running');
    const failed = buildGraphModel(
      {
        ...etlDag,
        nodes: etlDag.nodes.map(n =>
          n.task_id === 'notify'
            ? { ...n, map_states: { '0': 'success', '1': 'failed' } }
            : n
        )
      },
      new Set()
    );
    expect(failed.nodes.find(n => n.id === 'notify')!.state).toBe('failed');
  });

  it('reads map_states as map index -> state, in index order', () => {
    const node = {
      ...etlDag.nodes[3],
      map_states: { '10': 'failed', '2': 'success', '0': null }
    };
    expect(mappedStates(node)).toEqual([null, 'success', 'failed']);
  });

  it("reads the real server's reply: a mapped task's instance states", () => {
    // Written by tests/server/test_frontend_fixtures.py from the server's own reply.
    const dags = serverDags as unknown as IDagInfo[];
    const double = dags[0].nodes.find(n => n.task_id === 'double')!;
    expect(double.is_mapped).toBe(true);
    expect(mappedStates(double)).toEqual(['success', 'running', null]);
    const drawn = buildGraphModel(dags[0], new Set()).nodes.find(
      n => n.id === 'double'
    )!;
    expect(drawn.mapCount).toBe(3);
    expect(drawn.state).toBe('running');
  });

  it('replaces a collapsed group by one node and re-attaches, dedupes and drops self edges', () => {
    const m = buildGraphModel(etlDag, new Set(['g']));
    const gid = GROUP_NODE_PREFIX + 'g';
    expect(m.nodes.map(n => n.id).sort()).toEqual(
      [gid, 'load', 'notify'].sort()
    );
    expect(m.edges).toEqual([
      [gid, 'load'],
      ['load', 'notify']
    ]);
    expect(m.groups).toEqual([]);
    const g = m.nodes.find(n => n.id === gid)!;
    expect(g.kind).toBe('group');
    expect(g.detail).toBe('2 tasks');
    expect(g.state).toBe('failed');
    expect(g.color).toBe('red');
  });

  it('handles nested groups, collapsing the outermost collapsed one', () => {
    const dag: IDagInfo = {
      ...etlDag,
      nodes: [
        mkNode({
          task_id: 'a.b.t1',
          label: 't1',
          operator: 'X',
          task_group: 'a.b',
          is_mapped: false,
          state: null
        }),
        mkNode({
          task_id: 'a.t2',
          label: 't2',
          operator: 'X',
          task_group: 'a',
          is_mapped: false,
          state: 'success'
        }),
        mkNode({
          task_id: 'top',
          label: 'top',
          operator: 'X',
          task_group: null,
          is_mapped: false,
          state: null
        })
      ],
      edges: [
        ['a.b.t1', 'a.t2'],
        ['a.t2', 'top']
      ],
      // Only the inner group is listed: the outer one is inferred from `parent`.
      task_groups: [{ group_id: 'a.b', parent: 'a', label: 'b' }]
    };
    const open = buildGraphModel(dag, new Set());
    expect(open.groups.map(g => [g.id, g.parent])).toEqual([
      ['a', null],
      ['a.b', 'a']
    ]);
    expect(open.nodes.find(n => n.id === 'a.b.t1')!.parent).toBe('a.b');

    const inner = buildGraphModel(dag, new Set(['a.b']));
    expect(inner.groups.map(g => g.id)).toEqual(['a']);
    const innerNode = inner.nodes.find(n => n.id === 'group:a.b')!;
    expect(innerNode.parent).toBe('a');
    expect(inner.edges).toEqual([
      ['group:a.b', 'a.t2'],
      ['a.t2', 'top']
    ]);

    const both = buildGraphModel(dag, new Set(['a', 'a.b']));
    expect(both.nodes.map(n => n.id).sort()).toEqual(['group:a', 'top']);
    expect(both.nodes.find(n => n.id === 'group:a')!.detail).toBe('2 tasks');
    expect(both.edges).toEqual([['group:a', 'top']]);
    expect(tasksInGroup(dag, 'a').sort()).toEqual(['a.b.t1', 'a.t2']);
  });

  it('keeps the structure key across state changes and changes it with the structure', () => {
    const a = buildGraphModel(etlDag, new Set());
    const recoloured = buildGraphModel(
      { ...etlDag, nodes: etlDag.nodes.map(n => ({ ...n, state: 'running' })) },
      new Set()
    );
    expect(recoloured.structureKey).toBe(a.structureKey);
    const collapsed = buildGraphModel(etlDag, new Set(['g']));
    expect(collapsed.structureKey).not.toBe(a.structureKey);
    const moreEdges = buildGraphModel(
      { ...etlDag, edges: [...etlDag.edges, ['g.extract', 'notify']] },
      new Set()
    );
    expect(moreEdges.structureKey).not.toBe(a.structureKey);
  });

  it('ignores edges to unknown tasks', () => {
    const m = buildGraphModel(
      {
        ...etlDag,
        edges: [
          ['nope', 'load'],
          ['load', 'notify']
        ]
      },
      new Set()
    );
    expect(m.edges).toEqual([['load', 'notify']]);
  });
});
