// A link that saves text or bytes as a file, through a Blob URL (no data: URL for the CSP to allow).
import { useEffect, useMemo, type ReactNode } from "react";

export function DownloadLink({ text, filename, children, testId }: { text: string | Uint8Array<ArrayBuffer>; filename: string; children: ReactNode; testId?: string }) {
  const url = useMemo(
    () => URL.createObjectURL(new Blob([text], { type: typeof text === "string" ? "text/plain;charset=utf-8" : "application/octet-stream" })),
    [text],
  );
  useEffect(() => () => URL.revokeObjectURL(url), [url]);
  return (
    <a href={url} download={filename} data-testid={testId} className="download">
      {children}
    </a>
  );
}
