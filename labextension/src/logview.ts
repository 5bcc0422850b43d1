/**
 * The task-log viewer: latest try with a selector for older tries, followed live by polling
 * with a byte offset, rendered as text only, filterable, and reading large logs by range
 * (the tail first, earlier parts on demand).
 */
import {
  ITranslator,
  TranslationBundle,
  nullTranslator
} from '@jupyterlab/translation';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import {
  LineSplitter,
  filterLines,
  formatLogLine,
  skipPartialLine,
  utf8Prefix
} from './logformat';
import { IKyteService, ILogSearch, ITaskInstance } from './tokens';

/** Which log to show. */
export interface ILogTarget {
  /** The session. */
  sessionId: string;
  /** The DAG. */
  dagId: string;
  /** The task. */
  taskId: string;
  /** The run whose log to show; null when the DAG has not run yet. */
  runId: string | null;
  /** Whether the task is mapped (then a map-index selector is shown). */
  isMapped: boolean;
}

/** Logs larger than this open at their tail. */
const TAIL_THRESHOLD = 512 * 1024;
/** How much of the tail to read first, and how much more "Load earlier" reads. */
const RANGE = 256 * 1024;
/** At most this much text is kept in the view. */
const MAX_TEXT = 4 * 1024 * 1024;
/** Filter results shown at most. */
const MAX_MATCHES = 5000;

/**
 * A widget showing one task's log.
 */
export class LogView extends Widget {
  constructor(
    private readonly _service: IKyteService,
    translator: ITranslator = nullTranslator
  ) {
    super();
    const trans = (this._trans = translator.load('kyte_jupyter'));
    this.addClass('jp-kyte-LogView');
    this.title.label = trans.__('Task log');
    this.title.closable = true;

    const bar = el('div', 'jp-kyte-LogView-toolbar');
    this._heading = el('span', 'jp-kyte-LogView-heading');
    this._trySelect = el('select', 'jp-kyte-LogView-try') as HTMLSelectElement;
    this._trySelect.title = trans.__('Which try of the task to show');
    this._mapSelect = el('select', 'jp-kyte-LogView-map') as HTMLSelectElement;
    this._mapSelect.title = trans.__('Which mapped instance to show');
    this._filter = el(
      'input',
      'jp-kyte-LogView-filter jp-mod-styled'
    ) as HTMLInputElement;
    this._filter.type = 'search';
    this._filter.placeholder = trans.__('Filter lines');
    this._filter.setAttribute('aria-label', trans.__('Filter log lines'));
    const followLabel = el('label', 'jp-kyte-LogView-follow');
    this._follow = el('input') as HTMLInputElement;
    this._follow.type = 'checkbox';
    this._follow.checked = true;
    followLabel.append(
      this._follow,
      document.createTextNode(' ' + trans.__('Follow'))
    );
    this._status = el('span', 'jp-kyte-LogView-status');
    const tryLabel = el('label', 'jp-kyte-LogView-tryLabel');
    tryLabel.append(
      document.createTextNode(trans.__('Try') + ' '),
      this._trySelect
    );
    this._mapLabel = el('label', 'jp-kyte-LogView-mapLabel');
    this._mapLabel.append(
      document.createTextNode(trans.__('Index') + ' '),
      this._mapSelect
    );
    this._mapLabel.hidden = true;
    bar.append(
      this._heading,
      tryLabel,
      this._mapLabel,
      this._filter,
      followLabel,
      this._status
    );

    this._earlier = el(
      'button',
      'jp-kyte-LogView-earlier jp-mod-styled'
    ) as HTMLButtonElement;
    this._earlier.type = 'button';
    this._earlier.hidden = true;
    this._message = el('div', 'jp-kyte-LogView-message');
    this._pre = el('pre', 'jp-kyte-LogView-text') as HTMLPreElement;
    this._body = el('div', 'jp-kyte-LogView-body');
    this._body.append(this._earlier, this._message, this._pre);
    this.node.append(bar, this._body);

    this._trySelect.addEventListener('change', () => {
      const v = this._trySelect.value;
      this._latest = v === 'latest';
      this._try = this._latest ? this._try : Number(v);
      this._restart();
    });
    this._mapSelect.addEventListener('change', () => {
      this._mapIndex = Number(this._mapSelect.value);
      this._latest = true;
      this._restart();
    });
    this._filter.addEventListener('input', () => this._scheduleFilter());
    this._earlier.addEventListener('click', () => void this._loadEarlier());
    this._follow.addEventListener('change', () => {
      if (this._follow.checked) {
        this._scrollToEnd();
      }
    });

    this._poll = new Poll({
      auto: false,
      factory: () => this._tick(),
      frequency: { interval: 500, backoff: false, max: 5000 },
      name: 'kyte:log',
      standby: () => !this.isVisible || document.visibilityState === 'hidden'
    });
  }

