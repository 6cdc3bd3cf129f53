/*
 * jobworker-spawner: owns fork/exec for the jobworker server (DESIGN.md decisions 2, 8 and 9).
 *
 * The server starts one spawner and writes requests to its stdin; the spawner answers on its
 * stdout. Node cannot fork cheaply once its heap grows, cannot setsid + join a cgroup + exec
 * without a shell in between, and a shell wrapper shows in `ps` and writes into the job's stderr:
 * this small program does all three with a fixed footprint. It also removes what a job left in its
 * io directory, as the job's account (see run_removal): that takes a process of the account's, and
 * the server does not fork.
 *
 * Request (stdin): a 4-byte little-endian length, then that many bytes of NUL-terminated fields,
 * the first naming the request's kind:
 *   start, request id, job id, job dir, cwd, executable path, stdout path, stderr path, uid, gid,
 *     argc, argv..., envc, env..., cgroup count, cgroup.procs paths..., group count, gids...,
 *     isolation count, isolation options...
 *   remove, request id, dir, uid, gid, group count, gids...
 *     removes everything below DIR (not DIR itself) as uid, gid and the groups (see run_removal)
 *   cancel, request id
 *     ends that removal (its child is killed); its answer follows once the child has ended
 * In a start, uid -1 keeps the spawner's own account (no switch: the server does not run as root,
 * or the job is the embedding program's own); any other uid is switched to with gid and the groups.
 * Replies (stdout), one line each:
 *   ok REQ WRAPPER_PID WRAPPER_TICKS JOB_PID JOB_TICKS
 *   err REQ STAGE ERRNO TEXT          the job's process never existed, or (STAGE timeout) was
 *                                     killed before its exec: no answer in time (see give_up);
 *                                     for a removal (STAGE remove), what it could not remove first,
 *                                     or why it ended without saying (killed, cancelled)
 *   removed REQ                       a removal left nothing below its directory
 *   exit WRAPPER_PID WAIT_STATUS      a wrapper ended (the spawner reaps its children)
 *
 * For each start request the spawner forks a wrapper, without waiting for the wrapper before it
 * to answer (up to MAX_STARTING at once; answers may come in any order, each names its request).
 * A wrapper that has not answered within the start timeout (30 s by default) is killed with its
 * job's process, and the request answered `err REQ timeout`: one start that hangs (its working
 * directory or command on a hung mount) must not keep its answer, and with it every later start
 * that the server records after it, waiting for ever.
 * The wrapper calls setsid(), renames itself
 * `jobworker-wrapper JOB_ID`, creates the output files and creates the job's process, straight into
 * the job's cgroup v2 where the kernel can (clone3 with CLONE_INTO_CGROUP, Linux 5.7). That one
 * leads a session of its own, and so its process group, for good (see lead_own_session), joins
 * the job's other cgroups, takes /dev/null and the output files as fds 0-2, drops to the job's account (setgroups, setgid, setuid, then checks that
 * setuid(0) fails), enters cwd as that account, resets signals and execve()s the resolved path
 * with the exact argv and env. Before that exec the job's identity (JOB_DIR/process) is on disk, so
 * that a server that dies before recording the start can find the job. Where it can (x86-64, no
 * namespaces, no switch to another uid: see switches_uid) the wrapper creates the job's process
 * sharing its memory until the exec, as vfork() does, and that process writes the identity itself
 * first (see vfork_job_process); otherwise it
 * forks it, writes the identity and then says go, which the job's process waits for before its
 * exec. The wrapper then waits for the job, writes JOB_DIR/exit (tmp + rename) and exits. It
 * writes nothing into the job's output. Each wrapper keeps the spawner's stdout open until the
 * identity file is written (or the start given up), so the server reads end-of-file only when
 * every start in flight has been decided either way.
 *
 * Isolation options (docs/isolation.md, "Namespaces"): "pid" (a PID namespace), "net" (a network
 * namespace with only loopback), "tmp" (a private tmpfs on /tmp and /var/tmp), "uts=NAME" (a UTS
 * namespace with that host name), "ro=PATH" (PATH read-only), "hide=PATH" (an empty read-only
 * tmpfs, or /dev/null for a file, over PATH), "ro?=PATH" and "hide?=PATH" (the same, skipped when
 * PATH is not there: the server sends those the job's account may not reach, whose absence must not
 * fail the start and so tell their owner), "io=PATH" (the job's io directory: with "tmp", bound
 * back at its own path into the private /tmp or /var/tmp that covers it; nothing else on its own).
 * "pid", "tmp", "ro" and "hide" need a mount namespace, which is made private first so nothing
 * reaches the host's mounts. The job's process enters them (as root, before the drop) after
 * joining its cgroups, with no_new_privs set first (see enter_namespaces). With "pid" the wrapper forks a pid 1
 * (run_init) instead, which enters them, mounts a fresh /proc and forks the job's process as its
 * pid 2; the identity file and the "ok" reply carry that process's host pid (passed back as
 * SCM_CREDENTIALS), so stop, pause and reattach see the job's process as without a namespace.
 *
 * Environment: JOBWORKER_SPAWNER_FORK=1 makes it fork every job's process and join its cgroups as
 * on kernels before 5.7, never clone3 (for tests of that path). JOBWORKER_SPAWNER_CPU_GROUP=PATH
 * (a cgroup.procs file: the jobs' CPU group, see join_cpu_group) is joined before the first fork.
 * JOBWORKER_SPAWNER_START_TIMEOUT_MS=N (a positive integer; default 30000) is how long a wrapper
 * may take to answer before its start is given up (give_up). The server gives it nothing else.
 *
 * Identity file: "JOB_PID JOB_TICKS WRAPPER_PID WRAPPER_TICKS BOOT_ID\n".
 * Exit record: "exit CODE\n", "signal NUM\n", "notstarted\n" or "error STAGE ERRNO TEXT\n"
 * (STAGE: cgroup, stdio, user, chdir, exec, namespace). A record that could be written only after the disk had
 * room again ends with " @MS": when the job ended, in Unix milliseconds (see write_exit_record).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/uio.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* clone3's arguments up to `cgroup` (CLONE_ARGS_SIZE_VER2), declared here: libc headers of
   older systems lack them. */
struct clone_args_v2 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
      cgroup;
};

/* STAGE_USER comes last so that the numbers of the others stay what they were. */
enum stage { STAGE_CGROUP = 1, STAGE_STDIO, STAGE_CHDIR, STAGE_EXEC, STAGE_USER, STAGE_NAMESPACE };
static const char *stage_names[] = {"", "cgroup", "stdio", "chdir", "exec", "user", "namespace"};

/* The namespaces a job asked for (its isolation list, see the header). */
struct isolation {
  int pid, net, tmp;
  const char *hostname; /* NULL: the host's UTS namespace */
  const char *io;       /* the job's io directory, bound back into a private /tmp; NULL: none */
  char **ro, **hide;    /* NULL-terminated, each an absolute path */
  int nro, nhide;
  /* Per path of ro and hide: 1 when it may be missing ("ro?=", "hide?="), skipped then. */
  unsigned char *ro_opt, *hide_opt;
};

struct request {
  char *id, *job_id, *dir, *cwd, *path, *out, *err;
  char **argv, **envp, **cgroups;
  int ncgroups;
  /* The cgroup (its index in `cgroups`) that the job's process was created in by clone3, which
     it then does not join again; -1 when it was forked and joins them all. */
  int joined_at_fork;
  /* The account to switch to; switch_user is 0 when uid was -1 (stay the spawner's account). */
  int switch_user;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  int ngroups;
  struct isolation iso;
};

static char *argv_area;
static size_t argv_area_len;
static char boot_id[64];

/* Most starts under way at once (see struct starting). */
#define MAX_STARTING 64
/* How many bytes of requests are read ahead while MAX_STARTING starts are under way (below). */
#define READ_AHEAD (1 << 20)

/* What the spawner may need of a start that does not answer in time (see give_up): the job's
   process (or its namespace's pid 1) once it exists, by pid and start time, and whether the job's
   identity file is written. One slot per start under way, in memory that the spawner shares with
   every wrapper (MAP_SHARED, inherited by each fork; a job's process that shares the wrapper's
   memory writes it too): filled in before the answer, read by the spawner only once the start is
   overdue, so a start costs no more system calls for it. */
struct start_slot {
  pid_t job;
  long long job_ticks;
  int identity;
};
static struct start_slot *slots; /* MAX_STARTING of them; NULL when the mapping failed */
static struct start_slot *my_slot; /* a wrapper's own; NULL in the spawner */

static void note_job(pid_t job, long long ticks) {
  if (!my_slot) return;
  /* The ticks first: the spawner reads them only once it sees the pid (a plain 64-bit store:
     atomic ones may need libatomic on 32-bit targets). */
  my_slot->job_ticks = ticks;
  __atomic_store_n(&my_slot->job, job, __ATOMIC_RELEASE);
}

static void note_identity(void) {
  if (my_slot) __atomic_store_n(&my_slot->identity, 1, __ATOMIC_RELEASE);
}

