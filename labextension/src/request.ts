import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * An error answered by the Kyte server: carries the parsed JSON body (`{message, problems?}`).
 */
export class KyteRequestError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string,
    readonly body: Record<string, unknown> | null
  ) {
    super(response, message);
  }

  /** The `problems` list of an export error, if any. */
  get problems(): unknown[] {
    const problems = this.body?.problems;
    return Array.isArray(problems) ? problems : [];
  }
}

/**
 * Call the Kyte server extension: the only way this extension talks to the server.
 *
 * @param endPoint API path below `{base_url}/kyte/`, with its query string.
 * @param init Initial values for the request (method, body, abort signal).
 * @param settings Server connection settings; the default ones when omitted.
 * @returns The parsed JSON response body.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const requestUrl = URLExt.join(settings.baseUrl, 'kyte', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
      if (response.ok) {
        throw new KyteRequestError(
          response,
          `The Kyte server answered ${endPoint} with something that is not JSON.`,
          null
        );
      }
    }
  }

  if (!response.ok) {
    const body =
      data && typeof data === 'object'
        ? (data as Record<string, unknown>)
        : null;
    const message =
      typeof body?.message === 'string'
        ? body.message
        : response.status === 404
          ? 'The Kyte server extension is not answering (is kyte_jupyter installed and enabled on the server?).'
          : `Kyte request failed (${response.status} ${response.statusText}).`;
    throw new KyteRequestError(response, message, body);
  }
  return data as T;
}
