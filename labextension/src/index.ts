import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { CommandToolbarButton, launchIcon } from '@jupyterlab/ui-components';

// The panel, the model and the commands make the sidebar at activation: imported eagerly.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { addCommands } from './commands';
import { exportIcon } from './icons';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KyteModel } from './model';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KytePanel } from './panel';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KyteService } from './service';
import { CommandIDs, IKyteModel, IKyteService } from './tokens';

export { CommandIDs, IKyteModel, IKyteService } from './tokens';

/**
 * The REST client of the Kyte server extension.
 */
const servicePlugin: JupyterFrontEndPlugin<IKyteService> = {
  id: 'kyte-jupyter:service',
  description: 'Provides the client of the Kyte server extension REST API.',
  autoStart: true,
  provides: IKyteService,
  activate: (app: JupyterFrontEnd): IKyteService =>
    new KyteService(app.serviceManager.serverSettings)
};

/**
 * The Kyte model: follows the active notebook, polls its session's DAGs.
 */
const modelPlugin: JupyterFrontEndPlugin<IKyteModel> = {
  id: 'kyte-jupyter:model',
  description:
    "Provides the Kyte model: the active notebook's session, its DAGs (polled) and the selection.",
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  provides: IKyteModel,
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker
  ): IKyteModel => {
    // Poll only while something shows the DAGs: the sidebar or a task log.
    const shown = (id: string): boolean =>
      !!document.getElementById(id)?.checkVisibility?.();
    const model = new KyteModel({
      service,
      standby: () => !shown('kyte-sidebar') && !shown('kyte-log')
    });
    model.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect((_, notebook) =>
      model.setNotebook(notebook)
    );
    return model;
  }
};

/**
 * The sidebar DAG viewer, the task log viewer and the task commands.
 */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:sidebar',
  description:
    'A left-sidebar panel showing the DAGs of the active notebook, their live task states and logs.',
  autoStart: true,
  requires: [IKyteModel, IKyteService],
  optional: [ILayoutRestorer, ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: IKyteModel,
    service: IKyteService,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    translator = translator ?? nullTranslator;
    const panel = new KytePanel({
      model,
      commands: app.commands,
      translator,
      service
    });
    app.shell.add(panel, 'left', { rank: 650, type: 'Kyte' });
    restorer?.add(panel, 'kyte-sidebar');
    const openLog = addCommands(app, {
      model,
      service,
      translator,
      palette,
      fit: () => panel.fit(),
      panelId: panel.id
    });
    panel.taskActivated.connect((_, ref) => void openLog(ref));
  }
};

/**
 * "Export to Airflow DAG": command palette and notebook toolbar.
 */
const exportPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:export',
  description:
    'Exports the active notebook to Airflow DAG files, from the palette and toolbar.',
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  optional: [ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    const { commands } = app;
    const trans = (translator ?? nullTranslator).load('kyte_jupyter');
    commands.addCommand(CommandIDs.exportDag, {
      label: trans.__('Export to Airflow DAG'),
      // Magics are arguments: the translator reads '%%' in a message as an escaped '%'.
      caption: trans.__(
        'Write one Airflow DAG file per DAG of this notebook (kyte-include cells and %1 cells)',
        '%%dag'
      ),
      icon: exportIcon,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            path: {
              type: 'string',
              description:
                'Notebook path relative to the server root (the active notebook)'
            },
            dagId: { type: 'string', description: 'Export only this DAG' }
          }
        }
      },
      isEnabled: () => !!tracker.currentWidget,
      execute: async args => {
        const notebook =
          (typeof args.path === 'string'
            ? tracker.find(nb => nb.context.localPath === args.path)
            : null) ?? tracker.currentWidget;
        if (!notebook) {
          return;
        }
        const { exportNotebook } = await import('./exportdialog');
        await exportNotebook(
          trans,
          service,
          notebook,
          args.dagId as string | undefined
        );
      }
    });
    palette?.addItem({
      command: CommandIDs.exportDag,
      category: trans.__('Kyte')
    });
    // Its enabled state follows the active notebook (the Kyte sidebar's button too, which may
    // have been made before the command existed).
    tracker.currentChanged.connect(() =>
      commands.notifyCommandChanged(CommandIDs.exportDag)
    );
    commands.notifyCommandChanged(CommandIDs.exportDag);

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new CommandToolbarButton({
          commands,
          id: CommandIDs.exportDag,
          label: ''
        });
        button.addClass('jp-kyte-exportButton');
        panel.toolbar.insertItem(10, 'kyteExport', button);
        return button;
      }
    });
  }
};

/**
 * "Publish…": review, then publish the notebook's DAG files to a configured target.
 */
const publishPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:publish',
  description:
    "Publishes the active notebook's DAG files to a folder or git branch after a review, from the palette and toolbar.",
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  optional: [ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    const { commands } = app;
    const trans = (translator ?? nullTranslator).load('kyte_jupyter');
    commands.addCommand(CommandIDs.publish, {
      label: trans.__('Publish\u2026'),
      caption: trans.__(
        'Review, then publish the DAG files of this notebook to a folder or git branch'
      ),
      icon: launchIcon,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            path: {
              type: 'string',
              description:
                'Notebook path relative to the server root (the active notebook)'
            },
            dagId: { type: 'string', description: 'Publish only this DAG' }
          }
        }
      },
      isEnabled: () => !!tracker.currentWidget,
      execute: async args => {
        const notebook =
          (typeof args.path === 'string'
            ? tracker.find(nb => nb.context.localPath === args.path)
            : null) ?? tracker.currentWidget;
        if (!notebook) {
          return;
        }
        const { publishNotebook } = await import('./publish');
        await publishNotebook(
          trans,
          service,
          notebook,
          args.dagId as string | undefined
        );
      }
    });
    palette?.addItem({
      command: CommandIDs.publish,
      category: trans.__('Kyte')
    });
    tracker.currentChanged.connect(() =>
      commands.notifyCommandChanged(CommandIDs.publish)
    );
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new CommandToolbarButton({
          commands,
          id: CommandIDs.publish,
          label: ''
        });
        button.addClass('jp-kyte-publishButton');
        panel.toolbar.insertItem(11, 'kytePublish', button);
        return button;
      }
    });
  }
};

/**
 * Tells each notebook's kernel which `%%dag` cells the notebook holds (comm `kyte.notebook`).
 */
const notebookCommPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:notebook-comm',
  description:
    "Keeps each notebook's kernel told of the notebook's %%dag cells, so deleted cells' DAGs go.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IKyteModel],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    model: IKyteModel | null
  ): void => {
    tracker.widgetAdded.connect(async (_, panel) => {
      const { NotebookCellSync } = await import('./notebookcomm');
      const sync = new NotebookCellSync(panel, messages => {
        Notification.info(messages.join('\n'), { autoClose: 10000 });
        void model?.refresh();
      });
      panel.disposed.connect(() => sync.dispose());
    });
  }
};

export default [
  servicePlugin,
  modelPlugin,
  sidebarPlugin,
  exportPlugin,
  publishPlugin,
  notebookCommPlugin
];
