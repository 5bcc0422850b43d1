/**
 * The real flow: a notebook, its kernel with the Kyte magics, the Kyte server extension and
 * the sidebar. Define a DAG with %%dag, run it with %run_dag, watch states and logs, run a task
 * from its context menu.
 */
import { expect, galata, test } from '@jupyterlab/galata';

import { KyteHelper, STATE_RGB } from './helpers/KyteHelper';

/** A DAG with a task group, a task that fails on demand and a slow task. */
const DAG_CELL = `%%dag
import time
from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task

with DAG("kyte_ui", start_date=datetime(2025, 1, 1), schedule=None):

    @task
    def extract():
        print("hello from extract")
        return [1, 2, 3]

    with TaskGroup("transform"):

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

    load(check(double(extract())))`;

const TASKS = ['extract', 'transform.double', 'transform.check', 'load'];

test.describe.configure({ mode: 'serial' });

test('define, run, watch, read logs and re-run a task from the sidebar', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(6 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await page.notebook.createNew('kyte_ui.ipynb');
  await kyte.openPanel();
  await expect(kyte.empty).toContainText('No DAG yet', { timeout: 60000 });

  // Define the DAG in a cell: the graph appears.
  await page.notebook.setCell(0, 'code', 'SHOULD_FAIL = True');
  await page.notebook.runCell(0);
  await page.notebook.addCell('code', DAG_CELL);
  await page.notebook.runCell(1);
  await expect(page.locator('.jp-Cell').nth(1).locator('.jp-OutputArea-output')).not.toHaveCount(
    0
  );
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
  await expect(kyte.node('extract').locator('.jp-kyte-node-detail')).toContainText('Operator');

  // Run the whole DAG: check fails, load is upstream_failed.
  await page.notebook.addCell('code', 'r = %run_dag kyte_ui\nr.task_states');
  await page.notebook.runCell(2);
  const final: Record<string, string> = {
    extract: 'success',
    'transform.double': 'success',
    'transform.check': 'failed',
    load: 'upstream_failed'
  };
  for (const [t, state] of Object.entries(final)) {
    await expect(kyte.node(t)).toHaveAttribute('data-state', state, { timeout: 30000 });
    expect(await kyte.colorOf(t)).toBe(STATE_RGB[state]);
  }
  await expect(kyte.panel.locator('.jp-kyte-Panel-run')).toContainText('failed');

  // Click a task: its log opens with the task's own output.
  await kyte.node('extract').click();
  await expect(kyte.log).toBeVisible();
  await expect(kyte.logText).toContainText('hello from extract', { timeout: 30000 });
  await kyte.node('transform.check').click();
  await expect(kyte.logText).toContainText('asked to fail', { timeout: 30000 });

  // Fix the cause, then re-run the failed task and its downstream from the context menu:
  // the slow task is seen running, then everything ends green.
  await page.notebook.addCell('code', 'SHOULD_FAIL = False');
  await page.notebook.runCell(3);
  await kyte.contextMenu('transform.check', 'Run with downstream');
  await expect(kyte.node('transform.check')).toHaveAttribute('data-state', 'running', {
    timeout: 30000
  });
  expect(await kyte.colorOf('transform.check')).toBe(STATE_RGB.running);
  await expect(kyte.node('transform.check')).toHaveAttribute('data-state', 'success', {
    timeout: 60000
  });
  await expect(kyte.node('load')).toHaveAttribute('data-state', 'success', { timeout: 30000 });
  expect(await kyte.colorOf('load')).toBe(STATE_RGB.success);
  await expect(page.locator('.jp-Notification-Toast-success, .Toastify__toast--success')).not.toHaveCount(0);

  // The log followed the new try: a try selector with both tries.
  await kyte.node('transform.check').click();
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

test('the export command answers with files or problems', async ({ page }) => {
  const kyte = new KyteHelper(page);
  await page.notebook.createNew('kyte_export.ipynb');
  await page.notebook.setCell(0, 'code', DAG_CELL.replace('if SHOULD_FAIL:', 'if False:'));
  await page.notebook.runCell(0);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  await page.locator('.jp-NotebookPanel-toolbar .jp-kyte-exportButton').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText(/Exported to Airflow DAG|Could not export/, {
    timeout: 60000
  });
  await expect(dialog).toContainText(/kyte_ui|problem|scratch|cell/i);
  await dialog.getByRole('button', { name: 'Ok' }).click();
  void galata;
});