  /** The log being shown. */
  get target(): ILogTarget | null {
    return this._target;
  }

  /** The whole text currently loaded (formatted). */
  get text(): string {
    return this._chunks.join('');
  }

  /**
   * Show another task's log (or the same task in another run).
   */
  setTarget(target: ILogTarget): void {
    const same =
      this._target &&
      this._target.sessionId === target.sessionId &&
      this._target.dagId === target.dagId &&
      this._target.taskId === target.taskId &&
      this._target.runId === target.runId;
    this._target = { ...target };
    this.title.label = this._trans.__('Log: %1', target.taskId);
    this.title.caption = this._trans.__(
      'Log of task %1 of DAG %2',
      target.taskId,
      target.dagId
    );
    this._heading.textContent = `${target.dagId} \u203A ${target.taskId}`;
    if (same) {
      return;
    }
    this._latest = true;
    this._mapIndex = target.isMapped ? Math.max(0, this._mapIndex) : -1;
    this._mapLabel.hidden = !target.isMapped;
    this._mapsLoadedFor = null;
    this._restart();
  }

  /** Follow a new run of the same DAG (when the user follows the latest try). */
  setRun(runId: string | null): void {
    if (!this._target || this._target.runId === runId || !this._latest) {
      return;
    }
    this.setTarget({ ...this._target, runId });
  }

