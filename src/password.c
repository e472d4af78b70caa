/*
 * Password sources (see password.h).  Every copy of the password lives in
 * secret memory: the file and the command's output are read in small
 * pieces straight into a secret buffer, never through stdio's own buffers
 * for the command pipe, and wiped when done.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "icpd/config.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/password.h"
#include "icpd/secret.h"
#include "icpd/util.h"
#include "icpd/banned.h"

/* Longer passwords are refused rather than cut. */
#define PASSWORD_MAX 1024

bool password_in_secret_mount(const char *path)
{
	static const char *const dirs[] = { "/run/secrets/", "/var/run/secrets/" };

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (str_startswith(path, dirs[i])) {
			return true;
		}
	}
	return false;
}

/* Cut buf (len bytes, NUL-terminated) at the first line end. */
static void first_line(char *buf)
{
	size_t n = strcspn(buf, "\r\n");

	secure_zero(buf + n, strlen(buf + n));
}

/* Read up to PASSWORD_MAX bytes of fd into secret memory. */
static int read_fd_secret(int fd, const char *what, char **out)
{
	char *buf = secret_alloc(PASSWORD_MAX + 1);
	size_t len = 0;

	for (;;) {
		ssize_t n;

		if (len == PASSWORD_MAX) {
			/* only the first line counts; stop once it is complete */
			if (memchr(buf, '\n', len)) {
				break;
			}
			secret_free(buf);
			return error_set(ICPD_EUSAGE, "the password from %s is longer than %d bytes",
				what, PASSWORD_MAX);
		}
		n = read(fd, buf + len, PASSWORD_MAX - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			int e = errno;

			secret_free(buf);
			return error_set(ICPD_EUSAGE, "cannot read the password from %s: %s", what,
				strerror(e));
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
		if (memchr(buf, '\n', len)) {
			break;
		}
	}
	buf[len] = '\0';
	first_line(buf);
	*out = buf;
	return 0;
}

static int from_file(const char *path, char **out)
{
	struct stat st;
	char *what = xasprintf("'%s'", path);
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = error_set(ICPD_EUSAGE, "cannot open password file '%s': %s", path,
			strerror(errno));
		free(what);
		return err;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) && !password_in_secret_mount(path)) {
		log_warn("password file '%s' can be read by other users (mode %04o); "
			 "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
	}
	err = read_fd_secret(fd, what, out);
	close(fd);
	free(what);
	return err;
}

static int from_command(const char *cmd, char **out)
{
	int pipefd[2];
	pid_t pid;
	int status, err;

	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		return error_set(ICPD_EUSAGE, "cannot run password command: %s", strerror(errno));
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return error_set(ICPD_EUSAGE, "cannot run password command: %s", strerror(err));
	}
	if (pid == 0) {
		/* stdin stays (a secret manager may prompt), stdout goes to us */
		if (dup2(pipefd[1], STDOUT_FILENO) < 0) {
			_exit(127);
		}
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	err = read_fd_secret(pipefd[0], "the password command", out);
	/* read the rest too, so a command that prints more than one line is
	 * not killed by SIGPIPE (only the first line counts) */
	for (size_t total = 0; total < (1u << 20);) {
		char rest[512];
		ssize_t n = read(pipefd[0], rest, sizeof(rest));

		secure_zero(rest, sizeof(rest));
		if (n == 0 || (n < 0 && errno != EINTR)) {
			break;
		}
		total += n > 0 ? (size_t)n : 0;
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}
	if (err) {
		return err;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		secret_free(*out);
		*out = NULL;
		if (WIFEXITED(status)) {
			return error_set(ICPD_EUSAGE, "password command failed with exit status %d",
				WEXITSTATUS(status));
		}
		return error_set(ICPD_EUSAGE, "password command did not finish normally");
	}
	return 0;
}

int password_read_line(FILE *in, FILE *out, const char *prompt, bool no_echo, char **line)
{
	struct termios old, quiet;
	bool restore = false;
	char *buf;
	int err = 0;

	*line = NULL;
	/* echo goes off before the prompt shows, and without flushing input:
	 * an answer typed right after the prompt appears must not be lost */
	if (no_echo && isatty(fileno(in)) && tcgetattr(fileno(in), &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		restore = tcsetattr(fileno(in), TCSANOW, &quiet) == 0;
	}
	if (prompt) {
		fputs(prompt, out);
		fflush(out);
	}
	buf = secret_alloc(PASSWORD_MAX + 2);
	if (!fgets(buf, PASSWORD_MAX + 2, in)) {
		secret_free(buf);
		err = error_set(ICPD_EAUTH, "no answer: end of input");
		goto done;
	}
	if (!strchr(buf, '\n') && strlen(buf) > PASSWORD_MAX) {
		secret_free(buf);
		err = error_set(ICPD_EUSAGE, "the answer is longer than %d bytes", PASSWORD_MAX);
		goto done;
	}
	first_line(buf);
	*line = buf;
done:
	if (restore) {
		tcsetattr(fileno(in), TCSANOW, &old);
	}
	return err;
}

static int from_prompt(const struct config *cfg, FILE *in, FILE *out, char **pw)
{
	int err;
	char *prompt = xasprintf("iCloud password for %s: ", cfg->username ? cfg->username : "");

	for (;;) {
		err = password_read_line(in, out, prompt, true, pw);
		if (err || (*pw && **pw)) {
			free(prompt);
			return err;
		}
		/* an empty line: someone just attached (kubectl attach) and could
		 * not see the prompt, so show it again */
		secret_free(*pw);
		*pw = NULL;
	}
}

int password_get(const struct config *cfg, bool may_prompt, FILE *in, FILE *out, char **out_pw)
{
	const char *source = NULL;
	char *pw = NULL;
	int err = 0;

	*out_pw = NULL;
	if (cfg->password_file) {
		source = "--password-file";
		err = from_file(cfg->password_file, &pw);
	} else if (cfg->password_command) {
		source = "--password-command";
		err = from_command(cfg->password_command, &pw);
	} else if (cfg->env_password) {
		source = "ICPD_PASSWORD";
		pw = secret_strdup(cfg->env_password);
	} else if (cfg->password) {
		source = "--password";
		log_warn("a password given with -p/--password is visible to every user of this "
			 "machine; use --password-file or --password-command instead");
		pw = secret_strdup(cfg->password);
	} else if (may_prompt) {
		source = "the prompt";
		err = from_prompt(cfg, in, out, &pw);
	} else {
		return ICPD_ENOTFOUND;
	}
	if (err) {
		return err;
	}
	if (!pw || !pw[0]) {
		secret_free(pw);
		return error_set(ICPD_EUSAGE, "the password from %s is empty", source);
	}
	log_add_secret(pw);
	log_debug("password from %s", source);
	*out_pw = pw;
	return 0;
}

void password_free(char *pw)
{
	if (pw) {
		log_forget_secret(pw);
		secret_free(pw);
	}
}
