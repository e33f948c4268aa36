/** The websocket URL of an API path on this origin. */
export function wsURL(path: string, loc: Pick<Location, 'protocol' | 'host'> = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/api/v1${path}`;
}
