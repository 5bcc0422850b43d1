/**
 * Issue 19 in JupyterLab, against the real server and kernel: the sidebar's run selector
 * (a past run drawn as of its DAG version, with its states and logs) and the Publish dialog
 * (targets, a reviewed diff, publishing exactly what was reviewed). The test server publishes
 * to the folder `published-dags` of its root (KYTE_PUBLISH_TARGETS in
 * jupyter_server_test_config.py), so what was published is read back through the contents API.
 */
import { expect, test } from '@jupyterlab/galata';

import {
  KyteHelper,
  STATE_RGB,
  gotoLab,
  openNotebook,
  runCell,
  slowStart
} from './helpers/KyteHelper';

test.use({ autoGoto: false, ...(slowStart as any) });
test.beforeEach(async ({ page }) => {
  await gotoLab(page);
});
test.describe.configure({ mode: 'serial' });

/** `shop`: extract >> load, and `report` after load once WITH_REPORT is true (version 2). */
const SHOP = `%%dag
from datetime import datetime

from airflow.sdk import DAG, task


@task
def extract():
    print("extract sees WITH_REPORT =", WITH_REPORT)
    return [1, 2, 3]


@task
def load(rows):
    return sum(rows)


@task
def report(total):
    print("total", total)


with DAG("shop", start_date=datetime(2025, 1, 1), schedule=None):
    total = load(extract())
    if WITH_REPORT:
        report(total)`;

/** A DAG to publish; the comment checks that the diff is shown as text, never as HTML. */
const SHIPPED = `%%dag shipped --start-date 2026-01-01
# <b>not bold</b>
from airflow.providers.standard.operators.bash import BashOperator

extract = BashOperator(task_id="extract", bash_command="echo extract")`;

test('a past run is shown as of its DAG version, with its states and its log', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(8 * 60 * 1000);
  const kyte = new KyteHelper(page);
  const name = 'shop.ipynb';
  await openNotebook(page, `${tmpPath}/${name}`, [
    'WITH_REPORT = False',
    SHOP,
    'r = %run_dag shop\nr.state',
    'WITH_REPORT = True',
    '%run_dag shop --fail load'
  ]);
  await kyte.openPanel();
  // Version 1, run; version 2 (report added), run.
  await runCell(page, name, 0);
  await runCell(page, name, 1);
  await expect(await runCell(page, name, 2)).toContainText("'success'");
  await runCell(page, name, 3);
  await runCell(page, name, 1);
  await expect(await runCell(page, name, 2)).toContainText("'success'");
  await expect(kyte.nodes).toHaveCount(3, { timeout: 30000 });

  const select = kyte.panel.locator('.jp-kyte-RunSelector-select');
  await expect(select).toBeVisible();
  await expect(select.locator('option')).toHaveCount(3, { timeout: 30000 });
  const labels = await select.locator('option').allTextContents();
  expect(labels[0]).toBe('Latest run (live)');
  expect(labels[1]).toMatch(/^v2 · success · manual__/);
  expect(labels[2]).toMatch(/^v1 · success · manual__/);
  await expect(select).toHaveValue('');

  // Pick the first run: the graph of version 1 (no report), that run's states.
  const firstRun = await select.locator('option').nth(2).getAttribute('value');
  await select.selectOption(firstRun!);
  await expect(kyte.nodes).toHaveCount(2, { timeout: 30000 });
  await expect(kyte.node('report')).toHaveCount(0);
  await expect(kyte.edge('extract', 'load')).toHaveCount(1);
  for (const t of ['extract', 'load']) {
    await expect(kyte.node(t)).toHaveAttribute('data-state', 'success');
  }
  await expect(kyte.info).toContainText('Past run:');
  await expect(kyte.info).toContainText(firstRun!);

  // Its log is that run's: extract saw WITH_REPORT = False then.
  await kyte.clickNode('extract');
  await expect(kyte.logText).toContainText('extract sees WITH_REPORT = False', {
    timeout: 30000
  });

  // Back to the latest run: version 2's graph, live.
  await select.selectOption('');
  await expect(kyte.nodes).toHaveCount(3, { timeout: 30000 });
  await expect(kyte.info).toContainText('Latest run:');
  await kyte.clickNode('extract');
  await expect(kyte.logText).toContainText('extract sees WITH_REPORT = True', {
    timeout: 30000
  });

  // Compare versions (issue 19): v1 -> v2 drawn as a coloured graph, as %dag_diff says.
  const compare = kyte.versionDiff.locator('.jp-kyte-VersionDiff-toggle');
  await expect(compare).toBeVisible({ timeout: 30000 });
  await compare.click();
  await expect(kyte.node('report')).toHaveAttribute('data-change', 'added', {
    timeout: 30000
  });
  for (const t of ['extract', 'load']) {
    await expect(kyte.node(t)).toHaveAttribute('data-change', 'unchanged');
  }
  await expect(kyte.edge('load', 'report')).toHaveAttribute(
    'data-change',
    'added'
  );
  await expect(kyte.edge('extract', 'load')).toHaveAttribute(
    'data-change',
    'unchanged'
  );
  await expect(
    kyte.versionDiff.locator('.jp-kyte-VersionDiff-headline')
  ).toContainText('v1 \u2192 v2: 1 task added');
  await expect(
    kyte.versionDiff.locator('.jp-kyte-VersionDiff-changes li')
  ).toContainText(['+ task report', '+ edge load >> report']);
  // Added is the theme's success colour, not a task-state colour; the legend says so.
  const added = await kyte
    .node('report')
    .locator('.jp-kyte-node-box')
    .evaluate(el => getComputedStyle(el).stroke);
  const success = await page.evaluate(() =>
    getComputedStyle(document.body)
      .getPropertyValue('--jp-success-color1')
      .trim()
  );
  expect(added).not.toBe(STATE_RGB.success);
  expect(success).not.toBe('');
  await expect(
    kyte.panel.locator('.jp-kyte-Panel-legend [data-change="added"]')
  ).toBeVisible();
  await kyte.panel.screenshot({
    path: test.info().outputPath('version-diff.png')
  });
  // Off again: the DAG with its states.
  await compare.click();
  await expect(kyte.node('report')).not.toHaveAttribute('data-change', /./);
  await expect(kyte.node('report')).toHaveAttribute('data-state', 'success');

  // A what-if run (issue 15): load forced to fail has a "forced" badge, the run is marked.
  await runCell(page, name, 4);
  await expect(kyte.node('load')).toHaveAttribute('data-forced', 'fail', {
    timeout: 30000
  });
  await expect(kyte.node('load')).toHaveAttribute('data-state', 'failed');
  await expect(
    kyte.node('load').locator('.jp-kyte-node-forced')
  ).toHaveAttribute('visibility', 'visible');
  await expect(kyte.node('report')).toHaveAttribute(
    'data-state',
    'upstream_failed'
  );
  for (const t of ['extract', 'report']) {
    await expect(kyte.node(t)).not.toHaveAttribute('data-forced', /./);
    await expect(kyte.node(t).locator('.jp-kyte-node-forced')).toHaveAttribute(
      'visibility',
      'hidden'
    );
  }
  await expect(kyte.info.locator('.jp-kyte-forcedBadge')).toHaveText('what-if');
  await expect(select.locator('option').nth(1)).toContainText(
    'what-if (1 forced)',
    { timeout: 30000 }
  );
  await kyte.panel.screenshot({
    path: test.info().outputPath('forced-badge.png')
  });
});

