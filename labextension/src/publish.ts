/**
 * "Publish…": ship the notebook's DAG files to a target the operator configured (a folder or
 * a git branch). The dialog lists the targets, reviews a dry run (each file's status and its
 * diff, as text), and publishes exactly the reviewed files: the request carries their SHA-256
 * (`expect`), so a notebook edited in between is refused, never published unseen.
 */
import { Dialog, Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { diffLines, reviewedHashes } from './publishreview';
import type { IKyteService, IPublishReply, IPublishTarget } from './tokens';

/** A diff as a `<pre>`: text nodes only (never HTML from the server), lines coloured. */
export function renderDiff(diff: string): HTMLElement {
  const pre = document.createElement('pre');
  pre.className = 'jp-kyte-Diff';
  for (const line of diffLines(diff)) {
    const span = document.createElement('span');
    span.className = `jp-kyte-Diff-line jp-kyte-Diff-${line.kind}`;
    span.textContent = line.text + '\n';
    pre.appendChild(span);
  }
  return pre;
}

/**
 * The dialog's body: the target dropdown and the review of the chosen target.
 */
class PublishBody extends Widget {
  constructor(
    private readonly _trans: TranslationBundle,
    private readonly _targets: IPublishTarget[],
    private readonly _review: (target: string) => Promise<IPublishReply>
  ) {
    super();
    this.addClass('jp-kyte-PublishDialog');
    const row = document.createElement('label');
    row.className = 'jp-kyte-PublishDialog-target';
    row.textContent = _trans.__('Publish to') + ' ';
    this._select = document.createElement('select');
    this._select.className = 'jp-mod-styled';
    this._select.setAttribute('aria-label', _trans.__('Publish target'));
    for (const t of _targets) {
      const o = document.createElement('option');
      o.value = t.name;
      o.textContent = `${t.name} (${t.kind === 'git' ? _trans.__('git branch') : _trans.__('folder')})`;
      o.title = t.description;
      this._select.appendChild(o);
    }
    row.appendChild(this._select);
    this._where = document.createElement('div');
    this._where.className = 'jp-kyte-PublishDialog-where';
    this._result = document.createElement('div');
    this._result.className = 'jp-kyte-PublishDialog-review';
    this._result.setAttribute('aria-live', 'polite');
    this.node.append(row, this._where, this._result);
    this._select.addEventListener('change', () => void this.review());
  }

  /** The target chosen. */
  get target(): string {
    return this._select.value;
  }

  /** The review of the chosen target, once it has arrived (null while reviewing/failed). */
  get reply(): IPublishReply | null {
    return this._reply;
  }

  /** Whether there is something reviewed to publish. */
  get canPublish(): boolean {
    return (
      !!this._reply &&
      Object.keys(reviewedHashes(this._reply.changes)).length > 0
    );
  }

  /** Run the dry run of the chosen target and show it. */
  async review(): Promise<void> {
    const target = this.target;
    const generation = ++this._generation;
    this._reply = null;
    this._updateButton();
    const t = this._targets.find(x => x.name === target);
    this._where.textContent = t?.description ?? '';
    const wait = document.createElement('p');
    wait.className = 'jp-kyte-PublishDialog-wait';
    wait.textContent = this._trans.__(
      'Exporting the notebook and comparing with %1\u2026',
      target
    );
    this._result.replaceChildren(wait);
    this.node.dataset.state = 'reviewing';
    let reply: IPublishReply;
    try {
      reply = await this._review(target);
    } catch (error) {
      if (generation !== this._generation) {
        return;
      }
      const p = document.createElement('p');
      p.className = 'jp-kyte-PublishDialog-error';
      p.textContent = (error as Error).message;
      this._result.replaceChildren(p);
      this.node.dataset.state = 'error';
      return;
    }
    if (generation !== this._generation) {
      return;
    }
    this._reply = reply;
    this._showReview(reply);
    this.node.dataset.state = 'reviewed';
    this._updateButton();
  }

  protected onAfterAttach(): void {
    this._updateButton();
  }

  private _showReview(reply: IPublishReply): void {
    const trans = this._trans;
    const parts: HTMLElement[] = [];
    const pending = reply.changes.filter(c => c.status !== 'unchanged');
    const summary = document.createElement('p');
    summary.className = 'jp-kyte-PublishDialog-summary';
    summary.textContent = pending.length
      ? trans._n(
          '%1 file will change. Review the difference, then publish.',
          '%1 files will change. Review the differences, then publish.',
          pending.length
        )
      : reply.changes.length
        ? trans.__('The target already holds these files: nothing to publish.')
        : trans.__('The notebook has no %1 cell: nothing to publish.', '%%dag');
    parts.push(summary);
    for (const change of reply.changes) {
      const box = document.createElement('details');
      box.className = 'jp-kyte-PublishDialog-file';
      box.dataset.filename = change.filename;
      box.dataset.status = change.status;
      box.open = change.status !== 'unchanged';
      const head = document.createElement('summary');
      const name = document.createElement('code');
      name.textContent = change.filename;
      const status = document.createElement('span');
      status.className = 'jp-kyte-PublishDialog-status';
      status.textContent =
        change.status === 'added'
          ? trans.__('new file')
          : change.status === 'changed'
            ? trans.__('changed')
            : trans.__('unchanged');
      const sha = document.createElement('span');
      sha.className = 'jp-kyte-PublishDialog-sha';
      sha.textContent = `sha256 ${change.sha256.slice(0, 12)}`;
      sha.title = change.sha256;
      head.append(name, ' ', status, ' ', sha);
      box.appendChild(head);
      if (change.diff) {
        box.appendChild(renderDiff(change.diff));
      }
      parts.push(box);
    }
    this._result.replaceChildren(...parts);
  }

  private _updateButton(): void {
    const button = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (button) {
      button.disabled = !this.canPublish;
    }
  }

  private readonly _select: HTMLSelectElement;
  private readonly _where: HTMLElement;
  private readonly _result: HTMLElement;
  private _reply: IPublishReply | null = null;
  private _generation = 0;
}

/**
 * Show the Publish dialog for a notebook; publish what the user reviewed and confirmed.
 */
export async function publishNotebook(
  trans: TranslationBundle,
  service: IKyteService,
  notebook: NotebookPanel,
  dagId?: string
): Promise<void> {
  const { context } = notebook;
  let targets: IPublishTarget[];
  try {
    targets = await service.getPublishTargets();
  } catch (error) {
    Notification.error(
      trans.__('Cannot list the publish targets: %1', (error as Error).message),
      { autoClose: false }
    );
    return;
  }
  if (!targets.length) {
    Notification.warning(
      trans.__(
        'No publish targets are configured. Ask the person who runs this Jupyter server to add some (KyteExtensionApp.publish_targets).'
      ),
      { autoClose: false }
    );
    return;
  }
  const path = context.localPath;
  const body = new PublishBody(trans, targets, async target => {
    if (context.model.dirty && !context.model.readOnly) {
      // Publishing reads the notebook file: save so what is reviewed is what is seen.
      await context.save();
    }
    return service.publish({
      path,
      target,
      dag_id: dagId ?? null,
      dry_run: true,
      expect: null
    });
  });
  const dialog = new Dialog({
    title: trans.__('Publish %1', context.localPath),
    body,
    // Enter cancels: publishing takes a click on Publish.
    defaultButton: 0,
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({
        label: trans.__('Publish'),
        caption: trans.__('Write the reviewed files to the target')
      })
    ]
  });
  void body.review();
  const result = await dialog.launch();
  const reply = body.reply;
  if (!result.button.accept || !reply || !body.canPublish) {
    return;
  }
  const expect = reviewedHashes(reply.changes);
  const target = body.target;
  const files = Object.keys(expect).join(', ');
  const id = Notification.emit(
    trans.__('Publishing %1 to %2\u2026', files, target),
    'in-progress',
    { autoClose: false }
  );
  try {
    const done = await service.publish({
      path,
      target,
      dag_id: dagId ?? null,
      dry_run: false,
      expect
    });
    Notification.update({
      id,
      message: done.commit
        ? trans.__(
            'Published %1 to %2 (commit %3).',
            files,
            target,
            done.commit.slice(0, 12)
          )
        : trans.__('Published %1 to %2.', files, target),
      type: 'success',
      autoClose: 8000
    });
  } catch (error) {
    Notification.update({
      id,
      message: trans.__(
        'Nothing was published to %1: %2',
        target,
        (error as Error).message
      ),
      type: 'error',
      autoClose: false
    });
  }
}
