import { nullTranslator } from '@jupyterlab/translation';

import {
  CHANGE_COLORS,
  argumentText,
  buildDiffGraphModel,
  diffCounts,
  diffHeadline,
  diffSummaryLines
} from '../diffmodel';
import { buildGraphModel } from '../graphmodel';
import type { IDagVersionDiff } from '../tokens';
import { mkDag, mkNode } from './fixtures';
// GET …/dags/shop/diff?old=2&new=3 of the real server (tests/server/test_versions_api.py):
// load got retries=2, report was removed, audit (downstream of extract) was added.
import serverDiff from './fixtures/server_diff.json';

const trans = nullTranslator.load('kyte_jupyter');
const diff = serverDiff as IDagVersionDiff;

describe('buildDiffGraphModel (the real server reply)', () => {
  const model = buildDiffGraphModel(diff);

  it('draws every task of either version, each with its change and colour', () => {
    const byId = new Map(model.nodes.map(n => [n.id, n]));
    expect([...byId.keys()].sort()).toEqual([
      'audit',
      'extract',
      'load',
      'report'
    ]);
    expect(byId.get('audit')?.change).toBe('added');
    expect(byId.get('report')?.change).toBe('removed');
    expect(byId.get('load')?.change).toBe('changed');
    expect(byId.get('extract')?.change).toBe('unchanged');
    expect(byId.get('audit')?.color).toBe(CHANGE_COLORS.added);
    expect(byId.get('report')?.color).toBe(CHANGE_COLORS.removed);
    expect(byId.get('load')?.color).toBe(CHANGE_COLORS.changed);
    // No state in a diff: its boxes never read as a run's states.
    expect(model.nodes.every(n => n.state === null && !n.forced)).toBe(true);
  });

  it('says in the tooltip which arguments changed', () => {
    const load = model.nodes.find(n => n.id === 'load')!;
    expect(load.changeNote).toBe('retries: (default) \u2192 2');
  });

  it('draws the removed edge too, and marks every edge', () => {
    expect(model.edges).toEqual(
      expect.arrayContaining([
        ['extract', 'load'],
        ['extract', 'audit'],
        ['load', 'report']
      ])
    );
    expect(model.edges).toHaveLength(3);
    const edges = model.edgeChanges!;
    expect(edges.get('extract\u0000audit')).toBe('added');
    expect(edges.get('load\u0000report')).toBe('removed');
    expect(edges.get('extract\u0000load')).toBe('unchanged');
  });

  it('never shares a layout key with the DAG itself', () => {
    const dag = mkDag({
      dag_id: 'shop',
      nodes: ['extract', 'load', 'audit', 'report'].map(t =>
        mkNode({ task_id: t, operator: '@task' })
      ),
      edges: diff.edges.map(e => [e.source, e.target] as [string, string])
    });
    expect(model.structureKey).not.toBe(
      buildGraphModel(dag, new Set()).structureKey
    );
  });
});

describe('a diff in text', () => {
  it('lists the changes as %dag_diff does, most important first', () => {
    expect(diffSummaryLines(diff)).toEqual([
      '+ task audit',
      '\u2212 task report',
      '+ edge extract >> audit',
      '\u2212 edge load >> report',
      '~ load.retries: (default) \u2192 2'
    ]);
  });

  it('counts and headlines the changes', () => {
    expect(diffCounts(diff)).toEqual({
      tasks: { added: 1, removed: 1, changed: 1, unchanged: 1 },
      edges: { added: 1, removed: 1 }
    });
    expect(diffHeadline(trans, diff)).toBe(
      'v2 \u2192 v3: 1 task added, 1 task removed, 1 task changed, 2 edges changed'
    );
    const same = { ...diff, nodes: [], edges: [], code_diff: '' };
    expect(diffHeadline(trans, same)).toBe('v2 \u2192 v3: no difference');
    expect(diffHeadline(trans, { ...same, code_diff: '@@' })).toBe(
      'v2 \u2192 v3: same graph, code changed'
    );
  });

  it('shows argument values as JSON, defaults by name, long values cut', () => {
    expect(argumentText(null)).toBe('(default)');
    expect(argumentText(2)).toBe('2');
    expect(argumentText('x')).toBe('x');
    expect(argumentText({ a: [1] })).toBe('{"a":[1]}');
    expect(argumentText('y'.repeat(100))).toHaveLength(60);
  });
});

describe('a diff with task groups collapsed', () => {
  it('marks a collapsed group by its tasks: changed when they differ', () => {
    const grouped: IDagVersionDiff = {
      ...diff,
      nodes: diff.nodes.map(n =>
        n.task_id === 'load' || n.task_id === 'audit'
          ? {
              ...n,
              task_id: `g.${n.task_id}`,
              task_group: 'g',
              label: n.task_id
            }
          : n
      ),
      edges: [
        { source: 'extract', target: 'g.load', change: 'unchanged' },
        { source: 'extract', target: 'g.audit', change: 'added' }
      ],
      task_groups: [{ group_id: 'g', parent: null, label: 'g' }]
    };
    const model = buildDiffGraphModel(grouped, new Set(['g']));
    const group = model.nodes.find(n => n.id === 'group:g')!;
    expect(group.change).toBe('changed');
    // Two edges into the group, one added: the drawn edge is changed.
    expect(model.edgeChanges!.get('extract\u0000group:g')).toBe('changed');
  });
});
