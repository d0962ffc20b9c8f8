// The group-commit scheduler alone, with a write we control: how batches form, how equal keys are
// kept apart and in order, and what a failed write does. No database: the statement it normally
// drives (ingest/event-insert.ts) is covered by the ingest tests.
import { describe, expect, it } from "vitest";
import { GroupCommit, QueueFull } from "../src/ingest/group-commit.ts";

interface Item {
  id: number;
  key?: string;
}

/** A write that records each batch and finishes only when the test releases it. */
function controlledWrite() {
  const batches: number[][] = [];
  const pending: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const write = (batch: Item[]) => {
    batches.push(batch.map((i) => i.id));
    return new Promise<string[]>((resolve, reject) => {
      pending.push({ resolve: () => resolve(batch.map((i) => `ok-${i.id}`)), reject });
    });
  };
  const tick = () => new Promise((r) => setImmediate(r));
  return { batches, pending, write, tick };
}

function scheduler(write: (batch: Item[]) => Promise<string[]>, options: { writers?: number; maxRows?: number; maxQueuedRows?: number } = {}) {
  return new GroupCommit<Item, string>({ write, keyOf: (i) => i.key, sizeOf: () => 1, ...options });
}

describe("group commit scheduler", () => {
  it("writes a lone item at once and answers it with its own result", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write);
    const [p] = gc.submit([{ id: 1 }]);
    expect(w.batches).toEqual([[1]]);
    w.pending[0]!.resolve();
    expect(await p).toBe("ok-1");
  });

  it("items that arrive while a write is in flight go out together in the next one", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 1 });
    const first = gc.submit([{ id: 1 }]);
    const later = [...gc.submit([{ id: 2 }]), ...gc.submit([{ id: 3 }, { id: 4 }])];
    expect(w.batches).toEqual([[1]]);
    w.pending[0]!.resolve();
    await first[0];
    await w.tick();
    expect(w.batches).toEqual([[1], [2, 3, 4]]);
    w.pending[1]!.resolve();
    expect(await Promise.all(later)).toEqual(["ok-2", "ok-3", "ok-4"]);
  });

  it("holds an item back while a write with its key is in flight (equal keys inside one write are the write's to resolve)", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 2, maxRows: 4 });
    gc.submit([{ id: 1, key: "k" }]);
    // A backlog of a quarter of maxRows lets a second write start beside the first, without "k".
    const rest = gc.submit([{ id: 2, key: "k" }, { id: 3 }, { id: 4, key: "k" }, { id: 5 }]);
    expect(w.batches).toEqual([[1], [3, 5]]);
    w.pending[0]!.resolve();
    await w.tick();
    expect(w.batches[2]).toEqual([2, 4]);
    w.pending[1]!.resolve();
    w.pending[2]!.resolve();
    expect(await Promise.all(rest)).toEqual(["ok-2", "ok-3", "ok-4", "ok-5"]);
  });

  it("a failed write rejects every item in it, and the items queued behind it still go", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 1 });
    const failed = gc.submit([{ id: 1 }, { id: 2 }]);
    const next = gc.submit([{ id: 3 }]);
    w.pending[0]!.reject(new Error("connection lost"));
    await expect(failed[0]).rejects.toThrow("connection lost");
    await expect(failed[1]).rejects.toThrow("connection lost");
    await w.tick();
    expect(w.batches).toEqual([[1, 2], [3]]);
    w.pending[1]!.resolve();
    expect(await next[0]).toBe("ok-3");
  });

  it("splits a backlog into writes of at most maxRows", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 1, maxRows: 2 });
    gc.submit([{ id: 0 }]);
    const all = gc.submit([1, 2, 3, 4, 5].map((id) => ({ id })));
    for (let i = 0; i < 4; i++) {
      w.pending[i]!.resolve();
      await w.tick();
      await w.tick();
    }
    expect(w.batches).toEqual([[0], [1, 2], [3, 4], [5]]);
    w.pending[3]!.resolve();
    expect(await Promise.all(all)).toHaveLength(5);
  });

  it("past its bound a submission is refused whole, at once, with a retry hint; an empty queue takes anything", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 1, maxQueuedRows: 3 });
    gc.submit([{ id: 1 }]); // in flight: not queued
    const queued = gc.submit([{ id: 2 }, { id: 3 }]);
    expect(gc.full).toBe(false);
    let refused: unknown;
    try {
      gc.submit([{ id: 4 }, { id: 5 }]);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(QueueFull);
    expect((refused as QueueFull).retryAfterMs).toBeGreaterThanOrEqual(100);
    const one = gc.submit([{ id: 6 }]);
    expect(gc.full).toBe(true);
    w.pending[0]!.resolve();
    await w.tick();
    expect(w.batches).toEqual([[1], [2, 3, 6]]);
    w.pending[1]!.resolve();
    expect(await Promise.all([...queued, ...one])).toEqual(["ok-2", "ok-3", "ok-6"]);
    // Empty again: a submission larger than the bound is taken.
    const big = gc.submit([7, 8, 9, 10, 11].map((id) => ({ id })));
    w.pending[2]!.resolve();
    expect(await Promise.all(big)).toHaveLength(5);
  });

  it("answers a write once the next is on its way, but at once while the event loop runs late", async () => {
    const w = controlledWrite();
    const gc = scheduler(w.write, { writers: 1 });
    const microtasks = async () => {
      for (let i = 0; i < 20; i++) await Promise.resolve();
    };
    const answered = new Set<number>();
    const submit = (id: number) => void gc.submit([{ id }])[0]!.then(() => answered.add(id));

    submit(1);
    submit(2);
    w.pending[0]!.resolve();
    await microtasks();
    expect(w.batches).toEqual([[1], [2]]);
    expect(answered.has(1)).toBe(false); // deferred to the check phase, behind the write of 2
    await w.tick();
    expect(answered.has(1)).toBe(true);

    // The rest of a loop iteration takes 60 ms (a poll phase busy with thousands of sockets).
    submit(3);
    setImmediate(() => {
      const until = performance.now() + 60;
      while (performance.now() < until);
    });
    w.pending[1]!.resolve();
    await w.tick();
    await w.tick();
    expect(answered.has(2)).toBe(true);

    // Now late: the next write's callers are answered at once.
    submit(4);
    w.pending[2]!.resolve();
    await microtasks();
    expect(w.batches).toEqual([[1], [2], [3], [4]]);
    expect(answered.has(3)).toBe(true);

    // Once the loop keeps time again, answers are deferred again.
    await w.tick();
    submit(5);
    w.pending[3]!.resolve();
    await microtasks();
    expect(answered.has(4)).toBe(false);
    await w.tick();
    expect(answered.has(4)).toBe(true);
    w.pending[4]!.resolve();
  });
});
