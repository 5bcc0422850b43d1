/**
 * Turning task-log bytes into readable lines. Pure functions, unit-tested.
 */

/**
 * Terminal escape sequences: CSI (colours such as `ESC[2m`, cursor moves; also the one-byte
 * C1 form), OSC (titles, hyperlinks; ended by BEL or `ESC \`), and the other two-byte escapes.
 */
const ANSI_ESCAPE =
  // eslint-disable-next-line no-control-regex
  /\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]|\u001b[ -/]*[0-~]/g;

/**
 * Remove ANSI escape sequences (the colours of Airflow's console log renderer, of tracebacks,
 * of tools run by a task), keeping the text they colour.
 */
export function stripAnsi(text: string): string {
  return text.includes('\u001b') || text.includes('\u009b')
    ? text.replace(ANSI_ESCAPE, '')
    : text;
}

/**
 * Airflow 3 writes task logs as JSON lines (structlog). Show them the way Airflow's UI does:
 * `[timestamp] LEVEL - logger - event`, plus any exception text. Other lines pass unchanged,
 * except that ANSI colour codes are removed from every line.
 */
export function formatLogLine(line: string): string {
  return stripAnsi(formatRecord(line));
}

function formatRecord(line: string): string {
  const trimmed = line.trimStart();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) {
    return line;
  }
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (!record || typeof record !== 'object' || !('event' in record)) {
    return line;
  }
  const parts: string[] = [];
  if (typeof record.timestamp === 'string') {
    parts.push(`[${record.timestamp}]`);
  }
  if (typeof record.level === 'string') {
    parts.push(record.level.toUpperCase());
  }
  const head = parts.join(' ');
  const logger = typeof record.logger === 'string' ? ` - ${record.logger}` : '';
  const event =
    typeof record.event === 'string'
      ? record.event
      : JSON.stringify(record.event);
  let text = `${head}${logger} - ${event}`;
  const error = record.error_detail ?? record.exception ?? record.exc_info;
  if (typeof error === 'string') {
    text += `\n${error}`;
  } else if (Array.isArray(error)) {
    text += `\n${formatErrorDetail(error)}`;
  }
  return text;
}

/** Airflow's structured exception detail, as a Python-like traceback. */
function formatErrorDetail(detail: unknown[]): string {
  const out: string[] = [];
  for (const exc of detail) {
    if (!exc || typeof exc !== 'object') {
      continue;
    }
    const e = exc as Record<string, unknown>;
    out.push('Traceback (most recent call last):');
    const frames = Array.isArray(e.frames) ? e.frames : [];
    for (const f of frames) {
      const frame = f as Record<string, unknown>;
      out.push(
        `  File "${frame.filename}", line ${frame.lineno}, in ${frame.name}`
      );
    }
    out.push(`${e.exc_type ?? 'Exception'}: ${e.exc_value ?? ''}`);
  }
  return out.join('\n');
}

/**
 * Splits a stream of text chunks into complete lines, holding back a trailing partial line
 * until the rest of it arrives (a log range can end in the middle of a line).
 */
export class LineSplitter {
  /**
   * Add a chunk; return the formatted complete lines it finishes, joined with newlines and
   * ending with one.
   *
   * @param flush Also return the trailing partial line (the log is complete).
   */
  push(chunk: string, flush = false): string {
    const text = this._partial + chunk;
    const lines = text.split('\n');
    this._partial = lines.pop() ?? '';
    if (flush && this._partial) {
      lines.push(this._partial);
      this._partial = '';
    }
    if (lines.length === 0) {
      return '';
    }
    return lines.map(formatLogLine).join('\n') + '\n';
  }

  /** Forget any partial line. */
  reset(): void {
    this._partial = '';
  }

  /** The partial line held back. */
  get partial(): string {
    return this._partial;
  }

  private _partial = '';
}

/**
 * Cut a text so that only its first `bytes` UTF-8 bytes are kept (for stitching log ranges).
 */
export function utf8Prefix(text: string, bytes: number): string {
  const encoded = new TextEncoder().encode(text);
  if (encoded.length <= bytes) {
    return text;
  }
  return new TextDecoder().decode(encoded.slice(0, Math.max(0, bytes)));
}

/**
 * The lines of a text that contain a query (case-insensitive), with their line numbers.
 */
export function filterLines(
  text: string,
  query: string,
  limit = Number.POSITIVE_INFINITY
): { line: number; text: string }[] {
  const q = query.toLowerCase();
  const out: { line: number; text: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    if (lines[i].toLowerCase().includes(q)) {
      out.push({ line: i + 1, text: lines[i] });
    }
  }
  return out;
}

/**
 * A range read from the middle of a log starts mid-line: drop that partial first line, so
 * the view starts at a line. Returns the rest and the UTF-8 length of what was dropped (a
 * range without a line break is kept whole).
 */
export function skipPartialLine(text: string): {
  text: string;
  skippedBytes: number;
} {
  const nl = text.indexOf('\n');
  if (nl < 0) {
    return { text, skippedBytes: 0 };
  }
  return {
    text: text.slice(nl + 1),
    skippedBytes: new TextEncoder().encode(text.slice(0, nl + 1)).length
  };
}
