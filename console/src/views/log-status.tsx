// The log's state in the header: its size, and whether this visit's consistency check passed.
import { Link } from "../router/router.tsx";
import { useTrust } from "../proof/trust-context.tsx";

export function LogStatus() {
  const { visit, status, alarm, loading } = useTrust();
  let text: string;
  let kind = "ok";
  if (alarm) {
    text = "log fork detected";
    kind = "bad";
  } else if (loading || visit.state === "checking") {
    text = "checking the log…";
    kind = "muted";
  } else if (status === "unpinned") {
    text = "log key not pinned";
    kind = "warn";
  } else if (visit.state === "error") {
    text = "log check failed";
    kind = "warn";
  } else if (visit.link?.kind === "unchecked") {
    text = "log not checked";
    kind = "warn";
  } else if (visit.link?.kind === "older") {
    text = `server shows an older checkpoint (${visit.link.facts.treeSize} < ${visit.link.latest})`;
    kind = "warn";
  } else {
    text = `log consistent · ${visit.treeSize ?? "?"} entries`;
  }
  return (
    <Link to="/console/log" className={`log-status ${kind}`} data-testid="log-status">
      {text}
    </Link>
  );
}
