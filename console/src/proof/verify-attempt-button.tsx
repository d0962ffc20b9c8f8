// "Verify" on one attempt: runs verifyAttempt in the page and shows what was proven. On first use
// it asks for the log key to be pinned first, then carries on.
import { useState } from "react";
import { DownloadLink } from "../components/download-link.tsx";
import { PinKeyPrompt } from "./pin-key-prompt.tsx";
import { useTrust } from "./trust-context.tsx";
import type { VerifyReport } from "./verify-attempt.ts";

export interface PayloadFile {
  name: string;
  bytes: Uint8Array;
}

export function VerifyAttemptButton({ attemptId, eventId, payload }: { attemptId: string; eventId: string; payload?: PayloadFile }) {
  const trust = useTrust();
  const [state, setState] = useState<"idle" | "pin" | "running">("idle");
  const [report, setReport] = useState<VerifyReport>();

  const run = async () => {
    setState("running");
    setReport(undefined);
    const result = await trust.verify({ attemptId, eventId, payload: payload?.bytes, payloadName: payload?.name });
    setReport(result);
    setState("idle");
  };
  const start = () => {
    if (trust.status === "unpinned") setState("pin");
    else void run();
  };

  return (
    <div className="verify">
      <button data-testid="verify-attempt" onClick={start} disabled={state === "running" || trust.loading}>
        {state === "running" ? "Verifying…" : payload ? "Verify (with payload)" : "Verify"}
      </button>
      {state === "pin" && <PinKeyPrompt onPinned={() => void run()} />}
      {report && (
        <div className={report.ok ? "verify-outcome verified" : "verify-outcome failed"}>
          <p data-testid="verify-result" data-ms={report.ms?.toFixed(2)}>
            {report.text}
          </p>
          {report.bundle && (
            <small>
              {report.ms !== undefined && `Checked in the page in ${report.ms.toFixed(1)} ms. `}
              <DownloadLink text={report.bundle} filename={`attempt-${attemptId}.tlog-proof`}>
                Download the proof bundle
              </DownloadLink>{" "}
              (check it offline with <code>kapsel-verify proof FILE --key VKEY</code>)
            </small>
          )}
        </div>
      )}
    </div>
  );
}
