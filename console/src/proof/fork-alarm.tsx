// The red, persistent alarm shown on every page once the log has shown two histories. It cannot be
// dismissed from here: the evidence (both signed checkpoints, the proof that failed) is offered
// for download, and clearing it is a deliberate act on the log page.
import { DownloadLink } from "../components/download-link.tsx";
import { Link } from "../router/router.tsx";
import { useTrust } from "./trust-context.tsx";

export function ForkAlarmBanner() {
  const { alarm } = useTrust();
  if (!alarm) return null;
  return (
    <div className="fork-alarm" role="alert" data-testid="fork-alarm">
      <strong>Log fork detected: the log {alarm.logName} has shown two different histories.</strong>
      <p>
        {alarm.reason.charAt(0).toUpperCase() + alarm.reason.slice(1)}. A checkpoint this browser verified earlier and one
        presented later are both signed by your pinned key, but no consistency proof links them. Save the evidence below
        and report it; proofs from this server can no longer be taken at face value. Detected {alarm.detectedAt}.
      </p>
      <p className="evidence">
        <DownloadLink text={alarm.old} filename="checkpoint-verified-earlier.txt" testId="fork-evidence-old">
          Checkpoint verified earlier
        </DownloadLink>
        <DownloadLink text={alarm.new} filename="checkpoint-presented-later.txt" testId="fork-evidence-new">
          Checkpoint presented later
        </DownloadLink>
        {alarm.proof && (
          <DownloadLink text={alarm.proof} filename="consistency-proof.txt" testId="fork-evidence-proof">
            Consistency proof given
          </DownloadLink>
        )}
        <Link to="/console/log">Log details</Link>
      </p>
    </div>
  );
}
