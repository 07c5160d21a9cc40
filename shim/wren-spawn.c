/* wren-spawn: runs commands on behalf of a long-lived parent (the node agent), so that each
 * command costs a spawn from this small process instead of a fork of a ~170 MB Node heap.
 *
 * Protocol: little-endian u32 fields; requests on fd 0, responses on fd 1.
 *   run:      u32 kind=1, u32 id, u32 argc, u32 envc, u32 inputLen,
 *             argc NUL-terminated strings (argv[0] is looked up in PATH, like execvp),
 *             envc NUL-terminated "K=V" strings (envc 0: inherit ours), inputLen bytes of stdin
 *   kill:     u32 kind=2, u32 id     SIGKILL to that run's child; no response of its own
 *   response: u32 id, i32 status, u32 spawnErrno, u32 outLen, u32 errLen, stdout, stderr
 *             status: exit code, 128+signo if killed by a signal, or -1 when posix_spawnp
 *             failed (spawnErrno says why; no child existed). Responses come in completion order.
 * On EOF of fd 0 the helper finishes its running children, flushes, and exits 0.
 * Malformed input: a message on stderr and exit 2.
 *
 * Model: one ppoll loop over fd 0, fd 1 and each child's three pipes, all non-blocking on our
 * side (blocking on the child's). A child is reaped once its stdout and stderr are at EOF.
 * Invariants: SIGCHLD is blocked except inside ppoll, so a child that closes its outputs before
 * it exits wakes the loop when it does exit (no lost wakeup, no polling timeout); a job in the
 * list has an unreaped pid, so a kill can never hit a recycled pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fields are copied as host u32s: the protocol is little-endian"
#endif

extern char **environ;

enum { RUN = 1, KILL = 2, HEAD = 20, CHUNK = 65536 };
#define MAX_STRINGS (64u << 20) /* argv+env bytes; beyond this the stream is garbage */

typedef struct { char *p; size_t len, cap; } buf;

typedef struct job {
  uint32_t id;
  pid_t pid;
  int in, out, err; /* our pipe ends, -1 once closed */
  buf input, o, e;
  size_t fed; /* bytes of input written to the child */
  struct job *next;
} job;

static job *jobs;
static buf req, resp; /* bytes of fd 0 not yet parsed; responses not yet written */
static size_t resp_off;
static int reading = 1, writing = 1; /* fd 0 not at EOF; fd 1 still has a reader */
static posix_spawnattr_t attr;

static void die(const char *what) { perror(what); exit(2); }
static void bad(const char *why, uint32_t v) { fprintf(stderr, "wren-spawn: malformed request: %s (%u)\n", why, v); exit(2); }

static void reserve(buf *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : CHUNK;
  while (cap < b->len + more) cap *= 2;
  if (!(b->p = realloc(b->p, cap))) die("realloc");
  b->cap = cap;
}
static void append(buf *b, const void *p, size_t n) { if (!n) return; reserve(b, n); memcpy(b->p + b->len, p, n); b->len += n; }
static void put32(buf *b, uint32_t v) { append(b, &v, 4); }
static uint32_t get32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void release(buf *b) { free(b->p); *b = (buf){0}; }
static void shut(int *fd) { if (*fd >= 0) close(*fd); *fd = -1; }
static void nonblock(int fd) { if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl"); }

/* One read into b; 0 at EOF, -1 with errno (EAGAIN: nothing there after all). */
static ssize_t fill(int fd, buf *b) {
  reserve(b, CHUNK);
  ssize_t n = read(fd, b->p + b->len, b->cap - b->len);
  if (n > 0) b->len += n;
  return n;
}

static void respond(uint32_t id, int32_t status, uint32_t err, const buf *o, const buf *e) {
  if (!writing) return;
  put32(&resp, id), put32(&resp, (uint32_t)status), put32(&resp, err);
  put32(&resp, o ? o->len : 0), put32(&resp, e ? e->len : 0);
  if (o) append(&resp, o->p, o->len);
  if (e) append(&resp, e->p, e->len);
}

/* Writes what fd 1 takes now; a reader that went away drops the rest (nobody to tell). */
static void flush(void) {
  while (resp_off < resp.len) {
    ssize_t n = write(1, resp.p + resp_off, resp.len - resp_off);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) { writing = 0; break; }
    resp_off += n;
  }
  resp_off = 0;
  if (resp.cap > 16 * CHUNK) release(&resp); else resp.len = 0; /* don't keep a 5 MB answer's buffer */
}

