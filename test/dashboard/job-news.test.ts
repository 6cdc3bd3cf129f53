import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isOlderNews } from '../../web/src/job-news.ts';
import type { Job } from '../../web/src/types.ts';

const job = (id: string, finishedAt: string | null) => ({ id, finishedAt }) as Job;

describe("the dashboard's order of news about a job", () => {
  it('takes news of a job not finished, after its end, as older than what is shown', () => {
    assert.equal(isOlderNews(job('a', '2026-12-05T10:00:00.000Z'), job('a', null)), true);
  });

  it('takes any other news as newer: an end, a change while running, another job', () => {
    assert.equal(isOlderNews(job('a', null), job('a', '2026-12-05T10:00:00.000Z')), false);
    assert.equal(isOlderNews(job('a', null), job('a', null)), false);
    assert.equal(
      isOlderNews(job('a', '2026-12-05T10:00:00.000Z'), job('a', '2026-12-05T10:00:00.000Z')),
      false,
    );
    // A page that moves to another job shows it, whatever the one before was.
    assert.equal(isOlderNews(job('a', '2026-12-05T10:00:00.000Z'), job('b', null)), false);
  });
});
