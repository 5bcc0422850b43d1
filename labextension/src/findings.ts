/**
 * Static-check findings of a DAG (SPEC §8) as the sidebar shows them: a badge on each task
 * (or collapsed group) with findings, its tooltip listing them, and the DAG-level findings in
 * the DAG header. Pure functions, no DOM: unit-tested in Node.
 */
import { IDagInfo, IFinding } from './tokens';

/** What the badge of one drawn box shows. */
export interface IFindingBadge {
  /** `error` if any finding is an error, else `warning`. */
  severity: 'error' | 'warning';
  /** Number of findings. */
  count: number;
  /** The tooltip: one line per finding, errors first. */
  title: string;
}

/** One line for a finding: `error undefined (bash_command, line 3): message`. */
export function findingText(f: IFinding): string {
  const where = [f.field, f.line ? `line ${f.line}` : null]
    .filter(Boolean)
    .join(', ');
  return `${f.severity} ${f.rule}${where ? ` (${where})` : ''}: ${f.message}`;
}

/**
 * The findings of a DAG by task id. Findings without a task, or naming a task the graph
 * does not have (the DAG changed since), are the DAG's own: see {@link dagFindings}.
 */
export function findingsByTask(dag: IDagInfo): Map<string, IFinding[]> {
  const tasks = new Set(dag.nodes.map(n => n.task_id));
  const out = new Map<string, IFinding[]>();
  for (const f of dag.findings ?? []) {
    if (f.task_id && tasks.has(f.task_id)) {
      let list = out.get(f.task_id);
      if (!list) {
        list = [];
        out.set(f.task_id, list);
      }
      list.push(f);
    }
  }
  return out;
}

/** The findings about the DAG as a whole (shown in the DAG header). */
export function dagFindings(dag: IDagInfo): IFinding[] {
  const tasks = new Set(dag.nodes.map(n => n.task_id));
  return (dag.findings ?? []).filter(f => !f.task_id || !tasks.has(f.task_id));
}

/**
 * The badge for some findings, or null when there are none.
 *
 * @param findings The findings of the drawn box.
 * @param taskId The task the box stands for; lines about other tasks (a collapsed group's
 *   members) start with their task id.
 */
export function findingBadge(
  findings: readonly IFinding[],
  taskId: string | null = null
): IFindingBadge | null {
  if (!findings.length) {
    return null;
  }
  const errors = findings.filter(f => f.severity === 'error');
  const ordered = [...errors, ...findings.filter(f => f.severity !== 'error')];
  const lines = ordered.map(f =>
    f.task_id && f.task_id !== taskId
      ? `${f.task_id}: ${findingText(f)}`
      : findingText(f)
  );
  return {
    severity: errors.length ? 'error' : 'warning',
    count: findings.length,
    title: lines.join('\n')
  };
}

/** A key that changes exactly when the findings (and so the badge) change. */
export function findingsKey(findings: readonly IFinding[]): string {
  return findings
    .map(f => `${f.severity}|${f.rule}|${f.task_id ?? ''}|${f.message}`)
    .join('\u0000');
}
