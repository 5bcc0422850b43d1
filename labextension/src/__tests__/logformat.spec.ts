import {
  LineSplitter,
  filterLines,
  formatLogLine,
  utf8Prefix
} from '../logformat';
import {
  isAirflowKey,
  runDagCode,
  runTaskCode,
  stripAnsi,
  xcomCode
} from '../kernel';

describe('log text', () => {
  it("formats Airflow 3's JSON log lines and leaves other lines alone", () => {
    expect(
      formatLogLine(
        '{"timestamp":"2026-01-01T00:00:00Z","level":"info","event":"Done","logger":"airflow.task"}'
      )
    ).toBe('[2026-01-01T00:00:00Z] INFO - airflow.task - Done');
    expect(formatLogLine('plain text {not json}')).toBe(
      'plain text {not json}'
    );
    expect(formatLogLine('{"no_event": 1}')).toBe('{"no_event": 1}');
    expect(formatLogLine('<b>html</b>')).toBe('<b>html</b>');
    const withError = formatLogLine(
      JSON.stringify({
        event: 'Task failed',
        level: 'error',
        error_detail: [
          {
            exc_type: 'ValueError',
            exc_value: 'asked to fail',
            frames: [{ filename: 'cell.py', lineno: 3, name: 'check' }]
          }
        ]
      })
    );
    expect(withError).toContain('ERROR - Task failed');
    expect(withError).toContain('File "cell.py", line 3, in check');
    expect(withError).toContain('ValueError: asked to fail');
  });

  it('holds back a partial last line until the rest arrives', () => {
    const s = new LineSplitter();
    expect(s.push('one\ntw')).toBe('one\n');
    expect(s.partial).toBe('tw');
    expect(s.push('o\nthree')).toBe('two\n');
    expect(s.push('', true)).toBe('three\n');
    expect(s.push('')).toBe('');
  });

  it('cuts text at a UTF-8 byte count', () => {
    expect(utf8Prefix('abc', 2)).toBe('ab');
    expect(utf8Prefix('é', 2)).toBe('é');
    expect(utf8Prefix('aé', 10)).toBe('aé');
  });

  it('filters lines case-insensitively with line numbers', () => {
    expect(filterLines('a\nERROR x\nb\nerror y', 'error')).toEqual([
      { line: 2, text: 'ERROR x' },
      { line: 4, text: 'error y' }
    ]);
    expect(filterLines('x\nx\nx', 'x', 2)).toHaveLength(2);
  });
});

describe('magic lines run in the kernel', () => {
  it('builds %run_task, %run_dag and %xcom lines', () => {
    expect(runTaskCode('etl', 'g.load')).toBe('%run_task etl g.load');
    expect(runTaskCode('etl', 'load', 'upstream')).toBe(
      '%run_task etl load --upstream'
    );
    expect(runTaskCode('etl', 'load', 'downstream')).toBe(
      '%run_task etl load --downstream'
    );
    expect(runDagCode('etl')).toBe('%run_dag etl');
    expect(xcomCode('etl', 'extract')).toBe('%xcom etl extract');
  });

  it('refuses ids that are not Airflow keys (no code injection)', () => {
    expect(isAirflowKey('my-dag_1.v2')).toBe(true);
    expect(isAirflowKey('a b')).toBe(false);
    expect(isAirflowKey('x;import os')).toBe(false);
    expect(() => runTaskCode('etl', 'load\nimport os')).toThrow(
      'not a valid Airflow id'
    );
    expect(() => runDagCode('')).toThrow();
  });

  it('strips ANSI colours from tracebacks', () => {
    expect(stripAnsi('\u001b[31mValueError\u001b[0m: bad')).toBe(
      'ValueError: bad'
    );
  });
});