  /** Show the latest try again and read the log from the start (after a new run). */
  followLatest(): void {
    this._latest = true;
    this._restart();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    this._abort?.abort();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  protected onAfterAttach(): void {
    void this._poll.start();
  }

  private _restart(): void {
    this._generation++;
    this._abort?.abort();
    this._chunks = [];
    this._loaded = 0;
    this._triesKey = '';
    this._size = 0;
    this._next = 0;
    this._head = 0;
    this._complete = false;
    this._splitter.reset();
    this._pre.textContent = '';
    this._earlier.hidden = true;
    this._setMessage('');
    this._status.textContent = '';
    if (this._latest) {
      this._try = undefined;
    }
    this._poll.frequency = { interval: 500, backoff: false, max: 5000 };
    void this._poll.refresh();
  }

  private async _tick(): Promise<void> {
    const target = this._target;
    if (!target) {
      return;
    }
    if (!target.runId) {
      this._setMessage(
        this._trans.__(
          'This DAG has not run yet. Run the task from its context menu (right-click) or with %run_task %1 %2 in the notebook, and its log appears here.',
          target.dagId,
          target.taskId
        )
      );
      this._status.textContent = '';
      return;
    }
    if (target.isMapped && this._mapsLoadedFor !== target.runId) {
      await this._loadMapIndexes(target);
    }
    const generation = this._generation;
    // Read until caught up (a few ranges per tick at most, to stay responsive).
    for (let i = 0; i < 8 && generation === this._generation; i++) {
      const more = await this._fetchOnce(target, generation);
      if (!more) {
        break;
      }
    }
  }

  /** Read one range; returns whether more is available right away. */
  private async _fetchOnce(
    target: ILogTarget,
    generation: number
  ): Promise<boolean> {
    this._abort = new AbortController();
    let chunk;
    try {
      chunk = await this._service.getLog(
        target.sessionId,
        target.dagId,
        target.runId!,
        target.taskId,
        {
          tryNumber:
            this._try !== undefined && this._try >= 1 ? this._try : undefined,
          offset: this._next,
          mapIndex: this._mapIndex,
          limit: RANGE
        },
        { signal: this._abort.signal }
      );
    } catch (error) {
      if (
        generation !== this._generation ||
        (error as Error).name === 'AbortError'
      ) {
        return false;
      }
      const status = (error as { response?: Response }).response?.status;
      this._setMessage(
        status === 404
          ? this._trans.__(
              'No log yet for %1 in this run: the task has not started. It appears here as soon as it runs.',
              target.taskId
            )
          : this._trans.__(
              'Could not read the log: %1',
              (error as Error).message
            )
      );
      return false;
    }
    if (generation !== this._generation) {
      return false;
    }
    this._setMessage('');
    this._updateTries(chunk.tries, chunk.try_number);

    // Following the latest try and a newer try started: switch to it.
    const newest = chunk.tries.length
      ? Math.max(...chunk.tries)
      : chunk.try_number;
    if (this._latest && this._try !== undefined && newest > this._try) {
      this._restart();
      return false;
    }
    this._try = chunk.try_number;

    // A large log opens at its tail.
    if (
      this._next === 0 &&
      this._chunks.length === 0 &&
      chunk.size > TAIL_THRESHOLD
    ) {
      this._head = Math.max(0, chunk.size - RANGE);
      this._next = this._head;
      this._earlier.hidden = false;
      this._updateEarlierLabel();
      return true;
    }

    this._size = chunk.size;
    this._complete = chunk.complete;
    const caughtUp = chunk.next_offset >= chunk.size;
    let raw = chunk.text;
    if (
      this._chunks.length === 0 &&
      chunk.offset > 0 &&
      chunk.offset === this._head
    ) {
      // The tail of a large log: start the view at a line, not mid-line.
      const { text: rest, skippedBytes } = skipPartialLine(raw);
      raw = rest;
      this._head += skippedBytes;
      this._updateEarlierLabel();
    }
    const text = this._splitter.push(raw, chunk.complete && caughtUp);
    if (chunk.next_offset > this._next || text) {
      this._next = chunk.next_offset;
      if (text) {
        this._append(text);
      }
    }
    this._updateStatus(chunk.state);
    if (caughtUp) {
      // Done: check rarely for a new try; otherwise keep following.
      this._poll.frequency = {
        interval: chunk.complete ? 2000 : 500,
        backoff: false,
        max: 5000
      };
    }
    return !caughtUp && chunk.next_offset > chunk.offset;
  }

  private async _loadMapIndexes(target: ILogTarget): Promise<void> {
    let instances: ITaskInstance[] = [];
    try {
      instances = await this._service.getTaskInstances(
        target.sessionId,
        target.dagId,
        target.runId!
      );
    } catch {
      return;
    }
    const indexes = instances
      .map(ti => (ti.task_id === target.taskId ? (ti.map_index ?? -1) : -1))
      .filter(i => i >= 0)
      .sort((a, b) => a - b);
    this._mapsLoadedFor = target.runId;
    this._mapSelect.replaceChildren(
      ...indexes.map(i => {
        const o = document.createElement('option');
        o.value = String(i);
        o.textContent = String(i);
        return o;
      })
    );
    if (indexes.length && !indexes.includes(this._mapIndex)) {
      this._mapIndex = indexes[0];
    }
    this._mapSelect.value = String(this._mapIndex);
  }

  private async _loadEarlier(): Promise<void> {
    const target = this._target;
    if (!target || !target.runId || this._head <= 0) {
      return;
    }
    const generation = this._generation;
    const end = this._head;
    const start = Math.max(0, end - RANGE);
    let offset = start;
    let text = '';
    this._earlier.disabled = true;
    try {
      while (offset < end) {
        const chunk = await this._service.getLog(
          target.sessionId,
          target.dagId,
          target.runId,
          target.taskId,
          {
            tryNumber: this._try,
            offset,
            mapIndex: this._mapIndex,
            limit: end - offset
          }
        );
        if (generation !== this._generation || chunk.next_offset <= offset) {
          break;
        }
        const wanted = end - offset;
        text +=
          chunk.next_offset > end ? utf8Prefix(chunk.text, wanted) : chunk.text;
        offset = chunk.next_offset;
      }
    } catch (error) {
      this._setMessage(
        this._trans.__(
          'Could not read the earlier part of the log: %1',
          (error as Error).message
        )
      );
    } finally {
      this._earlier.disabled = false;
    }
    if (generation !== this._generation || !text) {
      return;
    }
    this._head = start;
    const splitter = new LineSplitter();
    const formatted = splitter.push(text, true);
    this._chunks.unshift(formatted);
    if (this._filter.value) {
      void this._renderFiltered();
    } else {
      const keep = this._pre.scrollHeight - this._body.scrollTop;
      this._pre.insertBefore(
        document.createTextNode(formatted),
        this._pre.firstChild
      );
      this._body.scrollTop = this._pre.scrollHeight - keep;
    }
    this._earlier.hidden = this._head <= 0;
    this._updateEarlierLabel();
  }

  private _append(text: string): void {
    this._chunks.push(text);
    this._loaded += text.length;
    // Keep memory bounded: drop the oldest text (it can be loaded again by range).
    while (this._loaded > MAX_TEXT && this._chunks.length > 1) {
      const dropped = this._chunks.shift()!;
      this._loaded -= dropped.length;
      this._head += new TextEncoder().encode(dropped).length;
      this._earlier.hidden = false;
      this._pre.firstChild?.remove();
      this._updateEarlierLabel();
    }
    if (this._filter.value) {
      this._scheduleFilter();
      return;
    }
    const atEnd = this._isAtEnd();
    this._pre.appendChild(document.createTextNode(text));
    if (this._follow.checked && atEnd) {
      this._scrollToEnd();
    }
  }

  private _scheduleFilter(): void {
    window.clearTimeout(this._filterTimer);
    this._filterTimer = window.setTimeout(() => {
      this._filterTimer = 0;
      void this._renderFiltered();
    }, 250);
  }

  /**
   * Show the lines matching the filter: searched by the server over the whole log (also
   * the parts not loaded), or over the loaded text when the server cannot search.
   */
  private async _renderFiltered(): Promise<void> {
    const query = this._filter.value;
    this._searchAbort?.abort();
    if (!query) {
      this._pre.replaceChildren(
        ...this._chunks.map(c => document.createTextNode(c))
      );
      this._pre.classList.remove('jp-mod-filtered');
      delete this.node.dataset.search;
      this._updateStatus();
      return;
    }
    const target = this._target;
    const generation = this._generation;
    let matches: { line: number; text: string }[];
    let whole = false;
    let truncated = false;
    let reply: ILogSearch | null = null;
    if (target?.runId) {
      const abort = (this._searchAbort = new AbortController());
      try {
        reply = await this._service.searchLog(
          target.sessionId,
          target.dagId,
          target.runId,
          target.taskId,
          query,
          { tryNumber: this._try, mapIndex: this._mapIndex },
          { signal: abort.signal }
        );
      } catch (error) {
        if ((error as Error).name === 'AbortError') {
          return;
        }
        reply = null;
      }
      if (
        abort.signal.aborted ||
        generation !== this._generation ||
        query !== this._filter.value
      ) {
        return;
      }
    }
    if (reply && Array.isArray(reply.matches)) {
      matches = reply.matches.map(m => ({
        line: m.line,
        text: formatLogLine(m.text)
      }));
      whole = true;
      truncated = !!reply.truncated;
    } else {
      matches = filterLines(this.text, query, MAX_MATCHES);
      truncated = matches.length >= MAX_MATCHES;
    }
    const frag = document.createDocumentFragment();
    const q = query.toLowerCase();
    for (const m of matches) {
      const line = el('span', 'jp-kyte-LogView-line');
      line.dataset.line = String(m.line);
      const lower = m.text.toLowerCase();
      let pos = 0;
      let hit = lower.indexOf(q);
      while (hit >= 0) {
        line.appendChild(document.createTextNode(m.text.slice(pos, hit)));
        const mark = el('mark');
        mark.textContent = m.text.slice(hit, hit + q.length);
        line.appendChild(mark);
        pos = hit + q.length;
        hit = lower.indexOf(q, pos);
      }
      line.appendChild(document.createTextNode(m.text.slice(pos) + '\n'));
      frag.appendChild(line);
    }
    this._pre.replaceChildren(frag);
    this._pre.classList.add('jp-mod-filtered');
    this.node.dataset.search = whole ? 'server' : 'loaded';
    this._status.textContent =
      this._trans._n('%1 matching line', '%1 matching lines', matches.length) +
      (truncated ? '+' : '') +
      ' ' +
      (whole
        ? this._trans.__('in the whole log')
        : this._trans.__('in the loaded part'));
  }

  private _updateTries(tries: number[], current: number): void {
    const list = (tries.length ? [...tries] : [current])
      .filter(t => t >= 1)
      .sort((a, b) => a - b);
    const key = list.join(',') + (this._latest ? '|latest' : `|${this._try}`);
    if (key === this._triesKey) {
      return;
    }
    this._triesKey = key;
    const newest = list[list.length - 1];
    const options = [
      option(
        'latest',
        newest
          ? this._trans.__('Latest (%1)', newest)
          : this._trans.__('Latest')
      )
    ];
    for (const t of [...list].reverse()) {
      options.push(option(String(t), String(t)));
    }
    this._trySelect.replaceChildren(...options);
    this._trySelect.value = this._latest
      ? 'latest'
      : String(this._try ?? current);
  }

  private _updateStatus(state?: string | null): void {
    if (state !== undefined) {
      this._state = state;
    }
    if (this._filter.value) {
      return;
    }
    const kb = (this._size / 1024).toFixed(this._size < 10240 ? 1 : 0);
    const live = this._complete ? '' : ' \u00B7 ' + this._trans.__('following');
    const shown = this._state ?? this._trans.__('no status');
    this._status.textContent = `${shown} \u00B7 ${kb} KB${live}`;
    this.node.dataset.state = this._state ?? 'none';
    this.node.dataset.complete = String(this._complete);
  }

  private _updateEarlierLabel(): void {
    this._earlier.textContent = this._trans.__(
      'Load earlier log (%1 KB not shown)',
      Math.round(this._head / 1024)
    );
  }

  private _setMessage(text: string): void {
    this._message.textContent = text;
    this._message.hidden = !text;
  }

  private _isAtEnd(): boolean {
    const b = this._body;
    return b.scrollHeight - b.scrollTop - b.clientHeight < 40;
  }

  private _scrollToEnd(): void {
    this._body.scrollTop = this._body.scrollHeight;
  }

  private readonly _poll: Poll;
  private readonly _trans: TranslationBundle;
  private readonly _heading: HTMLElement;
  private readonly _trySelect: HTMLSelectElement;
  private readonly _mapSelect: HTMLSelectElement;
  private readonly _mapLabel: HTMLElement;
  private readonly _filter: HTMLInputElement;
  private readonly _follow: HTMLInputElement;
  private readonly _status: HTMLElement;
  private readonly _earlier: HTMLButtonElement;
  private readonly _message: HTMLElement;
  private readonly _pre: HTMLPreElement;
  private readonly _body: HTMLElement;
  private readonly _splitter = new LineSplitter();
  private _target: ILogTarget | null = null;
  private _latest = true;
  private _try: number | undefined = undefined;
  private _mapIndex = -1;
  private _mapsLoadedFor: string | null = null;
  private _chunks: string[] = [];
  private _loaded = 0;
  private _size = 0;
  private _next = 0;
  private _head = 0;
  private _complete = false;
  private _state: string | null = null;
  private _triesKey = '';
  private _generation = 0;
  private _filterTimer = 0;
  private _abort: AbortController | null = null;
  private _searchAbort: AbortController | null = null;
}

function el(tag: string, className = ''): HTMLElement {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  return e;
}

function option(value: string, label: string): HTMLOptionElement {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}
