/*
 * A tiny HTTP/1.1 server on a thread of the test process, for the
 * downloader and sync engine tests.  Paths choose the behaviour: /ok/N,
 * /norange/N, /cut/N (the first response stops half way), /html, /429/N
 * (first 429 + Retry-After: 1), /<status>, /big/N (10 bytes more than N),
 * /badrange/N.  Included by one test file each (static functions).
 */
#ifndef ICPD_TEST_HTTPD_H
#define ICPD_TEST_HTTPD_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd = -1;
static int port;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char last_target[512];
static char last_range[64];
static int hits[16]; /* 0 cut, 1 429, 2 html, 3 status; 4 all */

static unsigned char byte_at(long i)
{
	/* never '<' or '{' at 0: media-like */
	return i == 0 ? 0xff : (unsigned char)((i * 7 + 3) & 0xff);
}

static void send_all(int fd, const void *data, size_t n)
{
	const char *p = data;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0) {
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void send_body(int fd, long from, long to)
{
	unsigned char buf[4096];

	while (from < to) {
		size_t n = 0;

		while (n < sizeof(buf) && from < to) {
			buf[n++] = byte_at(from++);
		}
		send_all(fd, buf, n);
	}
}

static int bump(int slot)
{
	int n;

	pthread_mutex_lock(&lock);
	n = ++hits[slot];
	pthread_mutex_unlock(&lock);
	return n;
}

static void *serve_conn(void *arg)
{
	int fd = (int)(long)arg;
	char req[4096];
	size_t len = 0;
	char target[512] = "", hdr[512];
	long range = -1, n = 0;
	const char *r;

	while (len < sizeof(req) - 1) {
		ssize_t got = recv(fd, req + len, sizeof(req) - 1 - len, 0);

		if (got <= 0) {
			goto done;
		}
		len += (size_t)got;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n")) {
			break;
		}
	}
	if (sscanf(req, "GET %511s", target) != 1) {
		goto done;
	}
	bump(4);
	r = strcasestr(req, "\r\nRange: bytes=");
	if (r) {
		range = atol(r + 15);
	}
	pthread_mutex_lock(&lock);
	snprintf(last_target, sizeof(last_target), "%s", target);
	if (r) {
		snprintf(last_range, sizeof(last_range), "bytes=%ld-", range);
	} else {
		last_range[0] = '\0';
	}
	pthread_mutex_unlock(&lock);
	if (range < 0) {
		range = 0;
	}
	if (sscanf(target, "/%*[a-z0-9]/%ld", &n) != 1) {
		n = 0;
	}
	if (strncmp(target, "/ok/", 4) == 0 || strncmp(target, "/cut/", 5) == 0 ||
		strncmp(target, "/429/", 5) == 0 || strncmp(target, "/badrange/", 10) == 0) {
		bool cut = strncmp(target, "/cut/", 5) == 0 && bump(0) == 1;
		bool throttle = strncmp(target, "/429/", 5) == 0 && bump(1) == 1;
		bool bad = strncmp(target, "/badrange/", 10) == 0 && range > 0;

		if (throttle) {
			snprintf(hdr, sizeof(hdr), "HTTP/1.1 429 Too Many\r\nRetry-After: 1\r\n"
						   "Content-Length: 0\r\nConnection: close\r\n\r\n");
			send_all(fd, hdr, strlen(hdr));
			goto done;
		}
		if (bad) {
			range = 0; /* claims a different start than asked */
			snprintf(hdr, sizeof(hdr), "HTTP/1.1 206 Partial\r\nContent-Range: bytes 1-%ld/%ld\r\n"
						   "Content-Length: %ld\r\nConnection: close\r\n\r\n",
				n - 1, n, n - 1);
			send_all(fd, hdr, strlen(hdr));
			send_body(fd, 1, n);
			goto done;
		}
		if (range > 0) {
			snprintf(hdr, sizeof(hdr),
				"HTTP/1.1 206 Partial\r\nContent-Type: image/jpeg\r\n"
				"Content-Range: bytes %ld-%ld/%ld\r\nContent-Length: %ld\r\n"
				"Connection: close\r\n\r\n",
				range, n - 1, n, n - range);
		} else {
			snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
						   "Content-Length: %ld\r\nConnection: close\r\n\r\n",
				n);
		}
		send_all(fd, hdr, strlen(hdr));
		send_body(fd, range, cut ? n / 2 : n);
	} else if (strncmp(target, "/norange/", 9) == 0 || strncmp(target, "/big/", 5) == 0) {
		long total = strncmp(target, "/big/", 5) == 0 ? n + 10 : n;

		snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n"
					   "Connection: close\r\n\r\n",
			total);
		send_all(fd, hdr, strlen(hdr));
		send_body(fd, 0, total);
	} else if (strncmp(target, "/html", 5) == 0) {
		const char *body = "<html><body>Service Unavailable</body></html>";

		bump(2);
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
					   "Connection: close\r\n\r\n",
			strlen(body));
		send_all(fd, hdr, strlen(hdr));
		send_all(fd, body, strlen(body));
	} else {
		int status = atoi(target + 1);

		bump(3);
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d Error\r\nContent-Length: 0\r\n"
					   "Connection: close\r\n\r\n",
			status ? status : 404);
		send_all(fd, hdr, strlen(hdr));
	}
done:
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		pthread_t t;

		if (fd < 0) {
			return NULL;
		}
		pthread_create(&t, NULL, serve_conn, (void *)(long)fd);
		pthread_detach(t);
	}
}

static void start_server(void)
{
	struct sockaddr_in a = { 0 };
	socklen_t alen = sizeof(a);
	pthread_t t;
	int one = 1;

	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(listen_fd, 64), 0);
	getsockname(listen_fd, (struct sockaddr *)&a, &alen);
	port = ntohs(a.sin_port);
	pthread_create(&t, NULL, serve, NULL);
	pthread_detach(t);
}


#endif