/* ---------- small helpers ---------- */

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static ssize_t read_full(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot; -1 when unreadable. */
static long long start_ticks(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read_full(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* field 3 */
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  return strtoll(p, NULL, 10);
}

/* Writes DIR/NAME atomically: DIR/NAME.tmp, then rename. On failure errno is the failing call's
   (the cleanup's unlink must not hide an ENOSPC behind its own result). */
static int write_file_atomic(const char *dir, const char *name, const char *text) {
  char tmp[4096], final[4096];
  if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  snprintf(final, sizeof final, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int e = 0;
  if (write_all(fd, text, strlen(text)) < 0) e = errno;
  /* tmpfs and most filesystems report a lack of space at write; some (NFS) only at close. */
  if (close(fd) < 0 && e == 0 && errno != EINTR) e = errno;
  if (e == 0 && rename(tmp, final) < 0) e = errno;
  if (e != 0) {
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

static long long wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes the exit record TEXT (one line, with its newline). While the disk is full (ENOSPC,
   EDQUOT) it tries again, every 50 ms at first and at most every second, for as long as it
   takes: the job's end is known only here, and a wrapper that gave up would read to the server
   as one that was killed. A record written late says when the job really ended ("... @MS", Unix
   milliseconds), since its file's time is then only when space returned. Any other error (the
   job directory is gone) ends the tries. */
static void write_exit_record(const char *dir, const char *text, long long ended_ms) {
  if (write_file_atomic(dir, "exit", text) == 0) return;
  int e = errno;
  char late[320];
  size_t len = strlen(text);
  if (len > 0 && text[len - 1] == '\n') len--;
  snprintf(late, sizeof late, "%.*s @%lld\n", (int)len, text, ended_ms);
  long delay_ms = 50;
  while (e == ENOSPC || e == EDQUOT) {
    struct timespec pause = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
    }
    if (delay_ms < 1000) delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
    if (write_file_atomic(dir, "exit", late) == 0) return;
    e = errno;
  }
}

/* The wrapper's: set by its handler of SIGTERM, SIGINT, SIGHUP and SIGQUIT (see run_wrapper). */
static volatile sig_atomic_t stop_requested;

static void set_title(const char *job_id) {
  prctl(PR_SET_NAME, "jobworker-wrap", 0, 0, 0);
  if (!argv_area || argv_area_len < 2) return;
  memset(argv_area, 0, argv_area_len);
  snprintf(argv_area, argv_area_len - 1, "jobworker-wrapper %s", job_id);
}

/* ---------- the job's process (child of the wrapper) ---------- */

static void job_fail(int errfd, int stage) {
  int msg[2] = {stage, errno};
  write_all(errfd, (const char *)msg, sizeof msg);
  _exit(127);
}

/* Becomes the job's account for good: groups first (they need root), then the gid, then the uid,
   each set as real, effective and saved id so that nothing can switch back. A uid other than 0
   that could still setuid(0) kept a capability somehow: that is refused rather than run. */
static void drop_to(const struct request *r, int errfd) {
  if (setgroups((size_t)r->ngroups, r->groups) < 0) job_fail(errfd, STAGE_USER);
  if (setresgid(r->gid, r->gid, r->gid) < 0) job_fail(errfd, STAGE_USER);
  if (setresuid(r->uid, r->uid, r->uid) < 0) job_fail(errfd, STAGE_USER);
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0) job_fail(errfd, STAGE_USER);
  if (ru != r->uid || eu != r->uid || su != r->uid || rg != r->gid || eg != r->gid || sg != r->gid) {
    errno = EPERM;
    job_fail(errfd, STAGE_USER);
  }
  if (r->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    errno = EPERM;
    job_fail(errfd, STAGE_USER);
  }
}

static void join_cgroups(const struct request *r, int errfd) {
  for (int i = 0; i < r->ncgroups; i++) {
    if (i == r->joined_at_fork) continue;
    int fd = open(r->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) job_fail(errfd, STAGE_CGROUP);
    if (write_all(fd, "0\n", 2) < 0) job_fail(errfd, STAGE_CGROUP);
    close(fd);
  }
}

/* Makes the job's process the leader of a session of its own, and so of its process group (its pgid
   is its pid), for good: a session leader cannot change its group, and a process can join only a
   group of its own session. Sharing its wrapper's session (or its namespace's pid 1's), a job's
   process could move into that one's group (setpgid(0, wrapper), as any account), out of reach of
   every signal to its own group: a stop without cgroups never ended it, a pause never froze it.
   There is no controlling terminal to lose: the wrapper's setsid() left it none. */
static void lead_own_session(int errfd) {
  if (setsid() < 0) job_fail(errfd, STAGE_EXEC);
}

/* The rest of a job's start, as the job's account: stdio, drop, cwd, the go, exec. GOFD -1: no
   go to wait for (the wrapper cannot send one: it is suspended until this exec, see
   vfork_job_process); the exec then happens only while WRAPPER is still this process's parent. */
static void exec_job(const struct request *r, int out, int err, int gofd, int errfd, pid_t wrapper) {
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) job_fail(errfd, STAGE_STDIO);
  if (null > 2) close(null);
  close(out);
  close(err);
  if (r->switch_user) drop_to(r, errfd);
  /* After the drop: the working directory is entered with the job's own permissions. */
  if (chdir(r->cwd) < 0) job_fail(errfd, STAGE_CHDIR);
  /* The wrapper says go once the job's identity is on disk; no go (EOF): it was told to stop. */
  if (gofd >= 0) {
    char go = 0;
    if (read_full(gofd, &go, 1) != 1 || go != 'g') _exit(127);
    close(gofd);
  } else if (getppid() != wrapper) {
    /* The wrapper was killed since vfork_job_main looked (it dies of nothing else while
       suspended): nobody would record the job's end, so the command does not run, as a forked
       one reads no go then. A kill after this look lets it run, unrecorded, as a kill of the
       wrapper after the go does. */
    _exit(127);
  }
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  /* Nothing but 0-2 reaches the job (errfd closes on exec, telling the wrapper it worked). */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 3; fd < 1024; fd++)
      if (fd != errfd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(r->path, r->argv, r->envp);
  job_fail(errfd, STAGE_EXEC);
}

/* ---------- namespaces (isolation) ---------- */

static int wants_namespaces(const struct isolation *iso) {
  return iso->pid || iso->net || iso->tmp || iso->hostname || iso->nro > 0 || iso->nhide > 0;
}

static int wants_mount_ns(const struct isolation *iso) {
  return iso->pid || iso->tmp || iso->nro > 0 || iso->nhide > 0;
}

/* Binds PATH (a directory or a file) over itself, or SOURCE over PATH, then makes that mount
   read-only. The remount keeps the flags the path already had (nosuid, nodev, noexec): a
   read-only view must not be a way to lift them. */
static int bind_read_only(const char *source, const char *path) {
  if (mount(source, path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
  struct statvfs st;
  unsigned long keep = 0;
  if (statvfs(path, &st) == 0) {
    if (st.f_flag & ST_NOSUID) keep |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) keep |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
  }
  return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL);
}

/* True when PATH is below DIR (DIR itself excluded). */
static int is_below(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}

/* Binds the directory open at FD over PATH, which is below TOP, a fresh tmpfs: the directories
   between them are made there first (0711, root's: the job can pass through them to its own, and
   neither list nor rename them), so the tmpfs holds this one directory and nothing else of the
   host's. The bind's source is the directory itself, reached through FD as the working directory:
   its path is covered by the tmpfs by now. */
static int bind_back(int fd, const char *path, const char *top) {
  char made[4096];
  size_t len = strlen(path);
  if (len >= sizeof made) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(made, path, len + 1);
  for (char *slash = made + strlen(top) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
    *slash = '\0';
    /* chmod too: the umask the spawner was started with would narrow the mkdir's mode. */
    if ((mkdir(made, 0711) < 0 && errno != EEXIST) || chmod(made, 0711) < 0) return -1;
    *slash = '/';
  }
  if (mkdir(made, 0700) < 0 && errno != EEXIST) return -1;
  if (fchdir(fd) < 0) return -1;
  int rc = mount(".", path, NULL, MS_BIND, NULL);
  int e = errno;
  if (chdir("/") < 0 && rc == 0) return -1;
  errno = e;
  return rc;
}

/* True for the errors of a path that is not there (a missing entry, or a file where a directory
   was to be on the way to it). */
static int not_there(int e) { return e == ENOENT || e == ENOTDIR; }

/* What the job sees of the filesystem, in its own mount namespace: nothing here reaches the
   host's mounts (everything is made private first). Order matters: read-only and hidden paths
   first, then the fresh /tmp and /proc on top, so `readOnly: ["/var"]` still gets a writable
   private /var/tmp. A job's io directory (JOBWORKER_RESULT, JOBWORKER_PROGRESS: the default is
   below /tmp) is opened before any of them and bound back, at its own path, into the private
   /tmp that covers it: the job can leave its result and progress as without the tmpfs, and sees no
   other job's directory. */
static int set_up_mounts(const struct isolation *iso) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
  const char *dirs[] = {"/tmp", "/var/tmp"};
  int io = -1;
  if (iso->tmp && iso->io && (is_below(iso->io, dirs[0]) || is_below(iso->io, dirs[1]))) {
    io = open(iso->io, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (io < 0) return -1;
  }
  for (int i = 0; i < iso->nro; i++) {
    if (bind_read_only(iso->ro[i], iso->ro[i]) < 0) {
      if (iso->ro_opt[i] && not_there(errno)) continue;
      return -1;
    }
  }
  for (int i = 0; i < iso->nhide; i++) {
    struct stat st;
    if (stat(iso->hide[i], &st) < 0) {
      if (iso->hide_opt[i] && not_there(errno)) continue;
      return -1;
    }
    if (S_ISDIR(st.st_mode)) {
      if (mount("tmpfs", iso->hide[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
        return -1;
    } else if (bind_read_only("/dev/null", iso->hide[i]) < 0) {
      return -1;
    }
  }
  if (iso->tmp) {
    for (int i = 0; i < 2; i++) {
      struct stat st;
      if (stat(dirs[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (i == 0) return -1;
        continue; /* no /var/tmp on this host: nothing to hide there */
      }
      if (mount("tmpfs", dirs[i], "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) return -1;
    }
    /* After both: where /var/tmp is a link to /tmp, the second tmpfs lands on the first. */
    if (io >= 0) {
      if (bind_back(io, iso->io, is_below(iso->io, dirs[0]) ? dirs[0] : dirs[1]) < 0) return -1;
      close(io);
    }
  }
  /* A /proc of the job's own PID namespace: `ps` lists the job's tree and nothing else. */
  if (iso->pid && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;
  return 0;
}

/* A new network namespace holds only a loopback interface, down: it is brought up so that the
   job can talk to itself on 127.0.0.1 (which is not the host's). */
static int loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* Enters the mount, network and UTS namespaces the job asked for (the PID namespace is the
   wrapper's to create: see run_wrapper) and sets them up. Runs as root, before the drop.
   First, no new privileges for the job, ever (PR_SET_NO_NEW_PRIVS, kept by every fork and exec
   after, never cleared): the namespaces are root's, not a user namespace's, so a setuid-root
   program run in them would be root in a world the job's owner chose. Any user may ask for a host
   name (sudoers rules name hosts: `alice db01 = (root) ALL` held on every host whose job named
   itself db01), for files that setuid programs read to be hidden or read-only, for its own /tmp,
   /proc, loopback and abstract sockets. Setuid and setgid bits and file capabilities then give
   nothing; a job that is root stays root. */
static void enter_namespaces(const struct request *r, int errfd) {
  const struct isolation *iso = &r->iso;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) job_fail(errfd, STAGE_NAMESPACE);
  int flags = (wants_mount_ns(iso) ? CLONE_NEWNS : 0) | (iso->net ? CLONE_NEWNET : 0) |
              (iso->hostname ? CLONE_NEWUTS : 0);
  if (flags == 0) return;
  if (unshare(flags) < 0) job_fail(errfd, STAGE_NAMESPACE);
  if (iso->hostname && sethostname(iso->hostname, strlen(iso->hostname)) < 0) job_fail(errfd, STAGE_NAMESPACE);
  if (iso->net && loopback_up() < 0) job_fail(errfd, STAGE_NAMESPACE);
  if ((flags & CLONE_NEWNS) && set_up_mounts(iso) < 0) job_fail(errfd, STAGE_NAMESPACE);
}

/* Sends one byte on FD: the kernel attaches this process's credentials, and gives the receiver
   (the wrapper, in the host's PID namespace) this process's pid as the host knows it. */
static void send_own_pid(int fd) {
  char byte = 'p';
  struct iovec iov = {&byte, 1};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  while (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

/* The pid of the process that sent on FD, in our own PID namespace; -1 when none sent. */
static pid_t receive_pid(int fd) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(struct ucred))];
  } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof ctl.buf;
  ssize_t n;
  while ((n = recvmsg(fd, &msg, 0)) < 0 && errno == EINTR) {
  }
  if (n != 1) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
      struct ucred uc;
      memcpy(&uc, CMSG_DATA(c), sizeof uc);
      return uc.pid;
    }
  }
  return -1;
}

/* pid 1 of a job's PID namespace. It joins the job's cgroups, sets up the namespaces (a fresh
   /proc among them), forks the job's process (pid 2, leader of its own session and process
   group, which is what the server records and signals, by its host pid), drops to the job's account too, forwards any
   signal sent to it to the job's process and reaps every orphan of the namespace until the job's
   process ends. Then it hands the job's wait status to the wrapper (STATUSFD) and exits: the
   kernel ends whatever else is left in the namespace. pid 1 cannot die of its own signal, hence
   the pipe. */
static void run_init(const struct request *r, int out, int err, int gofd, int errfd, int credfd, int statusfd) {
  prctl(PR_SET_NAME, "jobworker-init", 0, 0, 0);
  /* It never execs and lives as long as the job, as the job's account: it keeps none of the
     spawner's memory that it does not need. */
  if (slots) munmap(slots, sizeof *slots * MAX_STARTING);
  my_slot = NULL;
  if (argv_area && argv_area_len > 2) {
    memset(argv_area, 0, argv_area_len);
    snprintf(argv_area, argv_area_len - 1, "jobworker-init %s", r->job_id);
  }
  setpgid(0, 0);
  join_cgroups(r, errfd);
  enter_namespaces(r, errfd);
  pid_t job = fork();
  if (job < 0) job_fail(errfd, STAGE_NAMESPACE);
  if (job == 0) {
    close(statusfd);
    lead_own_session(errfd);
    send_own_pid(credfd);
    close(credfd);
    exec_job(r, out, err, gofd, errfd, 0);
  }
  close(out);
  close(err);
  close(gofd);
  close(errfd);
  close(credfd);
  /* The spawner's stdout, which the wrapper holds until the start is decided (see the header):
     this process never execs and lives as long as the job, so a copy kept here would keep a dead
     spawner's stdout open that long, and the server would wait that long to start a new one. */
  close(1);
  if (r->switch_user) {
    /* Best effort: the job's process made the same calls and succeeded. */
    if (setgroups((size_t)r->ngroups, r->groups) < 0 || setresgid(r->gid, r->gid, r->gid) < 0 ||
        setresuid(r->uid, r->uid, r->uid) < 0) {
      kill(job, SIGKILL);
    }
  }
  /* Every signal stays blocked (as the wrapper forked us): they are taken here one by one. A
     blocked signal reaches pid 1 even without a handler. */
  sigset_t all;
  sigfillset(&all);
  int status = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (sig != SIGCHLD) {
      kill(job, sig);
      continue;
    }
    int st;
    pid_t p;
    int ended = 0;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      if (p == job) {
        status = st;
        ended = 1;
      }
    }
    if (ended) break;
  }
  write_all(statusfd, (const char *)&status, sizeof status);
  _exit(0);
}

/* The job's process, forked by the wrapper (without a PID namespace). SIDFD is written once it
   leads its own session: the wrapper waits for that before it names the job's pid to anyone, so
   that a signal to the job's group from then on finds it. (The wrapper cannot make the group for
   it, as before: a process group leader cannot then call setsid().) */
static void run_job(const struct request *r, int out, int err, int gofd, int errfd, int sidfd) {
  lead_own_session(errfd);
  write_all(sidfd, "s", 1);
  close(sidfd);
  join_cgroups(r, errfd);
  if (wants_namespaces(&r->iso)) enter_namespaces(r, errfd);
  exec_job(r, out, err, gofd, errfd, 0);
}

/* ---------- the wrapper (child of the spawner) ---------- */

/* The job's cgroup in the v2 hierarchy, opened for clone3 (its index in *index), or -1 when it
   has none. */
static int open_v2_cgroup(const struct request *r, int *index) {
  static const char suffix[] = "/cgroup.procs";
  const size_t suffix_len = sizeof suffix - 1;
  for (int i = 0; i < r->ncgroups; i++) {
    char dir[4096];
    size_t len = strlen(r->cgroups[i]);
    if (len <= suffix_len || len - suffix_len >= sizeof dir || strcmp(r->cgroups[i] + len - suffix_len, suffix) != 0)
      continue;
    memcpy(dir, r->cgroups[i], len - suffix_len);
    dir[len - suffix_len] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
      *index = i;
      return fd;
    }
    close(fd);
  }
  return -1;
}

/* Forks the job's process (or its namespace's pid 1). Where it can, straight into the job's v2
   cgroup: a process that joins a cgroup by writing cgroup.procs makes the kernel switch its
   cgroup lock to the slow mode first, which waits for an RCU grace period (7-20 ms measured here
   whenever starts are not back to back), and holds up every fork on the host meanwhile. clone3
   with CLONE_INTO_CGROUP creates the process in the cgroup without a move (0.3 ms with the fork).
   A kernel without it (before 5.7: ENOSYS, E2BIG), or a cgroup it refuses, gets a plain fork and
   the join, which reports what is wrong with the cgroup. With a PID namespace the clone3 makes it
   too (CLONE_NEWPID): a namespace unshared first would be left without a pid 1 by a clone3 that
   failed after allocating one (the kernel allocates the pid before it checks the cgroup), and
   the fallback fork would then fail with ENOMEM. The wrapper has one thread, so a child of the
   raw system call is as sound as a fork's for what the child does (no atfork handlers, no locks
   held, nothing that reads glibc's cached thread id). Returns -1 with errno set on failure. */
/* Never clone3: set by JOBWORKER_SPAWNER_FORK=1 (the path of older kernels, for tests), and in a
   wrapper whose clone3 the kernel does not know (then its fork need not ask again). */
static int fork_only;

/* The identity file's line: "JOB_PID JOB_TICKS WRAPPER_PID WRAPPER_TICKS BOOT_ID\n" (see the
   header), written by the wrapper or by a job's process that shares its memory. */
static int write_identity(const char *dir, pid_t job, long long job_ticks, pid_t wrapper, long long wrapper_ticks) {
  char text[256];
  snprintf(text, sizeof text, "%d %lld %d %lld %s\n", (int)job, job_ticks, (int)wrapper, wrapper_ticks, boot_id);
  return write_file_atomic(dir, "process", text);
}

/* clone3's arguments for the job's process: FLAGS, and CLONE_INTO_CGROUP with CGROUP (the v2
   cgroup at INDEX of the request's) unless it is -1; notes in R which cgroup it will not join. */
static void job_clone_args(struct clone_args_v2 *args, uint64_t flags, int cgroup, int index, struct request *r) {
  memset(args, 0, sizeof *args);
  args->flags = flags | (cgroup >= 0 ? CLONE_INTO_CGROUP : 0);
  args->exit_signal = SIGCHLD;
  if (cgroup >= 0) args->cgroup = (uint64_t)cgroup;
  r->joined_at_fork = cgroup >= 0 ? index : -1;
}

static pid_t fork_job_process(struct request *r) {
  int index = -1;
  int cgroup = fork_only ? -1 : open_v2_cgroup(r, &index);
  if (cgroup >= 0) {
    struct clone_args_v2 args;
    job_clone_args(&args, r->iso.pid ? (uint64_t)CLONE_NEWPID : 0, cgroup, index, r);
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) {
      /* The child too: a namespace's pid 1 (run_init) never execs, so CLOEXEC would not close it. */
      close(cgroup);
      return pid;
    }
    close(cgroup);
  }
  r->joined_at_fork = -1;
  if (r->iso.pid && unshare(CLONE_NEWPID) < 0) return -1;
  return fork();
}

/* The job's process created sharing the wrapper's memory, as vfork() does: clone3 with CLONE_VM |
   CLONE_VFORK (and CLONE_INTO_CGROUP where the job has a v2 cgroup, as above). A fork copies the
   wrapper's page tables, then faults on each page either side writes and tears the copy down at
   the exec; on a VM where every page-table change traps to the hypervisor, the wrappers' share of
   the CPU of a start went from 38 % to 22 % without it (docs/performance-history.md, tenth pass). The
   wrapper is suspended until the child has exec'd or ended, with every signal blocked, so it
   cannot say go: the child writes the job's identity file itself, before it drops to the job's
   account, and the wrapper looks for a stop before it creates the child instead (one that comes
   later is ignored, as one after the go always was; see run_wrapper). Only for jobs without
   namespaces (run_init forks, and never execs), of the wrapper's own uid (see switches_uid), and
   only where this file has the few instructions that clone3 needs with a new
   stack (x86-64): glibc has no clone3 wrapper, and its clone() cannot take CLONE_INTO_CGROUP.
   Elsewhere jobs are forked as above. */
/* What the job's process and the wrapper share: set up by the wrapper, filled in by the child
   before its exec (the wrapper runs again only after it). */
struct vfork_job {
  struct request *r;
  int out, err, errfd, reportfd;
  pid_t wrapper;
  long long wrapper_ticks;
  long long job_ticks;
  int identity_written;
  int identity_errno; /* the identity file could not be written: the child ended, nothing ran */
};

#if defined(__x86_64__)
#define HAVE_VFORK_JOB 1

/* The child's own stack: with CLONE_VM, a child that returned into the caller's frames would
   overwrite the suspended parent's. Its path is short and has no recursion (write_file_atomic's
   two paths, 8 KiB, are the biggest frame). clone3 is given its upper half: kernels since the
   stack checks of 5.5 (and their stable backports) start the child at stack + stack_size, the
   top; the first 5.3 and 5.4 kernels started it at stack itself, the middle. Either is safe. */
static char vfork_stack[128 * 1024] __attribute__((aligned(16)));

/* clone3 with ARGS; the child runs FN(ARG) on the stack ARGS name and exits with what it returns.
   The parent gets the child's pid, or -1 with errno. */
static pid_t clone3_run(struct clone_args_v2 *args, int (*fn)(void *), void *arg) {
  long ret;
  register int (*call)(void *) __asm__("r12") = fn;
  register void *call_arg __asm__("r13") = arg;
  __asm__ volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      /* The child, on its own stack (the kernel set %rsp to its top): no frame to return to. */
      "xorl %%ebp, %%ebp\n\t"
      "andq $-16, %%rsp\n\t"
      "movq %%r13, %%rdi\n\t"
      "callq *%%r12\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $60, %%eax\n\t" /* SYS_exit */
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(call), "r"(call_arg)
      : "rcx", "r11", "memory");
  if (ret < 0) {
    errno = (int)-ret;
    return -1;
  }
  return (pid_t)ret;
}