/* Child gets the far ends of three pipes on 0/1/2; returns 0 or the errno of the failure. */
static int spawn(job *j, char **argv, char **envp) {
  int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, rc = 0;
  for (int i = 0; i < 3 && !rc; i++) if (pipe2(p[i], O_CLOEXEC) < 0) rc = errno;
  posix_spawn_file_actions_t fa;
  if (!rc && !(rc = posix_spawn_file_actions_init(&fa))) {
    posix_spawn_file_actions_adddup2(&fa, p[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, p[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[2][1], 2);
    rc = posix_spawnp(&j->pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
  }
  shut(&p[0][0]), shut(&p[1][1]), shut(&p[2][1]);
  j->in = p[0][1], j->out = p[1][0], j->err = p[2][0];
  if (rc) { shut(&j->in), shut(&j->out), shut(&j->err); return rc; }
  nonblock(j->in), nonblock(j->out), nonblock(j->err);
  return 0;
}

static void start(uint32_t id, char **argv, char **envp, const char *input, uint32_t len) {
  job *j = calloc(1, sizeof *j);
  if (!j) die("calloc");
  j->id = id;
  int rc = spawn(j, argv, envp);
  if (rc) { respond(id, -1, rc, 0, 0); free(j); return; }
  append(&j->input, input, len);
  if (!len) shut(&j->in);
  j->next = jobs, jobs = j;
}

static void kill_job(uint32_t id) {
  for (job *j = jobs; j; j = j->next) if (j->id == id) { kill(j->pid, SIGKILL); return; }
  /* not there: it ended and its response crossed the kill on the way */
}

/* Strings at s: the offset just past the n-th NUL, or 0 if they have not all arrived. */
static size_t strings_end(const char *s, size_t avail, uint32_t n, char **out) {
  size_t off = 0;
  for (uint32_t i = 0; i < n; i++) {
    const char *nul = memchr(s + off, 0, avail - off);
    if (!nul) { if (avail > MAX_STRINGS) bad("strings without end", n); return 0; }
    if (out) out[i] = (char *)s + off;
    off = nul - s + 1;
  }
  return off; /* n > 0 (argc >= 1), so 0 never means "complete" */
}

/* Runs the run request at p if it is complete; returns its length, or 0 to wait for more. */
static size_t take_run(const char *p, size_t avail) {
  if (avail < HEAD) return 0;
  uint32_t argc = get32(p + 8), envc = get32(p + 12), len = get32(p + 16);
  if (!argc || argc > MAX_STRINGS / 2 || envc > MAX_STRINGS / 2) bad("argc/envc", argc);
  size_t s = strings_end(p + HEAD, avail - HEAD, argc + envc, 0);
  if (!s || avail - HEAD - s < len) {
    if (s) reserve(&req, HEAD + s + len - avail); /* the rest is coming: make room once */
    return 0;
  }
  char **v = calloc(argc + envc + 2, sizeof *v);
  if (!v) die("calloc");
  strings_end(p + HEAD, s, argc + envc, v);
  memmove(v + argc + 1, v + argc, envc * sizeof *v); /* argv NULL-terminated, then envp */
  v[argc] = NULL, v[argc + envc + 1] = NULL;
  start(get32(p + 4), v, envc ? v + argc + 1 : environ, p + HEAD + s, len);
  free(v);
  return HEAD + s + len;
}

static void parse(void) {
  size_t off = 0, n;
  while (req.len - off >= 8) {
    const char *p = req.p + off;
    uint32_t kind = get32(p);
    if (kind == KILL) kill_job(get32(p + 4)), n = 8;
    else if (kind == RUN) n = take_run(p, req.len - off);
    else bad("unknown kind", kind);
    if (!n) break;
    off += n;
  }
  memmove(req.p, req.p + off, req.len -= off);
}

static void on_job_fd(job *j, int fd) {
  if (fd == j->in) {
    ssize_t n = write(fd, j->input.p + j->fed, j->input.len - j->fed);
    if (n > 0) j->fed += n;
    if (j->fed == j->input.len || (n < 0 && errno != EAGAIN)) shut(&j->in), release(&j->input); /* EPIPE: it stopped reading */
    return;
  }
  int *end = fd == j->out ? &j->out : &j->err;
  ssize_t n = fill(fd, fd == j->out ? &j->o : &j->e);
  if (n == 0 || (n < 0 && errno != EAGAIN)) shut(end);
}

/* Answers every job whose outputs are done and whose child has exited. */
static void reap(void) {
  for (job **pp = &jobs; *pp;) {
    job *j = *pp;
    int st;
    pid_t r = j->out < 0 && j->err < 0 ? waitpid(j->pid, &st, WNOHANG) : 0;
    if (r < 0) die("waitpid");
    if (r == 0) { pp = &j->next; continue; }
    respond(j->id, WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st), 0, &j->o, &j->e);
    *pp = j->next;
    shut(&j->in), release(&j->input), release(&j->o), release(&j->e), free(j);
  }
}

static void on_chld(int sig) { (void)sig; } /* only there to interrupt ppoll */

static void setup(sigset_t *waitmask) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_chld};
  sigaction(SIGCHLD, &sa, 0);
  sigset_t chld;
  sigemptyset(&chld), sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, waitmask);
  sigdelset(waitmask, SIGCHLD);
  nonblock(0), nonblock(1);
  /* children start with no blocked signals and SIGPIPE at its default, as under a shell */
  sigset_t none, pipe;
  sigemptyset(&none), sigemptyset(&pipe), sigaddset(&pipe, SIGPIPE);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe);
}

