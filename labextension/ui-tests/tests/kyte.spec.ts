/**
 * The real flow: a notebook, its kernel with the Kyte magics, the Kyte server extension and
 * the sidebar. Define a DAG with %%dag, run it with %run_dag, watch states and logs, run a task
 * from its context menu.
 */
import { IJupyterLabPageFixture, expect, test } from '@jupyterlab/galata';

import {
  KyteHelper,
  STATE_RGB,
  gotoLab,
  openNotebook as openNotebookAt,
  runCell as runCellOf,
  slowStart
} from './helpers/KyteHelper';

// Galata's 15 s for JupyterLab to start is too little on a loaded CI machine.
test.use({ autoGoto: false, ...(slowStart as any) });
test.beforeEach(async ({ page }) => {
  await gotoLab(page);
});

/** A DAG with a task group, a task that fails on demand and a slow task. */
const DAG_CELL = `%%dag
import time
from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task


@task
def extract():
    print("hello from extract")
    return [1, 2, 3]


@task
def double(values):
    return [v * 2 for v in values]


@task
def check(values):
    print("checking", values)
    if SHOULD_FAIL:
        raise ValueError("asked to fail")
    time.sleep(3)
    return sum(values)


@task
def load(total):
    print("loaded", total)


with DAG("kyte_ui", start_date=datetime(2025, 1, 1), schedule=None):
    values = extract()
    with TaskGroup("transform"):
        total = check(double(values))
    load(total)`;

/** The test notebook of the current test. */
let NOTEBOOK = 'kyte_ui.ipynb';

const TASKS = ['extract', 'transform.double', 'transform.check', 'load'];

/** Write the test notebook `name` into the test folder and open it. */
async function openNotebook(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name: string,
  cells: string[]
): Promise<void> {
  NOTEBOOK = name;
  await openNotebookAt(page, `${tmpPath}/${name}`, cells);
}

/** Run a cell of the test notebook to completion and return its output area. */
function runCell(page: IJupyterLabPageFixture, index: number) {
  return runCellOf(page, NOTEBOOK, index, 30000);
}

test.describe.configure({ mode: 'serial' });

test('define, run, watch, read logs and re-run a task from the sidebar', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(6 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_ui.ipynb', [
    'SHOULD_FAIL = True',
    DAG_CELL,
    'r = %run_dag kyte_ui\nr.task_states',
    'SHOULD_FAIL = False'
  ]);
  await kyte.openPanel();
  await expect(kyte.empty).toContainText('No DAG yet', { timeout: 60000 });

  // Define the DAG in a cell: the graph appears.
  await runCell(page, 0);
  const dagOutput = await runCell(page, 1);
  await expect(dagOutput).not.toContainText('Error');
  await expect(kyte.nodes).toHaveCount(4, { timeout: 30000 });
  for (const t of TASKS) {
    await expect(kyte.node(t)).toHaveCount(1);
    await expect(kyte.node(t)).toHaveAttribute('data-state', 'none');
  }
  await expect(kyte.edges).toHaveCount(3);
  await expect(kyte.edge('extract', 'transform.double')).toHaveCount(1);
  await expect(kyte.edge('transform.double', 'transform.check')).toHaveCount(1);
  await expect(kyte.edge('transform.check', 'load')).toHaveCount(1);
  await expect(kyte.groupHeader('transform')).toHaveCount(1);
  await expect(
    kyte.node('extract').locator('.jp-kyte-node-detail')
  ).not.toHaveText('');

  // Run the whole DAG: check fails, load is upstream_failed.
  await runCell(page, 2);
  const final: Record<string, string> = {
    extract: 'success',
    'transform.double': 'success',
    'transform.check': 'failed',
    load: 'upstream_failed'
  };
  for (const [t, state] of Object.entries(final)) {
    await expect(kyte.node(t)).toHaveAttribute('data-state', state, {
      timeout: 30000
    });
    expect(await kyte.colorOf(t)).toBe(STATE_RGB[state]);
  }
  await expect(kyte.panel.locator('.jp-kyte-Panel-run')).toContainText(
    'failed'
  );
  if (process.env.KYTE_DOCS_IMAGES) {
    // The README's picture (KYTE_DOCS_IMAGES=<repo>/docs/images): notebook and sidebar.
    await page.screenshot({
      path: `${process.env.KYTE_DOCS_IMAGES}/kyte-sidebar.png`
    });
  }

  // Click a task: its log opens with the task's own output.
  await kyte.clickNode('extract');
  await expect(kyte.log).toBeVisible();
  await expect(kyte.logText).toContainText('hello from extract', {
    timeout: 30000
  });
  await kyte.clickNode('transform.check');
  await expect(kyte.logText).toContainText('asked to fail', { timeout: 30000 });

  // Fix the cause, then re-run the failed task and its downstream from the context menu:
  // the slow task is seen running, then everything ends green.
  await runCell(page, 3);
  await kyte.contextMenu('transform.check', 'Run with downstream');
  await expect(kyte.node('transform.check')).toHaveAttribute(
    'data-state',
    'running',
    {
      timeout: 30000
    }
  );
  expect(await kyte.colorOf('transform.check')).toBe(STATE_RGB.running);
  await expect(kyte.node('transform.check')).toHaveAttribute(
    'data-state',
    'success',
    {
      timeout: 60000
    }
  );
  await expect(kyte.node('load')).toHaveAttribute('data-state', 'success', {
    timeout: 30000
  });
  expect(await kyte.colorOf('load')).toBe(STATE_RGB.success);
  await expect(
    page.locator('.jp-Notification-Toast-success, .Toastify__toast--success')
  ).not.toHaveCount(0);

  // The log followed the new try: a try selector with both tries.
  await kyte.clickNode('transform.check');
  await expect(kyte.log.locator('.jp-kyte-LogView-try option')).toHaveCount(3, {
    timeout: 30000
  });
  await expect(kyte.logText).toContainText('checking', { timeout: 30000 });

  // Show XCom from the context menu: the value in a dialog.
  await kyte.contextMenu('extract', 'Show XCom');
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('[1, 2, 3]', { timeout: 60000 });
  await dialog.getByRole('button', { name: 'Ok' }).click();
});

