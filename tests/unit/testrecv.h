/*
 * A one-request HTTP receiver on 127.0.0.1 in a thread, for the notify and
 * immich tests: it records the request and sends a canned reply, or holds
 * the connection without answering (hang_ms) to test timeouts.
 */
#ifndef ICPD_TESTRECV_H
#define ICPD_TESTRECV_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct recv {
	int fd;
	int port;
	const char *reply; /* full HTTP response */
	long hang_ms;      /* > 0: read the request, answer nothing for this long */
	int accepted;
	char request[16384];
	pthread_t th;
};

static void *recv_serve(void *arg)
{
	struct recv *s = arg;
	int c = accept(s->fd, NULL, NULL);
	size_t got = 0;

	if (c < 0) {
		return NULL;
	}
	s->accepted = 1;
	while (got < sizeof(s->request) - 1) {
		ssize_t n = read(c, s->request + got, sizeof(s->request) - 1 - got);
		char *end;

		if (n <= 0) {
			break;
		}
		got += (size_t)n;
		s->request[got] = '\0';
		end = strstr(s->request, "\r\n\r\n");
		if (end) {
			char *cl = strcasestr(s->request, "Content-Length:");
			size_t need = (size_t)(end + 4 - s->request);

			if (cl && cl < end) {
				need += (size_t)atol(cl + 15);
			}
			if (got >= need) {
				break;
			}
		}
	}
	if (s->hang_ms > 0) {
		/* answer nothing; done when the client hangs up or the time is over */
		struct pollfd p = { .fd = c, .events = POLLIN };

		poll(&p, 1, (int)s->hang_ms);
	} else if (write(c, s->reply, strlen(s->reply)) < 0) {
		/* the client gave up; the test will say so */
	}
	close(c);
	return NULL;
}

static void recv_start(struct recv *s, const char *reply, long hang_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->hang_ms = hang_ms;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->fd, 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->fd, 1), 0);
	ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&s->th, NULL, recv_serve, s), 0);
}

static void recv_stop(struct recv *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

/* The body of the recorded request ("" when none). */
static const char *recv_body(const struct recv *s)
{
	const char *end = strstr(s->request, "\r\n\r\n");

	return end ? end + 4 : "";
}

/* A log captured into a temporary file. */
struct logcap {
	FILE *f;
	char text[16384];
};

static void logcap_start(struct logcap *l)
{
	l->f = tmpfile();
	ck_assert_ptr_nonnull(l->f);
	l->text[0] = '\0';
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT, l->f);
}

static const char *logcap_read(struct logcap *l)
{
	size_t n;

	fflush(l->f);
	rewind(l->f);
	n = fread(l->text, 1, sizeof(l->text) - 1, l->f);
	l->text[n] = '\0';
	return l->text;
}

static void logcap_stop(struct logcap *l)
{
	log_setup(LOG_INFO, LOG_FORMAT_TEXT, stderr);
	fclose(l->f);
}

#endif
