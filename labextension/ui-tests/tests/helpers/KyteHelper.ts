/**
 * Selectors and actions of the Kyte sidebar, its log viewer and its REST API mocks, so the
 * specs read as user steps.
 */
import { IJupyterLabPageFixture, expect } from '@jupyterlab/galata';
import { Locator, Page, Route } from '@playwright/test';

/** Airflow's state colours as the browser computes them. */
export const STATE_RGB: Record<string, string> = {
  success: 'rgb(0, 128, 0)',
  failed: 'rgb(255, 0, 0)',
  running: 'rgb(0, 255, 0)',
  queued: 'rgb(128, 128, 128)',
  skipped: 'rgb(255, 105, 180)',
  upstream_failed: 'rgb(255, 165, 0)',
  up_for_retry: 'rgb(255, 215, 0)',
  scheduled: 'rgb(210, 180, 140)',
  deferred: 'rgb(147, 112, 219)',
  removed: 'rgb(211, 211, 211)'
};

export class KyteHelper {
  constructor(readonly page: IJupyterLabPageFixture) {
    // Browser errors in the test log help to see why a step failed.
    page.on('console', msg => {
      if (msg.type() === 'error' || msg.text().includes('Kyte')) {
        console.log(`[browser ${msg.type()}] ${msg.text()}`);
      }
    });
  }

  /** Texts of the notifications shown so far (JupyterLab's notification manager). */
  async notifications(): Promise<string[]> {
    return this.page.evaluate(() => {
      const apputils =
        (window as any).jupyterapp?.serviceManager && (window as any).galata;
      void apputils;
      return Array.from(
        document.querySelectorAll('.jp-toast-message, .Toastify__toast-body')
      ).map(el => el.textContent ?? '');
    });
  }

  /** The sidebar panel. */
  get panel(): Locator {
    return this.page.locator('#kyte-sidebar');
  }

  /** The sidebar tab (the Kyte icon). */
  get tab(): Locator {
    return this.page.locator(
      '.jp-SideBar.jp-mod-left [data-id="kyte-sidebar"]'
    );
  }

  /** The empty-state box of the panel. */
  get empty(): Locator {
    return this.panel.locator('.jp-kyte-Panel-empty');
  }

  /** The graph. */
  get graph(): Locator {
    return this.panel.locator('.jp-kyte-GraphView');
  }

  /** Every drawn box (tasks and collapsed groups). */
  get nodes(): Locator {
    return this.panel.locator('.jp-kyte-node');
  }

  /** Every drawn edge. */
  get edges(): Locator {
    return this.panel.locator('.jp-kyte-edge');
  }

  /** The box of a task. */
  node(taskId: string): Locator {
    return this.panel.locator(`.jp-kyte-node[data-task-id="${taskId}"]`);
  }

  /** The box of a collapsed task group. */
  collapsedGroup(groupId: string): Locator {
    return this.panel.locator(`.jp-kyte-node[data-group-id="${groupId}"]`);
  }

  /** The header of an expanded task group (click to collapse). */
  groupHeader(groupId: string): Locator {
    return this.panel.locator(
      `.jp-kyte-group-header[data-group-id="${groupId}"]`
    );
  }

  /** The edge between two drawn boxes. */
  edge(from: string, to: string): Locator {
    return this.panel.locator(
      `.jp-kyte-edge[data-from="${from}"][data-to="${to}"]`
    );
  }

  /** The "Compare versions" bar (issue 19: the version diff drawn in the graph). */
  get versionDiff(): Locator {
    return this.panel.locator('.jp-kyte-VersionDiff');
  }

  /** The log viewer. */
  get log(): Locator {
    return this.page.locator('#kyte-log');
  }

  /** The text of the log viewer. */
  get logText(): Locator {
    return this.log.locator('.jp-kyte-LogView-text');
  }

  /**
   * Open the Kyte sidebar by its icon, and make the sidebar wide enough for a graph (or leave
   * it at JupyterLab's default width when `width` is null).
   */
  async openPanel(width: number | null = 460): Promise<void> {
    if (!(await this.panel.isVisible())) {
      await this.tab.click();
    }
    await this.panel.waitFor({ state: 'visible' });
    if (width !== null) {
      await this.page.sidebar.setWidth(width, 'left');
    }
  }

  /** The panel's header: the DAG's name or selector, and the toolbar. */
  get header(): Locator {
    return this.panel.locator('.jp-kyte-Panel-header');
  }

  /** The summary under the header (latest run, task count, schedule). */
  get info(): Locator {
    return this.panel.locator('.jp-kyte-Panel-info');
  }

  /** A command's button in the panel's toolbar. */
  toolbarButton(command: string): Locator {
    return this.panel.locator(
      `.jp-kyte-Panel-toolbar .jp-ToolbarButtonComponent[data-command="${command}"]`
    );
  }