test('Publish… reviews the diff and publishes what was reviewed', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(5 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, `${tmpPath}/ship.ipynb`, [SHIPPED]);

  // The notebook toolbar's Publish button, next to Export to Airflow DAG.
  const button = page.locator(
    '.jp-NotebookPanel-toolbar .jp-kyte-publishButton'
  );
  await expect(button).toBeVisible();
  await button.click();
  const dialog = page.locator('.jp-Dialog .jp-kyte-PublishDialog');
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('select option')).toHaveText([
    'staging (folder)'
  ]);
  const publish = page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept');
  await expect(dialog).toHaveAttribute('data-state', 'reviewed', {
    timeout: 120000
  });
  const file = dialog.locator(
    '.jp-kyte-PublishDialog-file[data-filename="shipped.py"]'
  );
  await expect(file).toHaveAttribute('data-status', 'added');
  await expect(file).toContainText('new file');
  const added = file.locator('.jp-kyte-Diff-add');
  await expect(
    added.filter({ hasText: 'BashOperator(task_id="extract"' })
  ).toHaveCount(1);
  // The server's text is shown as text: the comment's tags are visible, not rendered.
  await expect(added.filter({ hasText: '<b>not bold</b>' })).toHaveCount(1);
  await expect(dialog.locator('.jp-kyte-Diff b')).toHaveCount(0);
  // Added lines are coloured by the theme (a background other than the diff's own).
  const colors = await added.first().evaluate(el => {
    const pre = el.parentElement!;
    return [
      getComputedStyle(el).backgroundColor,
      getComputedStyle(pre).backgroundColor
    ];
  });
  expect(colors[0]).not.toBe(colors[1]);
  await expect(publish).toBeEnabled();

  await publish.click();
  await expect
    .poll(async () => (await kyte.notifications()).join('\n'), {
      timeout: 120000
    })
    .toContain('Published shipped.py to staging.');
  expect(await page.contents.fileExists('published-dags/shipped.py')).toBe(
    true
  );

  // Reviewing again: the target holds the file, nothing to publish.
  await button.click();
  await expect(dialog).toHaveAttribute('data-state', 'reviewed', {
    timeout: 120000
  });
  await expect(dialog).toContainText('nothing to publish');
  await expect(file).toHaveAttribute('data-status', 'unchanged');
  await expect(publish).toBeDisabled();
  await page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-reject').click();
});