/* The job's process: its own session and group, its identity on disk (as the wrapper's account,
   which owns the job directory), its other cgroups, then the rest of the start as for a forked one. */
static int vfork_job_main(void *arg) {
  struct vfork_job *v = arg;
  struct request *r = v->r;
  close(v->reportfd);
  lead_own_session(v->errfd);
  pid_t self = getpid();
  v->job_ticks = start_ticks(self);
  note_job(self, v->job_ticks);
  if (write_identity(r->dir, self, v->job_ticks, v->wrapper, v->wrapper_ticks) < 0) {
    v->identity_errno = errno;
    _exit(127);
  }
  v->identity_written = 1;
  note_identity();
  join_cgroups(r, v->errfd);
  if (getppid() != v->wrapper) {
    /* The wrapper was killed meanwhile (a suspended wrapper dies of nothing else): nobody would
       record the job's end. The command does not run, and, while this process may still write
       the job directory, says so: the server finds the identity and reads that it never began. */
    write_exit_record(r->dir, "notstarted\n", wall_ms());
    _exit(127);
  }
  exec_job(r, v->out, v->err, -1, v->errfd, v->wrapper);
  return 127;
}

/* Creates the job's process as above, in its v2 cgroup where it has one. A cgroup that clone3
   will not create a process in (EAGAIN at its pids.max, say) gets the same clone3 without it:
   the child then joins every cgroup itself, and that join reports what is wrong. -1 with errno
   when the kernel has no clone3 (before 5.3, or a seccomp filter that answers ENOSYS, as
   container runtimes' defaults do), for the caller to fork the child instead. */