  /** The zoom of the graph. */
  async scale(): Promise<number> {
    return Number(await this.graph.getAttribute('data-scale'));
  }

  /** Whether every drawn box is inside the graph's view. */
  async allNodesInView(): Promise<boolean> {
    const view = (await this.graph.boundingBox())!;
    const boxes = await this.nodes.evaluateAll(els =>
      els.map(el => el.getBoundingClientRect().toJSON())
    );
    return (
      boxes.length > 0 &&
      boxes.every(
        b =>
          b.left >= view.x - 1 &&
          b.top >= view.y - 1 &&
          b.right <= view.x + view.width + 1 &&
          b.bottom <= view.y + view.height + 1
      )
    );
  }

  /** Fit the graph into the panel when a task's box is (partly) out of view. */
  async ensureVisible(taskId: string): Promise<void> {
    const view = await this.graph.boundingBox();
    const box = await this.node(taskId).boundingBox();
    if (
      view &&
      box &&
      box.x >= view.x &&
      box.y >= view.y &&
      box.x + box.width <= view.x + view.width &&
      box.y + box.height <= view.y + view.height
    ) {
      return;
    }
    await this.panel.locator('[title^="Fit the graph"]').first().click();
  }

  /** Click a task (opens its log). */
  async clickNode(taskId: string): Promise<void> {
    await this.ensureVisible(taskId);
    await this.node(taskId).click();
  }

  /** The `data-state` of a task's box (`none` when it has no state). */
  async stateOf(taskId: string): Promise<string | null> {
    return this.node(taskId).getAttribute('data-state');
  }

  /** The stroke colour the browser computed for a task's box. */
  async colorOf(taskId: string): Promise<string> {
    return this.node(taskId)
      .locator('.jp-kyte-node-box')
      .evaluate(el => getComputedStyle(el).stroke);
  }

  /** Right-click a task and pick an item of its context menu. */
  async contextMenu(taskId: string, item: string): Promise<void> {
    await this.ensureVisible(taskId);
    await this.node(taskId).click({ button: 'right' });
    const menu = this.page.locator('.lm-Menu');
    await menu.getByText(item, { exact: false }).first().click();
  }

  /** The panel's measurements of the last graph drawn (ms). */
  async timings(): Promise<{
    total: number;
    layout: number;
    render: number;
    tasks: number;
  }> {
    return this.panel.evaluate(el => ({
      total: Number((el as HTMLElement).dataset.totalMs),
      layout: Number((el as HTMLElement).dataset.layoutMs),
      render: Number((el as HTMLElement).dataset.renderMs),
      tasks: Number((el as HTMLElement).dataset.tasks)
    }));
  }
}

/** A mocked Kyte REST API: the panel sees whatever the test puts here. */
export interface IMockApi {
  /** Sessions returned for any notebook. */
  sessions: unknown[];
  /** DAGs returned for the session. */
  dags: unknown[];
  /** Log reply for any task (offset honoured). */
  logText: string;
  /** Whether the log is complete. */
  logComplete: boolean;
  /** Export reply: status and body. */
  exportReply: { status: number; body: unknown };
  /** Requests seen, by path. */
  calls: string[];
}

/**
 * Answer every `kyte/...` request of the page from `api` instead of the server.
 */
export async function mockKyteApi(page: Page, api: IMockApi): Promise<void> {
  await page.route(/\/kyte\//, async (route: Route) => {
    const url = new URL(route.request().url());
    const path = url.pathname.replace(/^.*?\/kyte\//, '');
    api.calls.push(path);
    const json = (body: unknown, status = 200) =>
      route.fulfill({
        status,
        contentType: 'application/json',
        body: JSON.stringify(body)
      });
    if (path === 'sessions') {
      return json(api.sessions);
    }
    if (/^sessions\/[^/]+\/dags$/.test(path)) {
      return json(api.dags);
    }
    if (/\/logs$/.test(path) && url.searchParams.has('search')) {
      // The server's whole-log search: every line holding the text, case-insensitively.
      const query = url.searchParams.get('search')!;
      const matches: { line: number; offset: number; text: string }[] = [];
      let offset = 0;
      api.logText.split('\n').forEach((text, i) => {
        if (text.toLowerCase().includes(query.toLowerCase())) {
          matches.push({ line: i + 1, offset, text });
        }
        offset += Buffer.byteLength(text + '\n');
      });
      return json({
        query,
        matches: matches.slice(0, 1000),
        truncated: matches.length > 1000,
        size: Buffer.byteLength(api.logText),
        try_number: 2,
        map_index: -1
      });
    }
    if (/\/logs$/.test(path)) {
      const bytes = Buffer.from(api.logText, 'utf-8');
      const offset = Number(url.searchParams.get('offset') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 1024 * 1024);
      const start = Math.min(Math.max(0, offset), bytes.length);
      const end = Math.min(bytes.length, start + limit);
      return json({
        text: bytes.subarray(start, end).toString('utf-8'),
        offset: start,
        next_offset: end,
        size: bytes.length,
        try_number: 2,
        tries: [1, 2],
        state: api.logComplete ? 'success' : 'running',
        complete: api.logComplete && end >= bytes.length
      });
    }
    if (/\/tasks$/.test(path)) {
      return json([]);
    }
    if (path === 'export') {
      return json(api.exportReply.body, api.exportReply.status);
    }
    return json({ message: `not mocked: ${path}` }, 404);
  });
}

