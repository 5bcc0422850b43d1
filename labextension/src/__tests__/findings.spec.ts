import {
  dagFindings,
  findingBadge,
  findingText,
  findingsByTask,
  findingsKey
} from '../findings';
import { GROUP_NODE_PREFIX, buildGraphModel } from '../graphmodel';
import { IDagInfo } from '../tokens';
import serverDags from './fixtures/server_dags_findings.json';

/** The real server's reply for a DAG whose kernel lint found problems. */
const dag = (serverDags as unknown as IDagInfo[])[0];

describe('findings of a DAG, as the server sends them', () => {
  it('groups task findings by task and keeps DAG-level ones for the header', () => {
    const byTask = findingsByTask(dag);
    expect([...byTask.keys()].sort()).toEqual(['double', 'extract', 'g.load']);
    expect(byTask.get('extract')!.map(f => f.field)).toEqual([
      'bash_command',
      'env'
    ]);
    expect(dagFindings(dag).map(f => f.rule)).toEqual([
      'AIR311',
      'unused-param'
    ]);
  });

  it('puts an error badge listing every message on a task with an error', () => {
    const model = buildGraphModel(dag, new Set());
    const extract = model.nodes.find(n => n.id === 'extract')!;
    const badge = findingBadge(extract.findings, extract.refId)!;
    expect(badge.severity).toBe('error');
    expect(badge.count).toBe(2);
    expect(badge.title.split('\n')).toEqual([
      'error undefined (bash_command, line 4): ' +
        '`batch_size` is undefined when rendering for 2026-01-02 00:00',
      'error undefined (env, line 4): ' +
        '`region` is undefined when rendering for 2026-01-02 00:00'
    ]);
  });

  it('puts no badge on a task without findings', () => {
    const model = buildGraphModel(dag, new Set());
    const extract = model.nodes.find(n => n.id === 'extract')!;
    const others = model.nodes.filter(
      n => !['extract', 'double', 'g.load'].includes(n.id)
    );
    expect(extract.findings).toHaveLength(2);
    expect(others.length).toBeGreaterThan(0);
    for (const node of others) {
      expect(node.findings).toEqual([]);
      expect(findingBadge(node.findings, node.refId)).toBeNull();
    }
  });

  it('gives a collapsed group the badge of its tasks, naming each task', () => {
    const model = buildGraphModel(dag, new Set(['g']));
    const group = model.nodes.find(n => n.id === GROUP_NODE_PREFIX + 'g')!;
    const badge = findingBadge(group.findings)!;
    expect(badge.severity).toBe('error');
    expect(badge.title).toBe(
      'g.load: error task_policy:owner-required (line 7): violates the cluster policy ' +
        "task_policy: [owner-required] task 'g.load' has no owner"
    );
  });

  it('gives a warning badge when a task has warnings only', () => {
    const model = buildGraphModel(dag, new Set());
    const double = model.nodes.find(n => n.id === 'double')!;
    const badge = findingBadge(double.findings, double.refId)!;
    expect(badge.severity).toBe('warning');
    expect(badge.count).toBe(1);
    expect(badge.title).toBe(
      'warning task_policy (line 5): the deployment would skip this DAG ' +
        '(task_policy): no mapped tasks'
    );
  });

  it('changes the key exactly when the findings change', () => {
    const model = buildGraphModel(dag, new Set());
    const extract = model.nodes.find(n => n.id === 'extract')!;
    const again = buildGraphModel(dag, new Set()).nodes.find(
      n => n.id === 'extract'
    )!;
    expect(findingsKey(again.findings)).toBe(findingsKey(extract.findings));
    expect(findingsKey(extract.findings.slice(1))).not.toBe(
      findingsKey(extract.findings)
    );
    // Findings never change the layout: the structure key ignores them.
    const clean = buildGraphModel({ ...dag, findings: [] }, new Set());
    expect(clean.structureKey).toBe(model.structureKey);
  });

  it('writes one line per finding for the header', () => {
    expect(dagFindings(dag).map(findingText)).toEqual([
      'warning AIR311 (line 2): ' +
        '`airflow.models.baseoperator.chain` is moved into `airflow.sdk`',
      "warning unused-param: param 'region' is declared but no template reads it"
    ]);
  });
});
