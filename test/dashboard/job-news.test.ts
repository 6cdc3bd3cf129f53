import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLaterPhase, isOlderNews, isUnordered } from '../../web/src/job-news.ts';
import type { Job } from '../../web/src/types.ts';

const AT = '2026-12-05T10:00:00.000Z';
const queued = (id = 'a') => ({ id, startedAt: null, finishedAt: null }) as Job;
const running = (id = 'a') => ({ id, status: 'running', startedAt: AT, finishedAt: null }) as Job;
const finished = (id = 'a') => ({ id, startedAt: AT, finishedAt: AT }) as Job;
const paused = (id = 'a') => ({ ...running(id), status: 'paused' }) as Job;

describe("the dashboard's order of news about a job", () => {
  it('takes news of an earlier phase than the one shown as older', () => {
    assert.equal(isOlderNews(finished(), running()), true);
    assert.equal(isOlderNews(finished(), queued()), true);
    assert.equal(isOlderNews(running(), queued()), true);
  });

  it('takes news of the same or a later phase as news, and news of another job as news', () => {
    assert.equal(isOlderNews(queued(), running()), false);
    assert.equal(isOlderNews(running(), finished()), false);
    assert.equal(isOlderNews(running(), running()), false);
    assert.equal(isOlderNews(finished(), finished()), false);
    // A page that moves to another job shows it, whatever the one before was.
    assert.equal(isOlderNews(finished('a'), queued('b')), false);
  });

  it('lets an event heard during a load replace the answer only with a later phase', () => {
    assert.equal(isLaterPhase(running(), finished()), true);
    assert.equal(isLaterPhase(queued(), running()), true);
    // The same phase: the answer may be the newer (a pause sends no event).
    assert.equal(isLaterPhase(running(), running()), false);
    assert.equal(isLaterPhase(finished(), running()), false);
    assert.equal(isLaterPhase(running('a'), finished('b')), false);
  });

  it('takes news of the same phase and another status as not to be ordered (a pause, a resume)', () => {
    assert.equal(isUnordered(running(), paused()), true);
    assert.equal(isUnordered(paused(), running()), true);
    assert.equal(isUnordered(running(), running()), false);
    assert.equal(isUnordered(running(), finished()), false);
    assert.equal(isUnordered(running('a'), paused('b')), false);
  });
});