/** A fresh mock with one session and no DAG. */
export function newMockApi(): IMockApi {
  return {
    sessions: [
      {
        id: 'mocked-0123456789',
        notebook_path: 'mocked.ipynb',
        home: '/tmp/mocked',
        created: '2026-01-01T00:00:00+00:00',
        airflow_version: '3.3.2'
      }
    ],
    dags: [],
    logText: '',
    logComplete: true,
    exportReply: { status: 200, body: { files: [] } },
    calls: []
  };
}

/** The DAG the mocked tests draw: a task group, every kind of state, a mapped task. */
export function etlDag(): Record<string, unknown> {
  const node = (
    task_id: string,
    operator: string,
    state: string | null,
    task_group: string | null = null,
    extra: Record<string, unknown> = {}
  ) => ({
    task_id,
    label: task_group ? task_id.slice(task_group.length + 1) : task_id,
    operator,
    task_group,
    is_mapped: false,
    state,
    ...extra
  });
  return {
    dag_id: 'etl',
    description: 'Extract, transform, load',
    schedule: '@daily',
    nodes: [
      node('extract', 'PythonOperator', 'success'),
      node('transform.clean', '@task', 'success', 'transform'),
      node('transform.enrich', '@task', 'failed', 'transform'),
      node(
        'transform.validate',
        'SQLCheckOperator',
        'up_for_retry',
        'transform'
      ),
      node('load', 'BashOperator', 'upstream_failed'),
      node('report', 'EmailOperator', 'skipped'),
      node('notify', 'SlackOperator', 'queued', null, {
        is_mapped: true,
        map_states: { '0': 'queued', '1': 'scheduled', '2': null }
      }),
      node('archive', 'EmptyOperator', null),
      node('wait', 'TimeDeltaSensorAsync', 'deferred'),
      node('publish', 'PythonOperator', 'running')
    ],
    edges: [
      ['extract', 'transform.clean'],
      ['transform.clean', 'transform.enrich'],
      ['transform.clean', 'transform.validate'],
      ['transform.enrich', 'load'],
      ['transform.validate', 'load'],
      ['load', 'report'],
      ['load', 'notify'],
      ['extract', 'wait'],
      ['wait', 'publish'],
      ['publish', 'archive']
    ],
    task_groups: [{ group_id: 'transform', parent: null, label: 'transform' }],
    latest_run: {
      run_id: 'manual__2026-01-01T00:00:00+00:00',
      state: 'running',
      logical_date: '2026-01-01T00:00:00+00:00',
      start_date: '2026-01-01T00:00:01+00:00',
      end_date: null
    }
  };
}

/** The three-task DAG `numbers` of examples/tour.ipynb, not run yet. */
export function tourDag(dagId = 'numbers'): Record<string, unknown> {
  const node = (task_id: string, operator: string) => ({
    task_id,
    label: task_id,
    operator,
    task_group: null,
    is_mapped: false,
    state: null
  });
  return {
    dag_id: dagId,
    description: null,
    schedule: '@daily',
    nodes: [
      node('extract', '@task'),
      node('transform', '@task'),
      node('report', 'BashOperator')
    ],
    edges: [
      ['extract', 'transform'],
      ['transform', 'report']
    ],
    task_groups: [],
    latest_run: null
  };
}

/** A chain of `n` tasks, `step_0` -> `step_1` -> ..., not run yet. */
export function chainDag(n: number, dagId = 'chain'): Record<string, unknown> {
  const ids = Array.from({ length: n }, (_, i) => `step_${i}`);
  return {
    dag_id: dagId,
    description: null,
    schedule: null,
    nodes: ids.map(task_id => ({
      task_id,
      label: task_id,
      operator: 'PythonOperator',
      task_group: null,
      is_mapped: false,
      state: null,
      map_states: {}
    })),
    edges: ids.slice(1).map((id, i) => [ids[i], id]),
    task_groups: [],
    latest_run: null,
    warnings: []
  };
}

