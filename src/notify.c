/*
 * Operator notifications (notify.h): a shell hook and a JSON webhook.
 * Neither may change how a run ends, so every failure is a warning and the
 * run's error message is saved around each delivery.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "icpd_build.h"
#include "icpd/buf.h"
#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/http.h"
#include "icpd/log.h"
#include "icpd/notify.h"
#include "icpd/util.h"
#include "icpd/banned.h"

extern char **environ;

#define COMMAND_SECONDS 30
#define KILL_GRACE_MS 2000
#define URL_CONNECT_SECONDS 10
#define URL_IDLE_SECONDS 10
#define URL_MAX_RESPONSE (64u * 1024)

static int command_seconds = COMMAND_SECONDS;
static int url_seconds;

void notify_set_timeouts(int cmd, int url)
{
	command_seconds = cmd > 0 ? cmd : COMMAND_SECONDS;
	url_seconds = url > 0 ? url : 0;
}

/* The run's error, kept while a notification may overwrite it. */
struct saved_error {
	int code;
	char *message;
	char *hint;
};

static void error_save(struct saved_error *s)
{
	s->code = error_code();
	s->message = xstrdup(error_message());
	s->hint = xstrdup(error_hint_text());
}

static void error_restore(struct saved_error *s)
{
	if (s->code || s->message[0]) {
		error_set(s->code, "%s", s->message);
		if (s->hint[0]) {
			error_hint("%s", s->hint);
		}
	} else {
		error_clear();
	}
	free(s->message);
	free(s->hint);
}

static void format_time(time_t t, char out[32])
{
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm)) {
		out[0] = '\0';
		return;
	}
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long days_left(time_t expires, time_t now)
{
	double d = difftime(expires, now) / 86400.0;

	/* whole days, rounded down; an expired trust is negative */
	return d >= 0 ? (long)d : -(long)(-d + 0.999999);
}

static const char *default_message(const char *event)
{
	if (strcmp(event, NOTIFY_AUTH_REQUIRED) == 0) {
		return "iCloud sign-in needed: run 'icpd auth'";
	}
	if (strcmp(event, NOTIFY_AUTH_EXPIRING) == 0) {
		return "the trusted iCloud session expires soon: run 'icpd auth'";
	}
	if (strcmp(event, NOTIFY_SYNC_FAILED) == 0) {
		return "icpd sync failed";
	}
	return "icpd sync finished";
}

/* Everything a channel needs, computed once per event. */
struct event_text {
	const char *event;
	const char *account;
	const char *message;
	char now[32];
	char trust[32];
	bool trust_known;
	long trust_days;
	const struct notify_figures *f;
};

/* ---- the command ---- */

static bool scrub_var(const char *entry, const struct config *cfg)
{
	const char *eq = strchr(entry, '=');

	if (!eq || str_startswith(entry, "ICPD_")) {
		return true;
	}
	/* a password that reached the environment some other way */
	for (int i = 0; i < 2; i++) {
		const char *p = i == 0 ? cfg->password : cfg->env_password;

		if (p && *p && strstr(eq + 1, p)) {
			return true;
		}
	}
	return false;
}

static void env_add(struct strlist *env, const char *name, const char *value)
{
	char *e = xasprintf("%s=%s", name, value ? value : "");

	strlist_add(env, e);
	free(e);
}

static void env_add_num(struct strlist *env, const char *name, int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	env_add(env, name, num);
}

static void build_env(struct strlist *env, const struct config *cfg, const struct event_text *t)
{
	const struct notify_figures *f = t->f;
	char *line;

	for (char **e = environ; e && *e; e++) {
		if (!scrub_var(*e, cfg)) {
			strlist_add(env, *e);
		}
	}
	env_add(env, "ICPD_EVENT", t->event);
	env_add(env, "ICPD_ACCOUNT", t->account);
	/* one line: a hook may put it straight into a header or a log */
	line = xstrdup(t->message);
	for (char *p = line; *p; p++) {
		if (*p == '\n' || *p == '\r') {
			*p = ' ';
		}
	}
	env_add(env, "ICPD_MESSAGE", line);
	free(line);
	env_add(env, "ICPD_TIME", t->now);
	env_add_num(env, "ICPD_EXIT_CODE", f->exit_code);
	env_add_num(env, "ICPD_LISTED", f->listed);
	env_add_num(env, "ICPD_DOWNLOADED", f->downloaded);
	env_add_num(env, "ICPD_FAILED", f->failed);
	env_add_num(env, "ICPD_BYTES", f->bytes);
	env_add(env, "ICPD_TRUST_EXPIRES", t->trust);
	if (t->trust_known) {
		env_add_num(env, "ICPD_TRUST_DAYS_LEFT", t->trust_days);
	} else {
		env_add(env, "ICPD_TRUST_DAYS_LEFT", "");
	}
}

static long now_ms(void)
{
	return (long)(mono_now() * 1000);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Wait for pid up to deadline (monotonic ms); true when it was reaped. */
static bool wait_until(pid_t pid, long deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid) {
			return true;
		}
		if (r < 0 && errno != EINTR) {
			*status = 0;
			return true; /* not our child any more: nothing left to wait for */
		}
		if (now_ms() >= deadline) {
			return false;
		}
		sleep_ms(20);
	}
}

