import {
  skipPartialLine,
  LineSplitter,
  filterLines,
  formatLogLine,
  stripAnsi,
  utf8Prefix
} from '../logformat';
import { isAirflowKey, runDagCode, runTaskCode, xcomCode } from '../kernel';

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

  it("removes the colour codes of Airflow's console renderer", () => {
    // A line as Airflow's structlog ConsoleRenderer writes it (dim timestamp, coloured level).
    const line =
      '\u001b[2m2026-01-01T00:00:00.000000Z\u001b[0m [\u001b[32m\u001b[1minfo     \u001b[0m] ' +
      '\u001b[1mTask started                  \u001b[0m \u001b[36mlogger\u001b[0m=\u001b[35mtask.stdout\u001b[0m';
    expect(stripAnsi(line)).toBe(
      '2026-01-01T00:00:00.000000Z [info     ] Task started                   logger=task.stdout'
    );
    expect(formatLogLine(line)).toBe(stripAnsi(line));
    // 256 colours and truecolour, cursor and erase codes, OSC 8 hyperlinks, charset escapes.
    expect(
      stripAnsi(
        '\u001b[38;5;196mred\u001b[39m \u001b[48;2;0;0;0mbg\u001b[49m\u001b[2K\u001b[1G ' +
          '\u001b]8;;https://x.test\u0007link\u001b]8;;\u001b\\ \u001b(Bdone\u009b0m'
      )
    ).toBe('red bg link done');
    expect(stripAnsi('ValueError: bad')).toBe('ValueError: bad');
    expect(stripAnsi('')).toBe('');
  });

  it('removes colour codes inside JSON log records and across chunk ends', () => {
    expect(
      formatLogLine(
        JSON.stringify({
          timestamp: '2026-01-01T00:00:00Z',
          level: 'error',
          event: '\u001b[31mboom\u001b[0m',
          error_detail: [
            {
              exc_type: 'ValueError',
              exc_value: '\u001b[1mbad\u001b[0m',
              frames: []
            }
          ]
        })
      )
    ).toBe(
      '[2026-01-01T00:00:00Z] ERROR - boom\nTraceback (most recent call last):\nValueError: bad'
    );
    // A log range can end inside an escape sequence: the partial line waits for the rest.
    const s = new LineSplitter();
    expect(s.push('plain\n\u001b[3')).toBe('plain\n');
    expect(s.push('1mred\u001b[0')).toBe('');
    expect(s.push('m text\n')).toBe('red text\n');
    expect(s.push('\u001b[1mlast\u001b[0m', true)).toBe('last\n');
  });

  it('starts a range read from mid-log at a line (12.6)', () => {
    expect(skipPartialLine('ial line\nnext line\n')).toEqual({
      text: 'next line\n',
      skippedBytes: 9
    });
    // Bytes, not characters: the log is UTF-8.
    expect(skipPartialLine('é\nrest').skippedBytes).toBe(3);
    expect(skipPartialLine('no break yet')).toEqual({
      text: 'no break yet',
      skippedBytes: 0
    });
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
    // executeInKernel cleans what the magics print with the log viewer's stripAnsi.
    expect(stripAnsi('\u001b[31mValueError\u001b[0m: bad')).toBe(
      'ValueError: bad'
    );
  });
});
