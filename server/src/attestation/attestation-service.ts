// AttestationService: checkpoints, keys and consistency proofs for any authenticated caller;
// inclusion proofs and bundles only for the tenant that owns the attempt. Checkpoints and bundles
// come either from the latest signed checkpoint or, with `witnessed`, from the latest one whose
// witness cosignatures meet the quorum.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import {
  GetCheckpointResponseSchema, PublicKeySchema, type AttestationService,
  type GetCheckpointRequest, type GetConsistencyProofRequest, type GetInclusionProofRequest, type GetProofBundleRequest,
} from "@kapsel/contracts/attestation";
import { latestCheckpoint, type CheckpointFeed, type StoredCheckpoint } from "./checkpoints.ts";
import type { Proofs } from "./proofs.ts";
import { publishedKeys } from "./signing-keys.ts";
import type { WitnessedCheckpoint } from "./witnessing/witnessed-checkpoints.ts";

/** What the service needs of witnessing. */
export interface WitnessedSource {
  /** False when KAPSEL_WITNESSES is empty. */
  readonly configured: boolean;
  latest(): Promise<WitnessedCheckpoint | undefined>;
  /** The retry hint while nothing (or not the attempt) is witnessed yet. */
  readonly retryAfterMs: number;
}

function toProto(c: StoredCheckpoint | WitnessedCheckpoint, origin: string) {
  return create(GetCheckpointResponseSchema, {
    checkpoint: c.note,
    treeSize: BigInt(c.treeSize),
    rootHash: new Uint8Array(c.rootHash),
    timestamp: timestampFromDate(c.signedAt),
    origin,
    witnesses: "cosignedBy" in c ? [...c.cosignedBy] : [],
  });
}

function size(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new KapselError("E3002", `${field} is out of range`);
  return Number(value);
}

export function attestationService(
  pool: DatabasePool, proofs: Proofs, feed: CheckpointFeed, witnessed: WitnessedSource, origin: string, pollMs: number,
): ServiceImpl<typeof AttestationService> {
  const latest = async () => {
    const c = await latestCheckpoint(pool);
    if (!c) throw new KapselError("E3001", "the log has not signed its first checkpoint yet", { retryAfterMs: pollMs });
    return c;
  };
  const requireWitnesses = () => {
    if (!witnessed.configured) throw new KapselError("E3004", "this log has no witnesses configured (KAPSEL_WITNESSES), so no checkpoint is witnessed");
  };
  const latestWitnessed = async () => {
    requireWitnesses();
    const c = await witnessed.latest();
    if (!c) throw new KapselError("E3001", "no checkpoint has met the witness quorum yet", { retryAfterMs: witnessed.retryAfterMs });
    return c;
  };
  return {
    getCheckpoint: async (req: GetCheckpointRequest) => toProto(req.witnessed ? await latestWitnessed() : await latest(), origin),

    getPublicKeys: async () => ({
      keys: (await publishedKeys(pool)).map((k) => create(PublicKeySchema, {
        vkey: k.vkey,
        keyId: k.keyId,
        validFrom: timestampFromDate(k.validFrom),
        validUntil: k.validUntil ? timestampFromDate(k.validUntil) : undefined,
      })),
    }),

    getInclusionProof: async (req: GetInclusionProofRequest, ctx: HandlerContext) => {
      const p = await proofs.inclusion(tenantOf(ctx), req.attemptId, size(req.treeSize, "tree_size"));
      return {
        leafIndex: BigInt(p.index),
        treeSize: BigInt(p.checkpoint.treeSize),
        proof: p.proof.map((h) => new Uint8Array(h)),
        receipt: new Uint8Array(p.receipt),
        checkpoint: p.checkpoint.note,
      };
    },

    getConsistencyProof: async (req: GetConsistencyProofRequest) => ({
      proof: (await proofs.consistency(size(req.oldSize, "old_size"), size(req.newSize, "new_size"))).map((h) => new Uint8Array(h)),
    }),

    getProofBundle: async (req: GetProofBundleRequest, ctx: HandlerContext) => {
      if (!req.witnessed) return { bundle: await proofs.bundle(tenantOf(ctx), req.attemptId) };
      requireWitnesses();
      return { bundle: await proofs.bundleAt(tenantOf(ctx), req.attemptId, await witnessed.latest(), witnessed.retryAfterMs) };
    },

    async *watchCheckpoints(_req: unknown, ctx: HandlerContext) {
      let last = -1;
      while (!ctx.signal.aborted) {
        const c = await latestCheckpoint(pool);
        if (c && c.treeSize > last) {
          last = c.treeSize;
          yield { checkpoint: toProto(c, origin) };
        }
        // Checkpoints signed here arrive at once; those signed by another process on the next poll.
        await feed.next(pollMs, ctx.signal);
      }
      // A deadline or cancellation must reach the client as such, not as a normal end of stream.
      throw ctx.signal.reason;
    },
  };
}
