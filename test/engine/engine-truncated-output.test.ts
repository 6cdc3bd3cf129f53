import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import type { OutputEvent, OutputSelector } from '../../src/output/output-types.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

// A job that reopens its own stderr with O_TRUNC (`echo x > /dev/stderr`, the reviewer's case)
// truncates its output file: the bytes before are lost (as with `cmd 2>file`), but every view stays
// readable, says where bytes were lost, and shows what the job wrote after, in order.

const me = { user: 'tester' };
const FIRST = 'starting a long step with many details\n';
const AFTER = 'Error: bad input\n';
let h: Harness;
const warnings: { details: Record<string, unknown>; message: string }[] = [];

before(async () => {
  h = await openHarness({
    logger: {
      debug() {},
      info() {},
      error() {},
      warn: (details, message) => warnings.push({ details: details as Record<string, unknown>, message }),
    },
  });
});
after(() => h.destroy());

/** A view's events, read page by page from cursor 0 to its end. */
async function readView(id: string, selector: OutputSelector): Promise<OutputEvent[]> {
  const events: OutputEvent[] = [];
  let cursor = 0;
  for (;;) {
    const page = await h.engine.readOutput(id, { selector, cursor, limitBytes: 100_000 });
    events.push(...page.events);
    if (page.cursor === cursor) return events;
    cursor = page.cursor;
  }
}

/** The view as text, a lost stretch as `[lost N]`. */
function render(events: readonly OutputEvent[]): string {
  return events.map((e) => (e.type === 'data' ? e.data.toString() : `[lost ${e.skippedBytes}]`)).join('');
}

/** Follows a view from 0, collecting its events; `seen(text)` resolves once the data so far ends with it. */
function follower(id: string, selector: OutputSelector) {
  const events: OutputEvent[] = [];
  const waits: { text: string; resolve: () => void }[] = [];
  const check = () => {
    const data = render(events.filter((e) => e.type === 'data'));
    for (const w of waits.splice(0)) {
      if (data.endsWith(w.text)) w.resolve();
      else waits.push(w);
    }
  };
  const done = (async () => {
    for await (const event of h.engine.follow(id, { selector, cursor: 0 })) {
      if (event.type === 'end') return event.job;
      if (event.type === 'output') {
        events.push(...event.events);
        check();
      }
    }
    throw new Error('the follow ended without its end event');
  })();
  // Bounded, so that a follower that silently misses the text fails the test instead of hanging it.
  const seen = (text: string, timeoutMs = 20_000) => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      new Promise<void>((resolve) => {
        waits.push({ text, resolve });
        check();
      }),
      done.then(() => {
        throw new Error(`the ${selector} follow ended before it saw ${JSON.stringify(text)}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const got = JSON.stringify(render(events));
          reject(new Error(`the ${selector} follower never saw ${JSON.stringify(text)}; it has ${got}`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  return { events, seen, done };
}

it('a job that writes "> /dev/stderr" keeps every view readable, marks the lost bytes, and shows what came after', {
  timeout: 60_000,
}, async () => {
  const gates = [1, 2].map((n) => join(h.dataDir, `gate-${n}-${process.hrtime.bigint()}`));
  for (const gate of gates) execFileSync('mkfifo', ['-m', '0666', gate]);
  const script = `printf '${FIRST.trimEnd()}\\n' >&2; read go < ${gates[0]}; echo "${AFTER.trimEnd()}" > /dev/stderr; read go < ${gates[1]}; echo done`;
  const job = await h.engine.start({ command: 'sh', args: ['-c', script] }, me);
  const stderr = follower(job.id, 'stderr');
  const all = follower(job.id, 'all');
  await Promise.all([stderr.seen(FIRST), all.seen(FIRST)]);

  await writeFile(gates[0]!, 'go\n');
  // Followers at the end of the first line (a cursor the truncated file no longer reaches) get
  // what the job wrote after it, not BAD_CURSOR, and not silence.
  await Promise.all([stderr.seen(AFTER), all.seen(AFTER)]);
  await writeFile(gates[1]!, 'go\n');
  const [ended] = await Promise.all([stderr.done, all.done]);
  assert.equal(ended.status, 'succeeded');

  // They were shown every byte as it came: nothing they were shown is marked lost.
  assert.equal(render(stderr.events), FIRST + AFTER);
  assert.equal(render(all.events), `${FIRST}${AFTER}done\n`);

  // Read afterwards, the views say where the job's truncation lost bytes, then go on in order.
  const lost = FIRST.length;
  assert.equal(render(await readView(job.id, 'stderr')), `[lost ${lost}]${AFTER}`);
  assert.equal(render(await readView(job.id, 'all')), `[lost ${lost}]${AFTER}done\n`);
  assert.equal(render(await readView(job.id, 'stdout')), 'done\n');
  const marker = (await readView(job.id, 'all'))[0];
  assert.deepEqual(marker, { type: 'truncated', stream: 'stderr', skippedBytes: lost, cursor: lost });
  // A follow of the finished job from 0 is the same catch-up.
  const late = follower(job.id, 'all');
  await late.done;
  assert.equal(render(late.events), `[lost ${lost}]${AFTER}done\n`);

  // Byte counts are stream offsets: the lost bytes still count, as retention's do.
  const record = await h.engine.get(job.id);
  assert.deepEqual(record.outputBytes, { stdout: 5, stderr: lost + AFTER.length });

  // The server log says which job truncated what, and where.
  const told = warnings.filter((w) => w.details.jobId === job.id && w.details.stream === 'stderr');
  assert.equal(told.length, 1, JSON.stringify(warnings));
  assert.equal(told[0]!.details.at, lost);
  assert.match(told[0]!.message, /truncated its own stderr at byte 39/);
});