/** The tour's first DAG, `hello`: two tasks. */
export function helloDag(): Record<string, unknown> {
  const dag = tourDag('hello') as { nodes: unknown[]; edges: unknown[] };
  return {
    ...dag,
    schedule: null,
    nodes: [
      { ...(dag.nodes[0] as object), task_id: 'greet', label: 'greet' },
      { ...(dag.nodes[2] as object), task_id: 'shout', label: 'shout' }
    ],
    edges: [['greet', 'shout']]
  };
}

/**
 * A synthetic DAG of `n` tasks: 20 parallel chains between a start and an end task, with a
 * few cross edges (the shape of a wide ETL DAG), no task groups.
 */
export function syntheticDag(n: number): Record<string, unknown> {
  const width = 20;
  const states = ['success', 'running', 'failed', 'queued', 'skipped', null];
  const nodes: Record<string, unknown>[] = [];
  const edges: [string, string][] = [];
  const mk = (id: string, state: string | null) => ({
    task_id: id,
    label: id,
    operator: 'PythonOperator',
    task_group: null,
    is_mapped: false,
    state
  });
  nodes.push(mk('start', 'success'));
  const perChain = Math.ceil((n - 2) / width);
  const ends: string[] = [];
  let count = 1;
  for (let c = 0; c < width && count < n - 1; c++) {
    let prev = 'start';
    for (let i = 0; i < perChain && count < n - 1; i++) {
      const id = `task_${c}_${i}`;
      nodes.push(mk(id, states[(c + i) % states.length]));
      edges.push([prev, id]);
      if (c > 0 && i > 1 && i % 7 === 0) {
        edges.push([`task_${c - 1}_${i - 1}`, id]);
      }
      prev = id;
      count++;
    }
    ends.push(prev);
  }
  nodes.push(mk('end', null));
  for (const e of ends) {
    edges.push([e, 'end']);
  }
  return {
    dag_id: `synthetic_${n}`,
    description: null,
    schedule: null,
    nodes,
    edges,
    task_groups: [],
    latest_run: null
  };
}

/**
 * Galata waits 15 s for JupyterLab to start, too little on a loaded 2-core CI machine: wait
 * up to `timeout` instead (for the app, its splash screen and the Launcher).
 */
export const SLOW_START = 180 * 1000;

/** `test.use()` options: wait for the application as Galata does, with a longer timeout. */
export const slowStart = {
  waitForApplication: async (
    { baseURL }: { baseURL?: string },
    use: (
      fn: (page: Page, helpers: IJupyterLabPageFixture) => Promise<void>
    ) => Promise<void>
  ): Promise<void> => {
    void baseURL;
    await use(async (page: Page) => {
      await page
        .locator('#jupyterlab-splash')
        .waitFor({ state: 'detached', timeout: SLOW_START });
      await page
        .locator('.jp-Launcher')
        .first()
        .waitFor({ timeout: SLOW_START })
        .catch(() => undefined);
    });
  }
};

/** Open JupyterLab, waiting for it to start as long as a loaded machine needs. */
export async function gotoLab(page: IJupyterLabPageFixture): Promise<void> {
  (page as any).waitForAppStarted = async () => {
    // Synchronous predicate: the application and Galata's in-page helpers exist...
    await page.waitForFunction(
      () =>
        typeof (window as any).jupyterapp === 'object' &&
        typeof (window as any).galata === 'object',
      undefined,
      { timeout: SLOW_START, polling: 500 }
    );
    // ...and every plugin has started.
    await page.evaluate(() => (window as any).jupyterapp.started);
  };
  await page.goto();
}

/**
 * Write a notebook of code cells to `path` (relative to the server root) and open it.
 * (Typing cells in the editor would auto-indent the Python.)
 */
export async function openNotebook(
  page: IJupyterLabPageFixture,
  path: string,
  cells: string[]
): Promise<void> {
  const notebook = {
    cells: cells.map(source => ({
      cell_type: 'code',
      execution_count: null,
      metadata: {},
      outputs: [],
      source
    })),
    metadata: {
      kernelspec: {
        display_name: 'Python 3 (ipykernel)',
        language: 'python',
        name: 'python3'
      }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
  await page.contents.uploadContent(JSON.stringify(notebook), 'text', path);
  await page.notebook.openByPath(path);
  await page.notebook.activate(path.split('/').pop()!);
}

/**
 * Run a cell of notebook `name` to completion (it is activated first: the log viewer may be
 * the active tab) and return its output area.
 */
export async function runCell(
  page: IJupyterLabPageFixture,
  name: string,
  index: number,
  timeout = 120000
): Promise<Locator> {
  await page.notebook.activate(name);
  await page.notebook.runCell(index);
  const cell = page.locator('.jp-Notebook .jp-Cell').nth(index);
  await expect(cell.locator('.jp-InputPrompt')).toHaveText(/\[\d+\]/, {
    timeout
  });
  return cell.locator('.jp-OutputArea');
}
