/**
 * The problems of a failed export, each once, with the cell and line they concern. Pure,
 * unit-tested.
 */
import { IExportProblem } from './tokens';

/** `cell 4, line 2: message` or `cell 4: message`. */
const PROBLEM = /^\s*cell\s+(\d+)(?:\s*,\s*line\s+(\d+))?\s*:\s*([\s\S]*)$/i;

/**
 * One export problem, as the server words it (`"cell 4, line 2: ..."`, or an object with
 * `message`, `cell`, `line`), split into its cell, line and message.
 */
export function parseProblem(problem: unknown): IExportProblem {
  if (problem && typeof problem === 'object') {
    const p = problem as Record<string, unknown>;
    const message =
      typeof p.message === 'string' ? p.message : JSON.stringify(problem);
    const parsed = parseProblem(message);
    return {
      message: parsed.message,
      cell: typeof p.cell === 'number' ? p.cell : parsed.cell,
      line: typeof p.line === 'number' ? p.line : parsed.line
    };
  }
  const text = String(problem);
  const m = PROBLEM.exec(text);
  if (!m) {
    return { message: text.trim() };
  }
  return {
    message: m[3].trim(),
    cell: Number(m[1]),
    line: m[2] !== undefined ? Number(m[2]) : undefined
  };
}

/** The problems of an export error, parsed, each once, in the server's order. */
export function uniqueProblems(problems: unknown[]): IExportProblem[] {
  const seen = new Set<string>();
  const out: IExportProblem[] = [];
  for (const raw of problems) {
    const p = parseProblem(raw);
    const key = `${p.cell ?? ''}|${p.line ?? ''}|${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out;
}

/**
 * The headline of an export error: its message without the problem list the server appends
 * (`"Cannot export x.ipynb:\n  - cell 2: ..."`), so no problem is told twice.
 */
export function errorHeadline(message: string, hasProblems: boolean): string {
  if (!hasProblems) {
    return message;
  }
  const first = message.split('\n')[0].replace(/:\s*$/, '');
  return first.endsWith('.') ? first : first + '.';
}