static pid_t vfork_job_process(struct vfork_job *v) {
  struct request *r = v->r;
  int index = -1;
  int cgroup = open_v2_cgroup(r, &index);
  for (;;) {
    struct clone_args_v2 args;
    job_clone_args(&args, CLONE_VM | CLONE_VFORK, cgroup, index, r);
    args.stack = (uint64_t)(uintptr_t)(vfork_stack + sizeof vfork_stack / 2);
    args.stack_size = sizeof vfork_stack / 2;
    pid_t pid = clone3_run(&args, vfork_job_main, v);
    int e = errno;
    if (pid >= 0 || cgroup < 0 || e == ENOSYS || e == E2BIG) {
      if (cgroup >= 0) close(cgroup);
      if (pid < 0) {
        r->joined_at_fork = -1;
        fork_only = 1; /* fork_job_process need not ask again */
        errno = e;
      }
      return pid;
    }
    close(cgroup);
    cgroup = -1;
  }
}
/* True when the job's process would become another uid than the wrapper's. Such a job's process is
   forked, never made sharing the wrapper's memory: the wrapper would be suspended until its exec,
   unable to answer, while the process, once it has dropped to the job's uid, may be stopped
   (SIGSTOP) by any other process of that uid, another job of the same owner for one, and would then
   never exec. Each start is recorded after the one before it, so one start that never answers
   held up every later start on the node. A forked one waits for the go instead, which the wrapper
   sends, and answers, without waiting for its exec. A job of the wrapper's own uid can be stopped
   only by those who could stop the wrapper itself. */
static int switches_uid(const struct request *r) { return r->switch_user && r->uid != getuid(); }

/* True when the wrapper was told to stop: its flag, or a stop signal pending while blocked. */
static int stop_pending(void) {
  sigset_t pending;
  if (stop_requested) return 1;
  if (sigpending(&pending) < 0) return 0;
  return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1 ||
         sigismember(&pending, SIGHUP) == 1 || sigismember(&pending, SIGQUIT) == 1;
}
#endif


static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void report(int fd, const char *line) { write_all(fd, line, strlen(line)); }

static void wrapper_fail(int reportfd, const struct request *r, int stage, int e) {
  char line[512];
  snprintf(line, sizeof line, "err %s %s %d %s\n", r->id, stage_names[stage], e, strerror(e));
  report(reportfd, line);
  _exit(1);
}

