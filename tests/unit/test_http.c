/*
 * http.c against a canned plain-HTTP server on 127.0.0.1 in a thread:
 * status, header capture, body cap, Retry-After, cookies, methods.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "icpd/error.h"
#include "icpd/http.h"

struct server {
	int fd;
	int port;
	const char *reply; /* full HTTP response */
	char request[8192];
	pthread_t th;
};

static void *serve_once(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	size_t got = 0;

	if (c < 0) {
		return NULL;
	}
	/* read until the end of headers plus any Content-Length body */
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
	if (write(c, s->reply, strlen(s->reply)) < 0) {
		/* the client gave up; the test will say so */
	}
	close(c);
	return NULL;
}

static void start(struct server *s, const char *reply)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int one = 1;

	memset(s->request, 0, sizeof(s->request));
	s->reply = reply;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->fd, 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->fd, 1), 0);
	ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&s->th, NULL, serve_once, s), 0);
}

static void stop(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

START_TEST(test_post_json_headers_and_cookies)
{
	struct server s;
	struct http_client *c;
	struct http_response r;
	struct buf jar = BUF_INIT;
	char url[128];
	const char *hdrs[] = { "Content-Type: application/json", "scnt: abc", NULL };
	struct http_request req = { .method = "POST", .url = url, .headers = hdrs,
		.body = "{\"a\":1}", .body_len = 7 };

	start(&s, "HTTP/1.1 409 Conflict\r\nContent-Length: 14\r\nscnt: NEWSCNT\r\n"
		  "X-Apple-Session-Token: tok1\r\nSet-Cookie: K=V; Path=/; HttpOnly\r\n"
		  "Retry-After: 7\r\n\r\n{\"authType\":1}");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/appleauth/auth/signin/complete", s.port);
	ck_assert_int_eq(http_client_new(&c, NULL), 0);
	http_response_init(&r);
	ck_assert_int_eq(http_request(c, &req, &r), 0);
	stop(&s);
	ck_assert_int_eq(r.status, 409);
	ck_assert_str_eq(r.body.data, "{\"authType\":1}");
	ck_assert_str_eq(http_response_header(&r, "SCNT"), "NEWSCNT");
	ck_assert_str_eq(http_response_header(&r, "x-apple-session-token"), "tok1");
	ck_assert_ptr_null(http_response_header(&r, "X-Missing"));
	ck_assert(r.retry_after > 6.9 && r.retry_after < 7.1);
	ck_assert_ptr_nonnull(strstr(s.request, "POST /appleauth/auth/signin/complete HTTP/1.1"));
	ck_assert_ptr_nonnull(strstr(s.request, "scnt: abc"));
	ck_assert_ptr_nonnull(strstr(s.request, "\r\n\r\n{\"a\":1}"));
	ck_assert_ptr_null(strstr(s.request, "Expect:"));
	ck_assert_ptr_null(strstr(s.request, "x-www-form-urlencoded"));

	ck_assert_int_eq(http_cookies_export(c, &jar), 0);
	ck_assert_ptr_nonnull(strstr(jar.data, "\tK\tV"));
	http_cookies_clear(c);
	buf_reset(&jar);
	ck_assert_int_eq(http_cookies_export(c, &jar), 0);
	ck_assert_uint_eq(jar.len, 0);
	ck_assert_int_eq(http_cookies_import(c,
		"#HttpOnly_.icloud.com\tTRUE\t/\tTRUE\t0\tX-APPLE-WEBAUTH-TOKEN\tsecret\n"), 0);
	ck_assert_int_eq(http_cookies_export(c, &jar), 0);
	ck_assert_ptr_nonnull(strstr(jar.data, "X-APPLE-WEBAUTH-TOKEN\tsecret"));

	buf_release(&jar);
	http_response_release(&r);
	http_client_free(c);
}
END_TEST

START_TEST(test_put_without_body_and_cap)
{
	struct server s;
	struct http_client *c;
	struct http_response r;
	char url[128];
	struct http_request req = { .method = "PUT", .url = url };

	start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/verify", s.port);
	ck_assert_int_eq(http_client_new(&c, NULL), 0);
	http_response_init(&r);
	req.max_response = 4;
	ck_assert_int_eq(http_request(c, &req, &r), ICPD_EPROTO);
	stop(&s);
	ck_assert_ptr_nonnull(strstr(s.request, "PUT /verify HTTP/1.1"));
	ck_assert_ptr_nonnull(strstr(s.request, "Content-Length: 0"));
	http_response_release(&r);
	http_client_free(c);
}
END_TEST

START_TEST(test_connection_refused_is_network_error)
{
	struct http_client *c;
	struct http_response r;
	struct http_request req = { .method = "GET", .url = "http://127.0.0.1:1/x?secret=1" };

	ck_assert_int_eq(http_client_new(&c, NULL), 0);
	http_response_init(&r);
	ck_assert_int_eq(http_request(c, &req, &r), ICPD_ENET);
	ck_assert_ptr_null(strstr(error_message(), "secret=1"));
	ck_assert_int_eq(r.status, 0);
	http_response_release(&r);
	http_client_free(c);
}
END_TEST

START_TEST(test_escape)
{
	char *e = http_escape("a b/${f}");

	ck_assert_str_eq(e, "a%20b%2F%24%7Bf%7D");
	free(e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_post_json_headers_and_cookies);
	tcase_add_test(tc, test_put_without_body_and_cap);
	tcase_add_test(tc, test_connection_refused_is_network_error);
	tcase_add_test(tc, test_escape);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	http_global_init();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
