import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import {
  IDagInfo,
  IDagRun,
  IDagVersion,
  IDagVersionDiff,
  IDagVersionGraph,
  IExportOptions,
  IExportRequest,
  IExportResult,
  IKyteService,
  ILogChunk,
  ILogRequest,
  ILogSearch,
  IPublishReply,
  IPublishRequest,
  IPublishTarget,
  ISession,
  ITaskInstance
} from './tokens';

const enc = encodeURIComponent;

/** The try and map index of a log request, as a query. */
function logQuery(request: ILogRequest): URLSearchParams {
  const query = new URLSearchParams();
  if (request.tryNumber !== undefined) {
    query.set('try', String(request.tryNumber));
  }
  query.set('map_index', String(request.mapIndex ?? -1));
  return query;
}

/** The path of a task log's route. */
function logPath(
  sessionId: string,
  dagId: string,
  runId: string,
  taskId: string,
  query: URLSearchParams
): string {
  return (
    `sessions/${enc(sessionId)}/dags/${enc(dagId)}/runs/${enc(runId)}` +
    `/tasks/${enc(taskId)}/logs?${query.toString()}`
  );
}

/**
 * The Kyte REST client: typed wrappers over `requestAPI()`.
 */
export class KyteService implements IKyteService {
  constructor(
    private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  async findSession(notebookPath: string): Promise<ISession | null> {
    const sessions = await this._get<ISession[]>(
      `sessions?path=${enc(notebookPath)}`
    );
    return sessions.length > 0 ? sessions[0] : null;
  }

  getDags(sessionId: string, init: RequestInit = {}): Promise<IDagInfo[]> {
    return this._get<IDagInfo[]>(`sessions/${enc(sessionId)}/dags`, init);
  }

  getRuns(sessionId: string, dagId: string): Promise<IDagRun[]> {
    return this._get<IDagRun[]>(
      `sessions/${enc(sessionId)}/dags/${enc(dagId)}/runs`
    );
  }

  getTaskInstances(
    sessionId: string,
    dagId: string,
    runId: string
  ): Promise<ITaskInstance[]> {
    return this._get<ITaskInstance[]>(
      `sessions/${enc(sessionId)}/dags/${enc(dagId)}/runs/${enc(runId)}/tasks`
    );
  }

  getLog(
    sessionId: string,
    dagId: string,
    runId: string,
    taskId: string,
    request: ILogRequest = {},
    init: RequestInit = {}
  ): Promise<ILogChunk> {
    const query = logQuery(request);
    query.set('offset', String(request.offset ?? 0));
    if (request.limit !== undefined) {
      query.set('limit', String(request.limit));
    }
    return this._get<ILogChunk>(
      logPath(sessionId, dagId, runId, taskId, query),
      init
    );
  }

  searchLog(
    sessionId: string,
    dagId: string,
    runId: string,
    taskId: string,
    text: string,
    request: ILogRequest = {},
    init: RequestInit = {}
  ): Promise<ILogSearch> {
    const query = logQuery(request);
    query.set('search', text);
    return this._get<ILogSearch>(
      logPath(sessionId, dagId, runId, taskId, query),
      init
    );
  }

  getAudit(sessionId: string): Promise<Record<string, unknown>[]> {
    return this._get<Record<string, unknown>[]>(
      `sessions/${enc(sessionId)}/audit`
    );
  }

  exportNotebook(
    notebookPath: string,
    dagId?: string,
    options: IExportOptions = {}
  ): Promise<IExportResult> {
    const body: IExportRequest = { path: notebookPath };
    if (dagId) {
      body.dag_id = dagId;
    }
    if (options.tests) {
      body.tests = true;
    }
    return requestAPI<IExportResult>(
      'export',
      { method: 'POST', body: JSON.stringify(body) },
      this._settings
    );
  }

  getVersions(sessionId: string, dagId: string): Promise<IDagVersion[]> {
    return this._get<IDagVersion[]>(
      `sessions/${enc(sessionId)}/dags/${enc(dagId)}/versions`
    );
  }

  getVersionGraph(
    sessionId: string,
    dagId: string,
    version: number
  ): Promise<IDagVersionGraph> {
    return this._get<IDagVersionGraph>(
      `sessions/${enc(sessionId)}/dags/${enc(dagId)}/versions/${version}`
    );
  }

  getVersionDiff(
    sessionId: string,
    dagId: string,
    versions: { old?: number; new?: number } = {}
  ): Promise<IDagVersionDiff> {
    const query = new URLSearchParams();
    if (versions.old !== undefined) {
      query.set('old', String(versions.old));
    }
    if (versions.new !== undefined) {
      query.set('new', String(versions.new));
    }
    const q = query.toString();
    return this._get<IDagVersionDiff>(
      `sessions/${enc(sessionId)}/dags/${enc(dagId)}/diff${q ? '?' + q : ''}`
    );
  }

  getPublishTargets(): Promise<IPublishTarget[]> {
    return this._get<IPublishTarget[]>('publish/targets');
  }

  publish(request: IPublishRequest): Promise<IPublishReply> {
    return requestAPI<IPublishReply>(
      'publish',
      { method: 'POST', body: JSON.stringify(request) },
      this._settings
    );
  }

  private _get<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
    return requestAPI<T>(endPoint, { method: 'GET', ...init }, this._settings);
  }
}