static void run_wrapper(struct request *r, int reportfd) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  set_title(r->job_id);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 2);
  }

  int flags = O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC;
  int out = open(r->out, flags, 0600);
  if (out < 0) wrapper_fail(reportfd, r, STAGE_STDIO, errno);
  int err = open(r->err, flags, 0600);
  if (err < 0) wrapper_fail(reportfd, r, STAGE_STDIO, errno);
  /* The job's account owns its output files: a job that reopens its own stdout by path
     (`tee /dev/stdout`, `echo x > /dev/stderr` go through /proc/self/fd) is checked against the
     file's owner. The files stay unreachable to it by name: the job directory is the server's. */
  if (r->switch_user && (fchown(out, r->uid, r->gid) < 0 || fchown(err, r->uid, r->gid) < 0))
    wrapper_fail(reportfd, r, STAGE_STDIO, errno);
  /* Each output file open for reading here for as long as the job runs: owning the file, and
     holding its only open description, the job could otherwise take a write lease on it
     (F_SETLEASE), and every open of it by the server (a read of its output) would then wait for
     the lease's break, 45 s by default, holding up the server's event loop meanwhile. A lease is
     refused while another description of the file is open. Closed at the wrapper's exit. */
  int keep_out = open(r->out, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (keep_out < 0) wrapper_fail(reportfd, r, STAGE_STDIO, errno);
  int keep_err = open(r->err, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (keep_err < 0) wrapper_fail(reportfd, r, STAGE_STDIO, errno);
  int errpipe[2], gopipe[2] = {-1, -1}, sidpipe[2] = {-1, -1};
  if (pipe2(errpipe, O_CLOEXEC) < 0) wrapper_fail(reportfd, r, STAGE_EXEC, errno);
  /* With a PID namespace our child is its pid 1 (run_init), and the job's process is its child:
     CREDSOCK tells us that one's host pid, STATUSPIPE how it ended. */
  int credsock[2] = {-1, -1}, statuspipe[2] = {-1, -1};
  if (r->iso.pid) {
    int on = 1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, credsock) < 0 ||
        setsockopt(credsock[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0 || pipe2(statuspipe, O_CLOEXEC) < 0)
      wrapper_fail(reportfd, r, STAGE_NAMESPACE, errno);
    /* The PID namespace itself is made with the child (fork_job_process). */
  }

  /* Signals stay blocked in the job's process until just before its exec: a stop sent to its
     group in that window is then delivered with the default action, never swallowed. */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  long long wticks = start_ticks(getpid());
  struct vfork_job v;
  memset(&v, 0, sizeof v);
  pid_t child = -1;
#ifdef HAVE_VFORK_JOB
  /* A wrapper already told to stop forks, so that its child waits for a go that never comes
     (notstarted); so does one whose job runs as another uid (see switches_uid). A stop sent to the
     wrapper alone while a child that shares its memory is being
     set up (its files and cgroups: milliseconds at times) is ignored, as one after the go always
     was: the command runs, and a stop of the job reaches its process group as any other. */
  if (!fork_only && !wants_namespaces(&r->iso) && !switches_uid(r) && !stop_pending()) {
    v = (struct vfork_job){.r = r, .out = out, .err = err, .errfd = errpipe[1], .reportfd = reportfd,
                           .wrapper = getpid(), .wrapper_ticks = wticks};
    child = vfork_job_process(&v);
  }
#endif
  int vforked = child > 0;
  if (!vforked && pipe2(gopipe, O_CLOEXEC) < 0) wrapper_fail(reportfd, r, STAGE_EXEC, errno);
  if (!vforked && !r->iso.pid && pipe2(sidpipe, O_CLOEXEC) < 0) wrapper_fail(reportfd, r, STAGE_EXEC, errno);
  if (!vforked) child = fork_job_process(r);
  if (child < 0) wrapper_fail(reportfd, r, r->iso.pid ? STAGE_NAMESPACE : STAGE_EXEC, errno);
  if (child == 0) {
    close(errpipe[0]);
    close(gopipe[1]);
    close(reportfd);
    close(keep_out);
    close(keep_err);
    if (r->iso.pid) {
      close(credsock[0]);
      close(statuspipe[0]);
      run_init(r, out, err, gopipe[0], errpipe[1], credsock[1], statuspipe[1]);
    }
    close(sidpipe[0]);
    run_job(r, out, err, gopipe[0], errpipe[1], sidpipe[1]);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  /* A namespace's pid 1 has a group of its own, as it makes itself: whichever runs first. (A
     vforked job's process has made its session, and exec'd or ended, by now.) */
  if (r->iso.pid) setpgid(child, child);
  /* A forked job's process leads its own session (and group) before its pid goes anywhere: see
     run_job. End-of-file instead when it failed first (its reason waits in errpipe). */
  if (sidpipe[0] >= 0) {
    char led;
    close(sidpipe[1]);
    read_full(sidpipe[0], &led, 1);
    close(sidpipe[0]);
  }
  long long child_ticks = 0;
  if (!vforked) {
    child_ticks = start_ticks(child);
    note_job(child, child_ticks);
  }
  close(out);
  close(err);
  close(errpipe[1]);
  if (!vforked) close(gopipe[0]);
  /* The job's process: our child, or the child of the namespace's pid 1, known by its host pid
     once it exists (it sends only after it made its own session and group). When the namespace's
     setup failed there is none: the pid 1 is recorded, and its failure waits in errpipe. */
  pid_t job = child;
  if (r->iso.pid) {
    close(credsock[1]);
    close(statuspipe[1]);
    pid_t host = receive_pid(credsock[0]);
    close(credsock[0]);
    if (host > 0) job = host;
  }

  char text[256];
  long long jticks = v.identity_written ? v.job_ticks : !vforked && job == child ? child_ticks : start_ticks(job);
  if (v.identity_errno) {
    /* A vforked child that could not write the identity file ended at once: nothing ran. */
    waitpid(child, NULL, 0);
    wrapper_fail(reportfd, r, STAGE_STDIO, v.identity_errno);
  }
  if (!v.identity_written) {
    /* A forked child (or a vforked one killed before it wrote it): the wrapper writes it. */
    if (write_identity(r->dir, job, jticks, getpid(), wticks) < 0) {
      int e = errno;
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
      wrapper_fail(reportfd, r, STAGE_STDIO, e);
    }
    note_identity();
  }
  /* A stop before the go keeps the command from running. A job process that already failed
     (its cgroup, cwd) does not read the go: its failure is waiting in errpipe. A vforked child
     reads no go: the stop was looked for before it was made. */
  int stopped = 0;
  if (!vforked) {
    stopped = stop_requested;
    if (!stopped) write_all(gopipe[1], "g", 1);
    close(gopipe[1]);
  }
  snprintf(text, sizeof text, "ok %s %d %lld %d %lld\n", r->id, (int)getpid(), wticks, (int)job, jticks);
  report(reportfd, text);
  close(reportfd);
  /* The spawner's stdout is closed only now: see the header. */
  if (null >= 0) dup2(null, 1);

  int failure[2] = {0, 0};
  ssize_t n = read_full(errpipe[0], failure, sizeof failure);
  close(errpipe[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (r->iso.pid) {
    /* How the job's process ended, as its pid 1 saw it; nothing when pid 1 itself was killed
       (cgroup.kill ends them together): then pid 1's own end tells. */
    int job_status;
    if (read_full(statuspipe[0], &job_status, sizeof job_status) == (ssize_t)sizeof job_status) status = job_status;
    close(statuspipe[0]);
  }
  long long ended_ms = wall_ms();
  if (n == (ssize_t)sizeof failure && failure[0] >= STAGE_CGROUP && failure[0] <= STAGE_NAMESPACE) {
    snprintf(text, sizeof text, "error %s %d %s\n", stage_names[failure[0]], failure[1], strerror(failure[1]));
  } else if (stopped) {
    snprintf(text, sizeof text, "notstarted\n");
  } else if (WIFEXITED(status)) {
    snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status));
  } else {
    snprintf(text, sizeof text, "notstarted\n");
  }
  write_exit_record(r->dir, text, ended_ms);
  _exit(0);
}

/* ---------- the spawner ---------- */

/* Reads the isolation list: "pid", "net", "tmp", "uts=NAME", "ro=PATH", "hide=PATH", "ro?=PATH",
   "hide?=PATH", "io=PATH" (see the
   header); -1 for anything else, so that an isolation this spawner does not know is refused
   rather than silently not applied. */
static int parse_isolation(char **opts, int n, struct isolation *iso) {
  memset(iso, 0, sizeof *iso);
  iso->ro = calloc((size_t)n + 1, sizeof(char *));
  iso->hide = calloc((size_t)n + 1, sizeof(char *));
  iso->ro_opt = calloc((size_t)n + 1, 1);
  iso->hide_opt = calloc((size_t)n + 1, 1);
  if (!iso->ro || !iso->hide || !iso->ro_opt || !iso->hide_opt) return -1;
  for (int i = 0; i < n; i++) {
    char *o = opts[i];
    if (strcmp(o, "pid") == 0) iso->pid = 1;
    else if (strcmp(o, "net") == 0) iso->net = 1;
    else if (strcmp(o, "tmp") == 0) iso->tmp = 1;
    else if (strncmp(o, "uts=", 4) == 0 && o[4] != '\0') iso->hostname = o + 4;
    else if (strncmp(o, "ro=", 3) == 0 && o[3] == '/') iso->ro[iso->nro++] = o + 3;
    else if (strncmp(o, "ro?=", 4) == 0 && o[4] == '/') {
      iso->ro_opt[iso->nro] = 1;
      iso->ro[iso->nro++] = o + 4;
    } else if (strncmp(o, "hide=", 5) == 0 && o[5] == '/') iso->hide[iso->nhide++] = o + 5;
    else if (strncmp(o, "hide?=", 6) == 0 && o[6] == '/') {
      iso->hide_opt[iso->nhide] = 1;
      iso->hide[iso->nhide++] = o + 6;
    }
    else if (strncmp(o, "io=", 3) == 0 && o[3] == '/') iso->io = o + 3;
    else return -1;
  }
  return 0;
}

/* Splits a request into its fields; -1 when malformed (r->id is set when it could be read). */
static int parse_request(char *buf, size_t len, struct request *r, char ***fields_out) {
  size_t nfields = 0;
  for (size_t k = 0; k < len; k++)
    if (buf[k] == '\0') nfields++;
  char **fields = malloc(sizeof(char *) * (nfields + 1));
  *fields_out = fields;
  if (!fields) return -1;
  char *p = buf;
  for (size_t k = 0; k < nfields; k++) {
    fields[k] = p;
    p += strlen(p) + 1;
  }
  size_t i = 0;
  if (nfields >= 1) r->id = fields[0];
  if (nfields < 13) return -1;
  i = 1;
  r->job_id = fields[i++];
  r->dir = fields[i++];
  r->cwd = fields[i++];
  r->path = fields[i++];
  r->out = fields[i++];
  r->err = fields[i++];
  char *end;
  long long uid = strtoll(fields[i++], &end, 10);
  if (*end != '\0' || uid < -1 || uid >= 0xffffffffLL) return -1;
  long long gid = strtoll(fields[i++], &end, 10);
  if (*end != '\0' || gid < -1 || gid >= 0xffffffffLL) return -1;
  r->switch_user = uid != -1;
  if (r->switch_user && gid == -1) return -1;
  r->uid = (uid_t)uid;
  r->gid = (gid_t)gid;
  char **lists[5] = {NULL, NULL, NULL, NULL, NULL};
  int counts[5] = {0, 0, 0, 0, 0};
  for (int l = 0; l < 5; l++) {
    if (i >= nfields) return -1;
    long count = strtol(fields[i++], NULL, 10);
    if (count < 0 || (size_t)count > nfields - i) return -1;
    /* Each list is NULL-terminated in place: the count field before it is no longer needed. */
    lists[l] = &fields[i];
    counts[l] = (int)count;
    i += (size_t)count;
  }
  /* Shift each list down over its count field, leaving room for the terminating NULLs. */
  char **out = fields;
  for (int l = 0; l < 5; l++) {
    char **start = out;
    memmove(out, lists[l], sizeof(char *) * (size_t)counts[l]);
    out += counts[l];
    *out++ = NULL;
    lists[l] = start;
  }
  r->argv = lists[0];
  r->envp = lists[1];
  r->cgroups = lists[2];
  r->ncgroups = counts[2];
  r->joined_at_fork = -1;
  r->ngroups = counts[3];
  r->groups = malloc(sizeof(gid_t) * (size_t)(counts[3] + 1));
  if (!r->groups) return -1;
  for (int g = 0; g < counts[3]; g++) {
    long long value = strtoll(lists[3][g], &end, 10);
    if (*end != '\0' || value < 0 || value >= 0xffffffffLL) return -1;
    r->groups[g] = (gid_t)value;
  }
  if (parse_isolation(lists[4], counts[4], &r->iso) < 0) return -1;
  return counts[0] > 0 ? 0 : -1;
}

static int sigfd = -1;

/* Wrappers forked and not yet answered (MAX_STARTING, above). The spawner does not wait for one
   wrapper's answer before forking the next: each wrapper's work up to its answer (its output files,
   the job's fork, the identity file) runs beside the others', on every core, and the spawner's own
   share of a start is one fork. Bounded, so that a burst of requests waits in the pipe rather than
   in wrappers; and each given up once overdue (give_up), so that a start that hangs neither keeps
   its answer from the server for ever nor holds a place here. */
struct starting {
  int fd; /* the read end of the wrapper's report pipe */
  pid_t pid;
  int slot;           /* its index in slots */
  long long deadline; /* monotonic ms: given up after (give_up) */
  char *identity;     /* the path of the job's identity file */
  size_t used;
  char id[64];
  char line[512];
};
static struct starting starting[MAX_STARTING];
static int nstarting = 0;
static unsigned char slot_taken[MAX_STARTING];

/* ---------- removals: what a job left in its io directory ---------- */

/* Removals under way, each a child of the spawner (run_removal) that walks one directory as a job's
   account. They take no place of a start (MAX_STARTING): the child runs as the account, so any
   process of that account may stop it (SIGSTOP), and a start must not wait on that. Nor has the
   spawner a deadline for them: the server has one (IO_REMOVAL_MS on its clock) and cancels a
   removal that outlives it. Each is answered once its child has ended (reap), never before: the
   server removes the directory itself then, and nothing of the walk outlives the answer. */
struct removal {
  int fd;    /* the read end of the child's pipe; -1 once at its end */
  pid_t pid; /* reaped only when answered for: a cancel's kill cannot reach another process */
  size_t used;
  char id[64];
  char line[512];
};
static struct removal *removals;
static int nremovals, removals_cap;

/* The walk's first failure, for the answer: its errno and "PATH: TEXT", PATH below the top. */
struct walk {
  dev_t dev; /* the top's file system: the walk stays on it */
  int err;
  char what[400];
  char path[1024]; /* the directory being read, below the top ("" for the top itself) */
  size_t len;
};

static void walk_failed(struct walk *w, const char *name, int e) {
  if (w->err != 0) return;
  w->err = e;
  char where[sizeof w->path + NAME_MAX + 2];
  if (w->len == 0 && *name == '\0') strcpy(where, ".");
  else snprintf(where, sizeof where, "%s%s%s", w->path, w->len > 0 && *name ? "/" : "", name);
  /* The path is cut, never the reason. */
  const char *text = strerror(e);
  int keep = (int)(sizeof w->what - 3 - strnlen(text, 100) - 1);
  snprintf(w->what, sizeof w->what, "%.*s: %.100s", keep, where, text);
  /* Names are the job's: one with a newline must not end the answer's line. */
  for (char *c = w->what; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
}

/* Appends NAME to the walk's path, or "/..." once when it does not fit (the path is for the answer
   only: the walk itself goes by descriptors). */
static void walk_enter(struct walk *w, const char *name) {
  size_t n = strlen(name), sep = w->len > 0;
  if (w->len + sep + n < sizeof w->path) {
    if (sep) w->path[w->len++] = '/';
    memcpy(w->path + w->len, name, n + 1);
    w->len += n;
  } else if (w->len + 4 < sizeof w->path && (w->len < 3 || strcmp(w->path + w->len - 3, "...") != 0)) {
    memcpy(w->path + w->len, "/...", 5);
    w->len += 4;
  }
}

/* Opens the directory NAME in AT (a directory's descriptor, or AT_FDCWD) to read it, as `chmod -R
   u+rwx` and then `find` did: never through a link (O_NOFOLLOW: a link is ENOTDIR here, and is
   unlinked as a file), given u+rwx first when it lacks some (a job may make its own directories
   read-only or closed to itself; the chmod of one that is not the account's fails, and the open or
   the unlinks in it then say why), and, below the top (TOP 0), only on the top's file system: a
   mount point is not crossed (EXDEV), as nftw's FTW_MOUNT would not. The directory is pinned first
   (O_PATH), so the chmod and the open reach the inode that was checked, whatever is renamed meanwhile. */
static int open_walked(int at, const char *name, const struct walk *w, int top) {
  int pinned = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pinned < 0) return -1;
  struct stat st;
  int fd = -1;
  if (fstat(pinned, &st) < 0) goto out;
  if (!top && st.st_dev != w->dev) {
    errno = EXDEV;
    goto out;
  }
  if ((st.st_mode & S_IRWXU) != S_IRWXU) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", pinned);
    (void)chmod(self, (st.st_mode & 07777) | S_IRWXU);
  }
  fd = openat(pinned, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
out:;
  int e = errno;
  close(pinned);
  errno = e;
  return fd;
}

/* A directory of the walk: its entries, read at once when it was entered, and what the walk needs
   to go back up to it. */
struct frame {
  int fd;        /* -1 while parked: closed to spare descriptors, opened again from below (go_up) */
  dev_t dev;     /* what it is, to know it again through ".." */
  ino_t ino;
  char *name;    /* its name in the directory above (in that one's entries); NULL for the top */
  size_t len;    /* the walk's path length above it */
  char **names;  /* its entries but . and .. */
  size_t count, next;
};

/* Reads every entry of the directory open at FD (but . and ..) into F's names, at once: the walk
   then unlinks them without reading the directory while it changes (not every file system lists
   all that is left after unlinks under a reader), and a directory it leaves for one below it need
   keep no stream (see park). Read with getdents64 on FD itself: no descriptor or buffer more. */
static int read_names(int fd, struct frame *f) {
  size_t cap = 0;
  f->names = NULL;
  f->count = f->next = 0;
  char buf[16384] __attribute__((aligned(8)));
  for (;;) {
    long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) return 0;
    for (long off = 0; off < got;) {
      /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name. */
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char *name = buf + off + 19;
      off += reclen;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      if (f->count == cap) {
        size_t want = cap ? cap * 2 : 8;
        char **more = realloc(f->names, sizeof *more * want);
        if (more == NULL) return -1;
        f->names = more;
        cap = want;
      }
      if ((f->names[f->count] = strdup(name)) == NULL) return -1;
      f->count++;
    }
  }
}

static void free_names(struct frame *f) {
  for (size_t i = 0; i < f->count; i++) free(f->names[i]);
  free(f->names);
  f->names = NULL;
}

/* Frees a descriptor for the walk, out of descriptors: closes the shallowest open directory above
   the one being walked (the last it will need again). False when there is none. */
static int park(struct frame *frames, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (frames[i].fd < 0) continue;
    close(frames[i].fd);
    frames[i].fd = -1;
    return 1;
  }
  return 0;
}