test('the export command answers with files or problems', async ({
  page,
  tmpPath
}) => {
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_export.ipynb', [
    DAG_CELL.replace('if SHOULD_FAIL:', 'if False:')
  ]);
  await runCell(page, 0);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  await page.locator('.jp-NotebookPanel-toolbar .jp-kyte-exportButton').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText(
    /Exported to Airflow DAG|Could not export/,
    {
      timeout: 60000
    }
  );
  await expect(dialog).toContainText(/kyte_ui/);
  await dialog.getByRole('button', { name: 'Ok' }).click();
});

test('a failed run from the sidebar says failed, names the task, never a repr (12.1)', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(4 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_summary.ipynb', [
    'SHOULD_FAIL = True',
    DAG_CELL
  ]);
  await runCell(page, 0);
  await runCell(page, 1);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  await kyte.toolbarButton('kyte:run-dag').click();
  const toast = page.locator('.Toastify__toast--error');
  await expect(toast).toContainText('%run_dag kyte_ui failed', {
    timeout: 120000
  });
  await expect(toast).toContainText('transform.check');
  const text = (await toast.textContent()) ?? '';
  expect(text).not.toMatch(/<IPython|RunSummary|object at 0x/);
  // No success toast claims otherwise.
  await expect(page.locator('.Toastify__toast--success')).toHaveCount(0);
  if (process.env.KYTE_DOCS_IMAGES) {
    // The docs' picture of this state (KYTE_DOCS_IMAGES=<repo>/docs/images).
    await page.screenshot({
      path: `${process.env.KYTE_DOCS_IMAGES}/kyte-run-failed.png`
    });
  }
  await toast.getByRole('button', { name: 'Show output' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('transform.check: failed');
  await dialog.getByRole('button', { name: 'Ok' }).click();
});

test('a run queued behind a busy cell, then interrupted, says it was not run (12.3)', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(4 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_interrupt.ipynb', [
    'SHOULD_FAIL = False',
    DAG_CELL,
    'import time\ntime.sleep(60)'
  ]);
  await runCell(page, 0);
  await runCell(page, 1);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  // The busy cell, not awaited.
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.selectCells(2);
  await page.keyboard.press('Shift+Enter');
  await expect(
    page.locator('.jp-Notebook .jp-Cell').nth(2).locator('.jp-InputPrompt')
  ).toHaveText(/\[\*\]/);
  await kyte.contextMenu('extract', 'Run task');
  await expect(page.locator('.Toastify__toast')).toContainText(
    'waits for the running cell'
  );
  // Interrupt the kernel through the REST API (Galata's kernel-tracking route cannot
  // parse the empty reply of an interrupt made from the page).
  const sessions = (await (await page.request.get('/api/sessions')).json()) as {
    path: string;
    kernel: { id: string };
  }[];
  const kernelId = sessions.find(x => x.path.endsWith('kyte_interrupt.ipynb'))!
    .kernel.id;
  const interrupted = await page.request.post(
    `/api/kernels/${kernelId}/interrupt`
  );
  expect(interrupted.ok()).toBe(true);
  const toast = page.locator('.Toastify__toast--warning');
  await expect(toast).toContainText('%run_task kyte_ui extract was not run', {
    timeout: 60000
  });
  await expect(page.locator('.Toastify__toast--error')).toHaveCount(0);
  // Nothing ran: the task has no state.
  await expect(kyte.node('extract')).toHaveAttribute('data-state', 'none');
});

test('deleting a %%dag cell drops its DAG from the kernel (comm kyte.notebook, 11.1)', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(4 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_comm.ipynb', [
    'SHOULD_FAIL = False',
    DAG_CELL
  ]);
  await runCell(page, 0);
  await runCell(page, 1);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.selectCells(1);
  await page.notebook.deleteCells();
  // The kernel says what it dropped; the sidebar no longer shows the DAG as defined.
  await expect
    .poll(async () => (await kyte.notifications()).join('\n'), {
      timeout: 30000
    })
    .toMatch(/kyte_ui|deleted|dropped/);
  await expect
    .poll(
      async () =>
        (await kyte.nodes.count()) === 0 ||
        (await kyte.panel.locator('.jp-kyte-Panel-warnings').isVisible()),
      { timeout: 30000 }
    )
    .toBe(true);
});
