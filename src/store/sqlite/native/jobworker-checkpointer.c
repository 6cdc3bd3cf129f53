/*
 * jobworker-checkpointer: copies the server's SQLite WAL into its database on request, in a
 * process of its own, so that the copy (and its fsyncs) never stalls the server's event loop.
 *
 * node:sqlite runs every statement on the event loop, and SQLite's automatic checkpoint runs
 * inside the commit that takes the WAL past its threshold: with jobworker's 8,000 pages that was
 * a 130 ms stall of every request and follower. The server turns its connection's automatic
 * checkpoint off while this helper runs (but for a distant backstop), and asks it for a passive
 * checkpoint every 250 ms while it writes (src/store/sqlite/wal-checkpointer.ts). A passive checkpoint waits for no reader and
 * no writer: the server's commits go on beside it, and SQLite's own locks on the database's files
 * keep the two processes apart, as they do any two connections.
 *
 * Usage: jobworker-checkpointer DATABASE (the database exists, in WAL mode).
 * Protocol, one line each way per request, on stdin and stdout:
 *   server -> helper: "checkpoint\n"
 *   helper -> server: "ok LOG CHECKPOINTED\n" (frames in the WAL, frames now in the database, as
 *                     of the last of the request's passes)
 *                     or "err CODE MESSAGE\n" (SQLite's result code and message; it goes on)
 * It ends at end of file on stdin. Anything it cannot recover from is written to stderr, and it
 * exits non-zero: the server then checkpoints on its own connection again.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Passes of one request at most, and the frames a pass may leave for the next request. */
#define MAX_PASSES 8
#define FEW_FRAMES 64

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: jobworker-checkpointer DATABASE\n");
    return 2;
  }
  /* The file it opens, to know it again at the end. */
  struct stat opened;
  if (stat(argv[1], &opened) != 0) {
    perror("jobworker-checkpointer: stat");
    return 1;
  }
  sqlite3 *db = NULL;
  /* Never created here: the server made it (and owns its mode and its migrations). */
  int rc = sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "jobworker-checkpointer: cannot open %s: %s\n", argv[1], db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return 1;
  }
  /* The checkpoint takes the WAL's checkpoint lock, which only this process asks for: a busy
     answer can come only from a server connection that checkpoints itself (at its close). */
  sqlite3_busy_timeout(db, 5000);
  /* A connection finds the WAL at its first read; until then a checkpoint is a no-op that answers
     -1 frames. This read also refuses a database that is not in WAL mode. */
  sqlite3_stmt *mode = NULL;
  rc = sqlite3_prepare_v2(db, "pragma journal_mode", -1, &mode, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(mode);
  const char *name = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(mode, 0) : NULL;
  if (name == NULL || strcmp(name, "wal") != 0) {
    fprintf(stderr, "jobworker-checkpointer: %s is not in WAL mode (%s)\n", argv[1],
            name != NULL ? name : sqlite3_errmsg(db));
    sqlite3_finalize(mode);
    sqlite3_close(db);
    return 1;
  }
  sqlite3_finalize(mode);
  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strcmp(line, "checkpoint\n") != 0) {
      fprintf(stderr, "jobworker-checkpointer: unknown request: %s", line);
      sqlite3_close(db);
      return 1;
    }
    /* A pass copies the frames there were when it began; the server commits meanwhile. Passes
       follow one another while the one before left many behind (each is shorter than the one
       before when copying outpaces writing), so that what is left for the server's own catch-up
       (which lets its next write start the WAL over: wal-checkpointer.ts) is a few frames. */
    int log = -1, done = -1, previous = -1, passes = 0;
    for (;;) {
      int pass_log = -1, pass_done = -1;
      rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &pass_log, &pass_done);
      /* A later pass that failed (its lock taken for a moment) leaves the answer to the passes
         that did their work. */
      if (rc != SQLITE_OK) {
        if (passes > 0) rc = SQLITE_OK;
        break;
      }
      log = pass_log;
      done = pass_done;
      if (++passes == MAX_PASSES) break;
      /* Frames written since the last pass began (all of them, at the first); fewer than before
         means the server started the WAL over meanwhile. */
      int grown = previous < 0 ? log : log - previous;
      previous = log;
      if (grown <= FEW_FRAMES) break;
    }
    if (rc == SQLITE_OK)
      printf("ok %d %d\n", log, done);
    else
      printf("err %d %s\n", rc, sqlite3_errmsg(db));
    fflush(stdout);
  }
  /* The last connection to close checkpoints the whole WAL and removes its files, by name: when
     the server closed first, that is this one, as it should be. But once the database at that
     name is another file (deleted and made anew, as `--reset-store` after a crash may), those
     names are the new database's: then this connection closes without touching them. (A
     database made anew during the close itself is not seen: the window is that checkpoint.)
     SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE needs SQLite 3.16 or later. */
  struct stat now;
  if (stat(argv[1], &now) != 0 || now.st_dev != opened.st_dev || now.st_ino != opened.st_ino)
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
  sqlite3_close(db);
  return 0;
}