/* Opens the parked directory above frame I again, from frame I's through "..": only when it is
   the one the walk left (its device and inode), which a directory moved meanwhile is not. */
static int go_up(struct frame *frames, size_t i) {
  struct frame *up = &frames[i - 1];
  int fd;
  while ((fd = openat(frames[i].fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
         (errno == EMFILE || errno == ENFILE) && park(frames, i + 1)) {
  }
  struct stat st;
  if (fd < 0) return -1;
  if (fstat(fd, &st) < 0 || st.st_dev != up->dev || st.st_ino != up->ino) {
    close(fd);
    errno = ESTALE;
    return -1;
  }
  up->fd = fd;
  return 0;
}

/* Removes everything below the directory open at TOP (which it closes), depth first, by
   descriptors: each directory is entered from its parent's (open_walked), never by a path, so a
   directory swapped for a link meanwhile is unlinked as the link it has become. It goes on past
   what it cannot remove (the first failure is kept in W). Any depth: out of descriptors, it
   closes those of the directories above (park) and comes back up to them through "..", checked
   to be the same directories; one moved meanwhile ends the walk there (ESTALE), as the account
   could not have it removed anyway. Memory: the entries of the directories on the way down. */
static void remove_below(int top, struct walk *w) {
  size_t cap = 16, n = 0;
  struct frame *frames = malloc(sizeof *frames * cap);
  struct stat st;
  if (frames == NULL || fstat(top, &st) < 0) {
    walk_failed(w, "", frames ? errno : ENOMEM);
    close(top);
    free(frames);
    return;
  }
  frames[n] = (struct frame){top, st.st_dev, st.st_ino, NULL, 0, NULL, 0, 0};
  if (read_names(top, &frames[n]) < 0) walk_failed(w, "", errno);
  n++;
  while (n > 0) {
    struct frame *f = &frames[n - 1];
    if (f->next == f->count) {
      /* Its entries are done: back up, and remove it from the directory above. */
      if (n > 1 && frames[n - 2].fd < 0 && go_up(frames, n - 1) < 0) {
        walk_failed(w, "..", errno);
        break;
      }
      close(f->fd);
      free_names(f);
      w->len = f->len;
      w->path[w->len] = '\0';
      n--;
      if (n > 0 && unlinkat(frames[n - 1].fd, f->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        walk_failed(w, f->name, errno);
      continue;
    }
    const char *name = f->names[f->next++];
    if (unlinkat(f->fd, name, 0) == 0 || errno == ENOENT) continue;
    /* Linux says EISDIR for a directory. */
    if (errno != EISDIR) {
      walk_failed(w, name, errno);
      continue;
    }
    int sub;
    while ((sub = open_walked(f->fd, name, w, 0)) < 0 && (errno == EMFILE || errno == ENFILE) && park(frames, n)) {
    }
    if (sub < 0 && (errno == ENOTDIR || errno == ELOOP)) {
      /* Not a directory any more (swapped for a link or a file meanwhile): unlinked as what it is. */
      if (unlinkat(f->fd, name, 0) < 0 && errno != ENOENT) walk_failed(w, name, errno);
      continue;
    }
    if (sub < 0) {
      if (errno != ENOENT) walk_failed(w, name, errno);
      continue;
    }
    if (n == cap) {
      struct frame *more = realloc(frames, sizeof *frames * cap * 2);
      if (more == NULL) {
        walk_failed(w, name, ENOMEM);
        close(sub);
        continue;
      }
      frames = more;
      cap *= 2;
      f = &frames[n - 1];
    }
    struct frame *below = &frames[n];
    *below = (struct frame){sub, 0, 0, (char *)name, w->len, NULL, 0, 0};
    if (fstat(sub, &st) == 0) {
      below->dev = st.st_dev;
      below->ino = st.st_ino;
    }
    walk_enter(w, name);
    if (read_names(sub, below) < 0) walk_failed(w, "", errno);
    n++;
  }
  /* Ended early (ESTALE): what is still open goes. */
  while (n > 0) {
    n--;
    if (frames[n].fd >= 0) close(frames[n].fd);
    free_names(&frames[n]);
  }
  free(frames);
}

/* A removal's child: becomes the job's account for good (as drop_to does for a job's process:
   groups, gid, uid, each as real, effective and saved id, read back, and setuid(0) must then
   fail), then removes everything below DIR (remove_below) and writes "ERRNO TEXT\n" to OUT, 0 when
   nothing is left. As the account, not as root: another process of the account could swap a
   directory of the walk for a link (to /etc, say) between two of its steps, and the walk then
   reaches only what the account itself may change. It keeps no descriptor of the spawner's (its
   stdout among them: the server must read end-of-file as soon as the spawner dies) and none of
   its shared memory (the starts' slots: a process of the account may come to control this one),
   and dies with the spawner (PR_SET_PDEATHSIG), so no walk outlives the spawner that answers for it. */
static void run_removal(const char *dir, uid_t uid, gid_t gid, const gid_t *groups, int ngroups, int out,
                        pid_t spawner) {
  prctl(PR_SET_NAME, "jobworker-rm", 0, 0, 0);
  if (argv_area && argv_area_len > 2) {
    memset(argv_area, 0, argv_area_len);
    snprintf(argv_area, argv_area_len - 1, "jobworker-remove %s", dir);
  }
  if (slots) munmap(slots, sizeof *slots * MAX_STARTING);
  slots = NULL;
  my_slot = NULL;
  signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  char answer[sizeof ((struct walk *)0)->what + 32];
  struct walk w;
  memset(&w, 0, sizeof w);
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (setgroups((size_t)ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
      getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0) {
    w.err = errno;
  } else if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid || setuid(0) == 0 ||
             seteuid(0) == 0) {
    w.err = EPERM;
  }
  if (w.err != 0) {
    snprintf(answer, sizeof answer, "%d could not become uid %u (gid %u): %s\n", w.err, (unsigned)uid,
             (unsigned)gid, strerror(w.err));
    write_all(out, answer, strlen(answer));
    _exit(1);
  }
  /* After the drop: a change of ids clears it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* It never execs: it holds a copy of the spawner's memory (other jobs' requests, their
     environments among them) while any process of the account may signal it. Neither ptrace nor
     /proc/PID/mem by the account (the kernel leaves a process dumpable after a drop where
     fs.suid_dumpable is 1), nor a core dump of it, anywhere. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  if (getppid() != spawner) _exit(1);
  int top = open_walked(AT_FDCWD, dir, &w, 1);
  struct stat st;
  if (top < 0 || fstat(top, &st) < 0) {
    walk_failed(&w, dir, errno);
    if (top >= 0) close(top);
  } else {
    w.dev = st.st_dev;
    remove_below(top, &w);
  }
  snprintf(answer, sizeof answer, "%d %s\n", w.err, w.err ? w.what : "");
  write_all(out, answer, strlen(answer));
  _exit(0);
}

/* The fields of a request's payload (after its kind), NUL-terminated each; NULL when it has none
   or they cannot be counted. */
static char **split_fields(char *buf, size_t len, size_t *count) {
  size_t n = 0;
  for (size_t k = 0; k < len; k++)
    if (buf[k] == '\0') n++;
  *count = n;
  char **fields = n > 0 ? malloc(sizeof(char *) * n) : NULL;
  if (!fields) return NULL;
  char *p = buf;
  for (size_t k = 0; k < n; k++) {
    fields[k] = p;
    p += strlen(p) + 1;
  }
  return fields;
}

/* An id of a removal request: a whole number in [MIN, 0xfffffffe]; -1 when it is not one. */
static long long parse_id(const char *text, long long min) {
  char *end;
  errno = 0;
  long long value = strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || errno != 0 || value < min || value >= 0xffffffffLL) return -1;
  return value;
}

/* Forks the child of a removal request ("remove" REQ DIR UID GID NGROUPS GIDS...); it is answered
   once the child has ended (reap). */
static void serve_removal(char *payload, size_t len) {
  size_t n = 0;
  char **f = split_fields(payload, len, &n);
  char line[256];
  const char *id = f && n >= 1 && strlen(f[0]) < sizeof removals[0].id ? f[0] : "?";
  long long ngroups = f && n >= 5 ? parse_id(f[4], 0) : -1;
  long long uid = f && n >= 5 ? parse_id(f[2], 1) : -1;
  long long gid = f && n >= 5 ? parse_id(f[3], 0) : -1;
  gid_t *groups = ngroups >= 0 && (size_t)ngroups == n - 5 ? malloc(sizeof(gid_t) * ((size_t)ngroups + 1)) : NULL;
  int ok = groups != NULL && uid > 0 && gid >= 0 && f[1][0] == '/' && strcmp(id, "?") != 0;
  for (long long g = 0; ok && g < ngroups; g++) {
    long long value = parse_id(f[5 + g], 0);
    if (value < 0) ok = 0;
    groups[g] = (gid_t)value;
  }
  if (!ok) {
    /* Every request is answered: one that cannot be read is refused, never left waiting. */
    snprintf(line, sizeof line, "err %s request %d malformed removal request\n", id, EINVAL);
    write_all(1, line, strlen(line));
    free(groups);
    free(f);
    return;
  }
  int rp[2] = {-1, -1};
  if (nremovals == removals_cap) {
    int want = removals_cap ? removals_cap * 2 : 8;
    struct removal *more = realloc(removals, sizeof *removals * (size_t)want);
    if (more != NULL) {
      removals = more;
      removals_cap = want;
    }
  }
  pid_t spawner = getpid();
  pid_t child = -1;
  int e = ENOMEM;
  if (nremovals < removals_cap && pipe2(rp, O_CLOEXEC) == 0) {
    child = fork();
    if (child == 0) {
      close(rp[0]);
      close(sigfd);
      for (int i = 0; i < nstarting; i++) close(starting[i].fd);
      for (int i = 0; i < nremovals; i++)
        if (removals[i].fd >= 0) close(removals[i].fd);
      run_removal(f[1], (uid_t)uid, (gid_t)gid, groups, (int)ngroups, rp[1], spawner);
    }
    e = errno;
    close(rp[1]);
    if (child < 0) close(rp[0]);
  } else if (nremovals < removals_cap) {
    e = errno;
  }
  if (child < 0) {
    snprintf(line, sizeof line, "err %s remove %d could not start the removal: %s\n", id, e, strerror(e));
    write_all(1, line, strlen(line));
  } else {
    struct removal *r = &removals[nremovals++];
    r->fd = rp[0];
    r->pid = child;
    r->used = 0;
    strcpy(r->id, id);
    fcntl(rp[0], F_SETFL, fcntl(rp[0], F_GETFL) | O_NONBLOCK);
  }
  free(groups);
  free(f);
}

/* Reads what removal I's child wrote, without waiting: its pipe is closed at its end (or once its
   line is longer than an answer can be). What does not fit is read and dropped, so a child that
   writes on does not keep the spawner's poll awake. */
static void read_removal(int i) {
  struct removal *r = &removals[i];
  while (r->fd >= 0) {
    char drop[256];
    size_t room = sizeof r->line - 1 - r->used;
    ssize_t got = room > 0 ? read(r->fd, r->line + r->used, room) : read(r->fd, drop, sizeof drop);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) return;
    if (got <= 0) {
      close(r->fd);
      r->fd = -1;
      return;
    }
    if (room > 0) r->used += (size_t)got;
  }
}

/* Answers for removal I, whose child ended with STATUS, then forgets it. The child's line is read
   as data, never relayed: it ran as the job's account. */
static void answer_removal(int i, int status) {
  struct removal *r = &removals[i];
  read_removal(i);
  if (r->fd >= 0) close(r->fd);
  r->line[r->used] = '\0';
  char *newline = strchr(r->line, '\n');
  char *end = r->line;
  long e = -1;
  if (newline != NULL) {
    *newline = '\0';
    e = strtol(r->line, &end, 10);
  }
  char line[sizeof r->line + 96];
  if (newline != NULL && end != r->line && *end == ' ' && e == 0) {
    snprintf(line, sizeof line, "removed %s\n", r->id);
  } else if (newline != NULL && end != r->line && *end == ' ' && e > 0 && e < 4096) {
    /* One line, whatever the names in it: the server reads a line per answer. */
    for (char *c = end + 1; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    snprintf(line, sizeof line, "err %s remove %ld %s\n", r->id, e, end + 1);
  } else if (WIFSIGNALED(status)) {
    snprintf(line, sizeof line, "err %s remove %d the removal ended before it answered (signal %d)\n", r->id, ECHILD,
             WTERMSIG(status));
  } else {
    snprintf(line, sizeof line, "err %s remove %d the removal ended before it answered (exit %d)\n", r->id, ECHILD,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  write_all(1, line, strlen(line));
  removals[i] = removals[--nremovals];
}

/* "cancel" REQ: the server gave up removal REQ (its deadline, or it closes). Its child is killed;
   it is answered as it ends. One already answered is not known here any more: nothing to do. */
static void cancel_removal(char *payload, size_t len) {
  if (len == 0 || payload[len - 1] != '\0') return;
  for (int i = 0; i < nremovals; i++)
    if (strcmp(removals[i].id, payload) == 0) kill(removals[i].pid, SIGKILL);
}

/* How long a wrapper may take to answer (JOBWORKER_SPAWNER_START_TIMEOUT_MS). */
#define DEFAULT_START_TIMEOUT_MS 30000
static long long start_timeout_ms = DEFAULT_START_TIMEOUT_MS;

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Forgets start I, once answered for. */
static void forget(int i) {
  struct starting *s = &starting[i];
  close(s->fd);
  free(s->identity);
  slot_taken[s->slot] = 0;
  starting[i] = starting[--nstarting];
}

/* Relays what wrapper I answered (its report ends at end-of-file: it closes the pipe after its
   line), or that it died before answering, then forgets it. */
static void relay_answer(int i) {
  struct starting *s = &starting[i];
  if (s->used == 0) {
    /* The wrapper died before it answered (killed, or out of memory): nothing ran. */
    char line[160];
    snprintf(line, sizeof line, "err %s fork %d wrapper ended before the job started\n", s->id, ECHILD);
    write_all(1, line, strlen(line));
  } else {
    write_all(1, s->line, s->used);
  }
  forget(i);
}

/* Reads what wrapper I wrote; true once its report is whole (end-of-file). With BLOCK, reads to
   the end: used only once the wrapper is gone, or when the spawner is closing. */
static int read_answer(int i, int block) {
  struct starting *s = &starting[i];
  for (;;) {
    ssize_t n = read(s->fd, s->line + s->used, sizeof s->line - 1 - s->used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !block) return 0;
    if (n <= 0 || s->used + (size_t)n >= sizeof s->line - 1) {
      if (n > 0) s->used += (size_t)n;
      return 1;
    }
    s->used += (size_t)n;
    if (!block) return 0;
  }
}

/* Gives up start I, which has not answered by its deadline. A wrapper that holds its answer back
   that long is stuck: in a working directory, a command or a file system that hangs (a hung NFS or
   FUSE mount), or behind a job's process that shares its memory and cannot go on. The wrapper and
   the job's process (as its slot names it, while its start time still matches: a process of that
   pid started since is another) are killed, the wrapper first so that it does nothing more: the
   command never runs (a process killed in its exec dies before its first instruction). The job's
   identity file, where it was written, is removed: the server reads the job's directory after a
   refusal, and must record the job failed to start, not adopt processes that are gone. Then the
   answer says why. An answer that came meanwhile is relayed instead. */
static void give_up(int i) {
  struct starting *s = &starting[i];
  if (read_answer(i, 0) || memchr(s->line, '\n', s->used) != NULL) {
    relay_answer(i);
    return;
  }
  kill(s->pid, SIGKILL);
  if (slots) {
    struct start_slot *slot = &slots[s->slot];
    pid_t job = __atomic_load_n(&slot->job, __ATOMIC_ACQUIRE);
    long long ticks = slot->job_ticks;
    if (job > 0 && start_ticks(job) == ticks) kill(job, SIGKILL);
    if (__atomic_load_n(&slot->identity, __ATOMIC_ACQUIRE)) unlink(s->identity);
  }
  char line[256];
  snprintf(line, sizeof line,
           "err %s timeout %d no answer within %lld ms (a working directory, command or file system that "
           "hangs?); its processes were killed\n",
           s->id, ETIMEDOUT, start_timeout_ms);
  write_all(1, line, strlen(line));
  forget(i);
}

/* Forks a wrapper for one request; its answer (ok or err) is relayed when it comes. */
static void start_one(char *payload, size_t len) {
  struct request r;
  memset(&r, 0, sizeof r);
  char **fields = NULL;
  char line[512];
  if (parse_request(payload, len, &r, &fields) < 0) {
    /* Every request is answered: one that cannot be read is refused, never left waiting. */
    snprintf(line, sizeof line, "err %s request %d malformed start request\n", r.id ? r.id : "?", EINVAL);
    write_all(1, line, strlen(line));
    free(fields);
    free(r.groups);
    free(r.iso.ro);
    free(r.iso.hide);
    return;
  }
  int rp[2];
  char *identity = NULL;
  /* A free slot: there is one for each place in starting[], which has room (see main). */
  int slot = 0;
  while (slot < MAX_STARTING - 1 && slot_taken[slot]) slot++;
  if (strlen(r.id) >= sizeof starting[0].id) {
    snprintf(line, sizeof line, "err ? request %d request id too long\n", EINVAL);
    write_all(1, line, strlen(line));
  } else if ((identity = malloc(strlen(r.dir) + sizeof "/process")) == NULL || pipe2(rp, O_CLOEXEC) < 0) {
    snprintf(line, sizeof line, "err %s fork %d %s\n", r.id, errno, strerror(errno));
    write_all(1, line, strlen(line));
    free(identity);
  } else {
    sprintf(identity, "%s/process", r.dir);
    if (slots) memset(&slots[slot], 0, sizeof slots[slot]);
    pid_t w = fork();
    if (w == 0) {
      close(rp[0]);
      close(sigfd);
      for (int i = 0; i < nstarting; i++) close(starting[i].fd);
      for (int i = 0; i < nremovals; i++)
        if (removals[i].fd >= 0) close(removals[i].fd);
      if (slots) my_slot = &slots[slot];
      run_wrapper(&r, rp[1]);
    }
    int e = errno;
    close(rp[1]);
    if (w < 0) {
      close(rp[0]);
      free(identity);
      snprintf(line, sizeof line, "err %s fork %d %s\n", r.id, e, strerror(e));
      write_all(1, line, strlen(line));
    } else {
      struct starting *s = &starting[nstarting++];
      s->fd = rp[0];
      s->pid = w;
      s->slot = slot;
      slot_taken[slot] = 1;
      s->deadline = monotonic_ms() + start_timeout_ms;
      s->identity = identity;
      s->used = 0;
      strcpy(s->id, r.id);
      fcntl(rp[0], F_SETFL, fcntl(rp[0], F_GETFL) | O_NONBLOCK);
    }
  }
  free(fields);
  free(r.groups);
  free(r.iso.ro);
  free(r.iso.hide);
}

/* True when the request of LEN bytes at REQUEST is of KIND: its first field. */
static int is_kind(const char *request, size_t len, const char *kind) {
  size_t n = strlen(kind) + 1;
  return len >= n && memcmp(request, kind, n) == 0;
}

static void reap(void) {
  int status;
  pid_t pid;
  char line[64];
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    /* A removal's child is answered for at its end, and has no exit line: it is no wrapper. */
    int removal = 0;
    for (int i = 0; i < nremovals && !removal; i++) {
      if (removals[i].pid != pid) continue;
      answer_removal(i, status);
      removal = 1;
    }
    if (removal) continue;
    /* A wrapper's answer always goes out before its exit line (the server listens for the exit
       once it has the answer): one that ended unanswered is answered now, from what it wrote. */
    for (int i = 0; i < nstarting; i++) {
      if (starting[i].pid != pid) continue;
      read_answer(i, 1);
      relay_answer(i);
      break;
    }
    snprintf(line, sizeof line, "exit %d %d\n", (int)pid, status);
    write_all(1, line, strlen(line));
  }
}

/* `jobworker-spawner --probe-namespaces`: whether this process may create each kind of
   namespace, by trying in a child that exits at once. One line each: "NAME ERRNO" (0: it can).
   src/runtime/host-capabilities.ts reads it; a try is the only sure answer (sysctls, seccomp,
   LSMs and the container we may run in all have a say). */
static int probe_namespaces(void) {
  static const struct {
    const char *name;
    int flag;
  } kinds[] = {{"user", CLONE_NEWUSER}, {"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET}, {"mnt", CLONE_NEWNS}, {"uts", CLONE_NEWUTS}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    int result = ENOSYS;
    pid_t p = fork();
    if (p == 0) _exit(unshare(kinds[i].flag) == 0 ? 0 : (errno & 0xff));
    int status;
    if (p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status)) result = WEXITSTATUS(status);
    printf("%s %d\n", kinds[i].name, result);
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

/* Joins the jobs' CPU group, JOBWORKER_SPAWNER_CPU_GROUP (a cgroup.procs file), before the first
   fork: every wrapper and job forked after inherits it, and the forks are charged to it, so that
   all of them share the CPU with the server's threads as one group (docs/isolation.md). One move
   per spawner, where a join per job would cost each start a cgroup move. A failure is told on
   stderr, which the server logs, and the jobs then run as before. */
static void join_cpu_group(void) {
  const char *path = getenv("JOBWORKER_SPAWNER_CPU_GROUP");
  if (path == NULL || *path == '\0') return;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0 && write_all(fd, "0\n", 2) == 0) {
    close(fd);
    return;
  }
  int e = errno;
  if (fd >= 0) close(fd);
  fprintf(stderr, "jobworker-spawner: could not join the jobs' CPU group %s: %s\n", path, strerror(e));
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--probe-namespaces") == 0) return probe_namespaces();
  /* The wrapper's title is written over our argv area: the server starts us with padding. */
  argv_area = argv[0];
  argv_area_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
  signal(SIGPIPE, SIG_IGN);
  const char *fork_env = getenv("JOBWORKER_SPAWNER_FORK");
  fork_only = fork_env != NULL && strcmp(fork_env, "1") == 0;
  const char *timeout_env = getenv("JOBWORKER_SPAWNER_START_TIMEOUT_MS");
  if (timeout_env != NULL) {
    char *end;
    long long ms = strtoll(timeout_env, &end, 10);
    if (*timeout_env != '\0' && *end == '\0' && ms > 0) start_timeout_ms = ms;
  }
  /* Without the mapping (it costs one page) an overdue start still has its wrapper killed. */
  slots = mmap(NULL, sizeof *slots * MAX_STARTING, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (slots == MAP_FAILED) slots = NULL;
  join_cpu_group();
  int bfd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (bfd >= 0) {
    ssize_t n = read_full(bfd, boot_id, sizeof boot_id - 1);
    close(bfd);
    while (n > 0 && (boot_id[n - 1] == '\n' || boot_id[n - 1] == ' ')) n--;
    boot_id[n > 0 ? n : 0] = '\0';
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    perror("jobworker-spawner: signalfd");
    return 1;
  }

  size_t cap = 1 << 16, used = 0;
  char *buf = malloc(cap);
  if (!buf) return 1;
  /* Set once the server is gone or closed us: the starts under way are still answered (or given
     up) before the spawner goes, and wrappers and jobs go on. The removals under way are killed
     (nobody waits for them; the next server's sweep removes what they left) and answered. */
  int closing = 0;
  struct pollfd *fds = NULL;
  int fds_cap = 0;
  while (!closing || nstarting > 0 || nremovals > 0) {
    /* The wrappers' report pipes first, then signals, then new requests (while there is room),
       then the removals' pipes; until the next start is overdue. */
    if (nstarting + nremovals + 2 > fds_cap) {
      int want = nstarting + nremovals + 2 + 16;
      struct pollfd *more = realloc(fds, sizeof *fds * (size_t)want);
      if (!more) return 1;
      fds = more;
      fds_cap = want;
    }
    int n_watch = nstarting;
    long long next = -1;
    for (int i = 0; i < n_watch; i++) {
      fds[i] = (struct pollfd){.fd = starting[i].fd, .events = POLLIN};
      if (next < 0 || starting[i].deadline < next) next = starting[i].deadline;
    }
    fds[n_watch] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    /* Requests are read while there is room for a start, and while the table is full up to
       READ_AHEAD bytes more: a removal or its cancel behind the waiting starts is served then,
       not after a start's answer (up to the start deadline when a start hangs). */
    fds[n_watch + 1] =
        (struct pollfd){.fd = !closing && (nstarting < MAX_STARTING || used < READ_AHEAD) ? 0 : -1, .events = POLLIN};
    int n_removals = nremovals;
    for (int i = 0; i < n_removals; i++) fds[n_watch + 2 + i] = (struct pollfd){.fd = removals[i].fd, .events = POLLIN};
    int wait_ms = -1;
    if (next >= 0) {
      long long left = next - monotonic_ms();
      wait_ms = left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
    }
    if (poll(fds, (nfds_t)(n_watch + 2 + n_removals), wait_ms) < 0) {
      if (errno == EINTR) continue;
      perror("jobworker-spawner: poll");
      return 1;
    }
    /* Backwards: relaying moves the last entry into the place of the one answered. */
    for (int i = n_watch - 1; i >= 0; i--) {
      if (fds[i].revents && read_answer(i, 0)) relay_answer(i);
    }
    /* Before the reap below, which may forget removals: their places are as polled until then. */
    for (int i = 0; i < n_removals; i++) {
      if (fds[n_watch + 2 + i].revents) read_removal(i);
    }
    if (fds[n_watch].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(sigfd, &info, sizeof info) > 0) {
      }
      reap();
    }
    long long now = monotonic_ms();
    for (int i = nstarting - 1; i >= 0; i--) {
      if (starting[i].deadline <= now) give_up(i);
    }
    if (fds[n_watch + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (used == cap) {
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) return 1;
        buf = bigger;
        cap *= 2;
      }
      ssize_t n = read(0, buf + used, cap - used);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closing = 1;
        for (int i = 0; i < nremovals; i++) kill(removals[i].pid, SIGKILL);
        continue;
      }
      used += (size_t)n;
    }
    /* Whole requests are served in order, starts while there is room; from a start that has none
       on, the starts wait in the buffer, kept in their order at its front, until wrappers answer,
       while the other requests (removals and cancels, which no start waits on) are served. Once
       closing, none: the server hears of them as of any request in flight when the spawner
       ends. */
    size_t off = 0, kept = 0;
    int starts_wait = 0;
    while (!closing && used - off >= 4) {
      uint32_t len = (uint32_t)(unsigned char)buf[off] | (uint32_t)(unsigned char)buf[off + 1] << 8 |
                     (uint32_t)(unsigned char)buf[off + 2] << 16 | (uint32_t)(unsigned char)buf[off + 3] << 24;
      if (used - off - 4 < len) {
        if (len + 4 > cap) {
          size_t want = cap;
          while (want < (size_t)len + 4) want *= 2;
          char *bigger = realloc(buf, want);
          if (!bigger) return 1;
          buf = bigger;
          cap = want;
        }
        break;
      }
      char *request = buf + off + 4;
      if (is_kind(request, len, "start")) {
        if (starts_wait || nstarting >= MAX_STARTING) {
          starts_wait = 1;
          memmove(buf + kept, request - 4, 4 + (size_t)len);
          kept += 4 + (size_t)len;
          off += 4 + len;
          continue;
        }
        start_one(request + 6, len - 6);
      } else if (is_kind(request, len, "remove")) {
        serve_removal(request + 7, len - 7);
      } else if (is_kind(request, len, "cancel")) {
        cancel_removal(request + 7, len - 7);
      } else {
        char line[96];
        snprintf(line, sizeof line, "err ? request %d unknown request kind\n", EINVAL);
        write_all(1, line, strlen(line));
      }
      off += 4 + len;
    }
    if (off > kept) {
      memmove(buf + kept, buf + off, used - off);
      used -= off - kept;
      reap();
    }
  }
  return 0;
}