static int run_command(const struct config *cfg, const struct event_text *t)
{
	struct strlist env = { 0 };
	char sh[] = "sh", dash_c[] = "-c";
	char *argv[] = { sh, dash_c, cfg->notify_command, NULL };
	char **envp;
	int status = 0, err = 0;
	pid_t pid;

	build_env(&env, cfg, t);
	/* execve wants a NULL-terminated array; the strings stay env's */
	envp = xcalloc(env.n + 1, sizeof(*envp));
	for (size_t i = 0; i < env.n; i++) {
		envp[i] = env.items[i];
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = error_set(ICPD_EINTERNAL, "cannot start --notify-command: %s", strerror(errno));
		goto done;
	}
	if (pid == 0) {
		/* the child: only async-signal-safe calls from here on */
		int null = open("/dev/null", O_RDONLY);
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		setpgid(0, 0);
		/* icpd ignores SIGPIPE; a hook's pipelines expect the default */
		sigaction(SIGPIPE, &dfl, NULL);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
		}
		dup2(STDERR_FILENO, STDOUT_FILENO);
		/* the session lock, the state database, sockets: not for the hook */
		if (close_range(3, ~0U, 0) != 0) {
			for (int fd = 3; fd < 4096; fd++) {
				close(fd);
			}
		}
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	setpgid(pid, pid); /* also from here, so the kill below cannot miss */
	if (!wait_until(pid, now_ms() + (long)command_seconds * 1000, &status)) {
		kill(-pid, SIGTERM);
		if (!wait_until(pid, now_ms() + KILL_GRACE_MS, &status)) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
		err = error_set(ICPD_ENET, "--notify-command ran longer than %d s and was stopped",
			command_seconds);
		goto done;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		err = error_set(ICPD_EINTERNAL, "--notify-command exited with status %d",
			WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		err = error_set(ICPD_EINTERNAL, "--notify-command was killed by signal %d",
			WTERMSIG(status));
	}
done:
	free(envp);
	strlist_clear(&env);
	return err;
}

/* ---- the URL ---- */

static int json_str(struct buf *b, const char *s)
{
	int err = buf_adds(b, "\"");

	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && !err; p++) {
		switch (*p) {
		case '"':
			err = buf_adds(b, "\\\"");
			break;
		case '\\':
			err = buf_adds(b, "\\\\");
			break;
		case '\n':
			err = buf_adds(b, "\\n");
			break;
		case '\r':
			err = buf_adds(b, "\\r");
			break;
		case '\t':
			err = buf_adds(b, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				err = buf_addf(b, "\\u%04x", *p);
			} else {
				err = buf_add(b, p, 1);
			}
		}
	}
	return err ? err : buf_adds(b, "\"");
}

/* The webhook body (the shape is documented in notify.h). */
static int build_json(struct buf *b, const struct event_text *t)
{
	const struct notify_figures *f = t->f;
	char *title = xasprintf("icpd: %s", t->event);
	int err = 0;

	err = err ? err : buf_adds(b, "{\"event\":");
	err = err ? err : json_str(b, t->event);
	err = err ? err : buf_adds(b, ",\"account\":");
	err = err ? err : json_str(b, t->account);
	err = err ? err : buf_adds(b, ",\"title\":");
	err = err ? err : json_str(b, title);
	err = err ? err : buf_adds(b, ",\"message\":");
	err = err ? err : json_str(b, t->message);
	err = err ? err : buf_adds(b, ",\"body\":");
	err = err ? err : json_str(b, t->message);
	err = err ? err : buf_adds(b, ",\"time\":");
	err = err ? err : json_str(b, t->now);
	err = err ? err : buf_addf(b,
		",\"figures\":{\"listed\":%" PRId64 ",\"downloaded\":%" PRId64
		",\"failed\":%" PRId64 ",\"bytes\":%" PRId64 ",\"exit_code\":%d,\"trust_expires\":",
		f->listed, f->downloaded, f->failed, f->bytes, f->exit_code);
	if (!err && t->trust_known) {
		err = json_str(b, t->trust);
		err = err ? err : buf_addf(b, ",\"trust_days_left\":%ld}}", t->trust_days);
	} else if (!err) {
		err = buf_adds(b, "null,\"trust_days_left\":null}}");
	}
	free(title);
	return err;
}