int main(void) {
  sigset_t waitmask;
  setup(&waitmask);
  struct pollfd *pf = 0;
  size_t cap = 0;
  while (reading || jobs || (writing && resp.len)) {
    size_t n = 0, need = 2;
    for (job *j = jobs; j; j = j->next) need += 3;
    if (need > cap && !(pf = realloc(pf, (cap = need * 2) * sizeof *pf))) die("realloc");
    if (reading) pf[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    if (writing && resp.len) pf[n++] = (struct pollfd){.fd = 1, .events = POLLOUT};
    for (job *j = jobs; j; j = j->next) {
      if (j->in >= 0) pf[n++] = (struct pollfd){.fd = j->in, .events = POLLOUT};
      if (j->out >= 0) pf[n++] = (struct pollfd){.fd = j->out, .events = POLLIN};
      if (j->err >= 0) pf[n++] = (struct pollfd){.fd = j->err, .events = POLLIN};
    }
    int ready = ppoll(pf, n, NULL, &waitmask);
    if (ready < 0 && errno != EINTR) die("ppoll");
    for (size_t i = 0; ready > 0 && i < n; i++) {
      if (!pf[i].revents || pf[i].fd <= 1) continue;
      for (job *j = jobs; j; j = j->next)
        if (pf[i].fd == j->in || pf[i].fd == j->out || pf[i].fd == j->err) { on_job_fd(j, pf[i].fd); break; }
    }
    reap();
    if (ready > 0 && reading && pf[0].revents) {
      ssize_t r = fill(0, &req);
      if (r == 0 || (r < 0 && errno != EAGAIN)) reading = 0;
      parse();
      if (!reading && req.len) fprintf(stderr, "wren-spawn: input ended inside a request (%zu bytes dropped)\n", req.len);
    }
    flush();
  }
  free(pf);
  return 0;
}
