// JSON values in localStorage under the console's prefix. Trust material (pinned keys, the last
// verified checkpoint, a fork alarm) must outlive the session, unlike the credential.
const PREFIX = "kapsel.console.";

export function readJson<T>(key: string): T | undefined {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  } catch {
    return undefined;
  }
}

export function writeJson(key: string, value: unknown): void {
  localStorage.setItem(PREFIX + key, JSON.stringify(value));
}

export function removeKey(key: string): void {
  localStorage.removeItem(PREFIX + key);
}