static int post_url(const struct config *cfg, const struct event_text *t)
{
	struct http_client *c = NULL;
	struct http_options ho = {
		.ca_file = cfg->ca_file,
		.user_agent = "icpd/" ICPD_VERSION,
		.connect_timeout = url_seconds ? url_seconds : URL_CONNECT_SECONDS,
		.idle_timeout = url_seconds ? url_seconds : URL_IDLE_SECONDS,
	};
	const char *headers[] = { "Content-Type: application/json", "Accept: */*", NULL };
	struct buf body = BUF_INIT;
	struct http_response resp;
	struct http_request req = { .method = "POST", .url = cfg->notify_url, .headers = headers,
		.max_response = URL_MAX_RESPONSE };
	int err;

	http_response_init(&resp);
	err = build_json(&body, t);
	if (err) {
		goto done;
	}
	req.body = body.data;
	req.body_len = body.len;
	err = http_client_new(&c, &ho);
	if (err) {
		goto done;
	}
	err = http_request(c, &req, &resp);
	if (err) {
		/* http.c's message names the URL without its query */
		goto done;
	}
	if (resp.status < 200 || resp.status > 299) {
		err = error_set(ICPD_EPROTO, "the receiver answered HTTP %ld", resp.status);
	}
done:
	http_response_release(&resp);
	http_client_free(c);
	buf_release(&body);
	return err;
}

/* ---- events ---- */

/* user:password of a URL (ntfy takes basic auth there), or NULL.  Caller frees. */
static char *url_userinfo(const char *url)
{
	const char *host = strstr(url, "://");
	const char *at, *end;

	if (!host) {
		return NULL;
	}
	host += 3;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	return at ? xstrndup(host, (size_t)(at - host)) : NULL;
}

static int event_at(const struct config *cfg, const char *event, const struct notify_figures *f,
	time_t now)
{
	struct notify_figures none = { 0 };
	struct event_text t = { .event = event };
	struct saved_error saved;
	int result = 0;

	if ((!cfg->notify_command || !*cfg->notify_command) &&
		(!cfg->notify_url || !*cfg->notify_url)) {
		return 0;
	}
	if (!f) {
		f = &none;
	}
	t.f = f;
	t.account = f->account ? f->account : (cfg->username ? cfg->username : "");
	t.message = f->message && *f->message ? f->message : default_message(event);
	format_time(now, t.now);
	format_time(f->trust_expires, t.trust);
	t.trust_known = t.trust[0] != '\0';
	t.trust_days = t.trust_known ? days_left(f->trust_expires, now) : 0;

	error_save(&saved);
	if (cfg->notify_command && *cfg->notify_command) {
		int err;

		error_clear();
		err = run_command(cfg, &t);
		if (err) {
			log_warn("notification '%s' by command failed: %s", event, error_message());
			result = err;
		} else {
			log_debug("notification '%s' by command sent", event);
		}
	}
	if (cfg->notify_url && *cfg->notify_url) {
		char *userinfo = url_userinfo(cfg->notify_url);
		int err;

		/* http.c traces the URL with its query removed, not its password */
		log_add_secret(userinfo);
		error_clear();
		err = post_url(cfg, &t);
		if (err) {
			char *shown = log_redact_url(cfg->notify_url);

			log_warn("notification '%s' to '%s' failed: %s", event, shown,
				error_message());
			free(shown);
			result = err;
		} else {
			log_debug("notification '%s' posted", event);
		}
		log_forget_secret(userinfo);
		free(userinfo);
	}
	error_restore(&saved);
	return result;
}

int notify_event(const struct config *cfg, const char *event, const struct notify_figures *f)
{
	return event_at(cfg, event, f, time(NULL));
}

void notify_sync_result(const struct config *cfg, int rc, const struct notify_figures *f)
{
	struct notify_figures g = { 0 };
	char *msg = NULL;
	const char *event;

	if (f) {
		g = *f;
	}
	if (!g.exit_code) {
		g.exit_code = exit_code(rc);
	}
	if (rc == ICPD_EAUTH || rc == ICPD_EACCOUNT) {
		event = NOTIFY_AUTH_REQUIRED;
	} else if (rc == 0 || rc == ICPD_EPARTIAL) {
		event = NOTIFY_SYNC_COMPLETE;
	} else {
		event = NOTIFY_SYNC_FAILED;
	}
	if (!g.message) {
		if (rc == 0 || rc == ICPD_EPARTIAL) {
			msg = xasprintf("%" PRId64 " new files (%" PRId64 " bytes), %" PRId64 " failed",
				g.downloaded, g.bytes, g.failed);
		} else if (error_message()[0]) {
			msg = error_hint_text()[0]
				? xasprintf("%s; %s", error_message(), error_hint_text())
				: xstrdup(error_message());
		}
		g.message = msg;
	}
	notify_event(cfg, event, &g);
	free(msg);
}

bool notify_check_trust(const struct config *cfg, time_t trust_expires, time_t now)
{
	struct notify_figures f = { 0 };
	char when[32];
	char *msg;
	long left;

	if (trust_expires <= 0 || cfg->auth_expiring_days < 0) {
		return false;
	}
	if (!now) {
		now = time(NULL);
	}
	if (difftime(trust_expires, now) > (double)cfg->auth_expiring_days * 86400.0) {
		return false;
	}
	left = days_left(trust_expires, now);
	format_time(trust_expires, when);
	msg = xasprintf("the trusted iCloud session ends %s (in %ld days): run 'icpd auth' "
			"before then", when, left);
	log_warn("%s", msg);
	f.trust_expires = trust_expires;
	f.message = msg;
	event_at(cfg, NOTIFY_AUTH_EXPIRING, &f, now);
	free(msg);
	return true;
}
