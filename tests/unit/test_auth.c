#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/auth.h"
#include "icpd/error.h"
#include "icpd/http.h"

/* The shape of Apple's page (2fa_flow_valid_code.yml): a boot_args script
 * among others, bullets as JSON escapes. */
static const char page_old[] =
	"<!DOCTYPE html><html><head>"
	"<script type=\"application/json\" class=\"pre\">{\"trustedPhoneNumbers\":[{\"id\":99}]}</script>"
	"<SCRIPT type=\"application/json\" class=\"boot_args\">{\"direct\":{\"isReact\":true,"
	"\"twoSV\":{\"supportedPushModes\":[\"voice\",\"sms\"],\"phoneNumberVerification\":{"
	"\"trustedPhoneNumbers\":[{\"numberWithDialCode\":\"+1 (\\u2022\\u2022\\u2022) "
	"\\u2022\\u2022\\u2022-\\u2022\\u202281\",\"pushMode\":\"sms\",\"obfuscatedNumber\":"
	"\"(\\u2022\\u2022\\u2022) \\u2022\\u2022\\u2022-\\u2022\\u202281\",\"lastTwoDigits\":\"81\","
	"\"id\":1},{\"obfuscatedNumber\":\"+49 \\u2022\\u2022\\u2022 77\",\"pushMode\":\"voice\","
	"\"id\":\"7\"}],\"securityCode\":{\"length\":6,\"tooManyCodesSent\":false,"
	"\"securityCodeLocked\":false}}},\"tag\":\"\\u003Chsa2\\u003E<\\/hsa2>\"}}</script>"
	"<script type=\"application/json\" class=\"post\">{}</script></head></html>";

static const char page_bridge[] =
	"<script class='boot_args' type=\"application/json\">{\"direct\":{\"twoSV\":{"
	"\"bridgeInitiateData\":{\"phoneNumberVerification\":{\"trustedPhoneNumbers\":["
	"{\"id\":3,\"obfuscatedNumber\":\"(\\u2022\\u2022\\u2022) \\u2022\\u2022\\u2022-\\u2022\\u202233\"}],"
	"\"securityCode\":{\"tooManyCodesSent\":true}}}}}}</script>";

START_TEST(test_html_old_location)
{
	struct auth_phone_list l;

	ck_assert_int_eq(auth_parse_phone_list(page_old, strlen(page_old), &l), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(l.items[0].id, 1);
	ck_assert_str_eq(l.items[0].label, "(\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2) "
					   "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2-\xe2\x80\xa2\xe2\x80\xa2" "81");
	ck_assert_str_eq(l.items[0].push_mode, "sms");
	ck_assert_int_eq(l.items[1].id, 7); /* string ids accepted */
	ck_assert_str_eq(l.items[1].push_mode, "voice");
	ck_assert(!l.too_many_codes);
	auth_phone_list_release(&l);
	ck_assert_ptr_null(l.items);
}
END_TEST

START_TEST(test_html_bridge_location_and_too_many)
{
	struct auth_phone_list l;

	ck_assert_int_eq(auth_parse_phone_list(page_bridge, strlen(page_bridge), &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.items[0].id, 3);
	ck_assert(l.too_many_codes);
	auth_phone_list_release(&l);
}
END_TEST

START_TEST(test_json_fallback_shapes)
{
	static const char *const bodies[] = {
		"  {\"phoneNumberVerification\":{\"trustedPhoneNumbers\":[{\"id\":5,\"numberWithDialCode\":\"+1 x55\"}]}}",
		"{\"trustedPhoneNumbers\":[{\"id\":5,\"lastTwoDigits\":\"55\"}]}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct auth_phone_list l;

		ck_assert_int_eq(auth_parse_phone_list(bodies[i], strlen(bodies[i]), &l), 0);
		ck_assert_uint_eq(l.n, 1);
		ck_assert_int_eq(l.items[0].id, 5);
		ck_assert_str_eq(l.items[0].push_mode, "sms");
		auth_phone_list_release(&l);
	}
}
END_TEST

START_TEST(test_not_nul_terminated)
{
	size_t n = strlen(page_bridge);
	char *copy = malloc(n);
	struct auth_phone_list l;

	memcpy(copy, page_bridge, n);
	ck_assert_int_eq(auth_parse_phone_list(copy, n, &l), 0);
	ck_assert_uint_eq(l.n, 1);
	auth_phone_list_release(&l);
	/* cut inside the closing tag: no list, an error, no over-read */
	ck_assert_int_eq(auth_parse_phone_list(copy, n - 5, &l), ICPD_EPROTO);
	ck_assert_uint_eq(l.n, 0);
	free(copy);
}
END_TEST

START_TEST(test_garbage)
{
	static const char *const bodies[] = {
		"",
		"<html>no script here</html>",
		"<script class=\"boot_args\">",
		"<script class=\"boot_args\">{not json</script>",
		"<script class=\"boot_argsx\">{}</script>",
		"<script",
		"{\"trustedPhoneNumbers\":\"nope\"}",
		"[1,2,3]",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct auth_phone_list l;
		int err = auth_parse_phone_list(bodies[i], strlen(bodies[i]), &l);

		ck_assert_msg(err == 0 || err == ICPD_EPROTO, "body %zu", i);
		ck_assert_uint_eq(l.n, 0);
		auth_phone_list_release(&l);
	}
}
END_TEST

START_TEST(test_entries_without_id_skipped)
{
	static const char body[] = "{\"trustedPhoneNumbers\":[{\"obfuscatedNumber\":\"x\"},"
				   "{\"id\":null},{\"id\":\"12a\"},{\"id\":2}]}";
	struct auth_phone_list l;

	ck_assert_int_eq(auth_parse_phone_list(body, strlen(body), &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.items[0].id, 2);
	ck_assert_str_eq(l.items[0].label, "a trusted phone number");
	auth_phone_list_release(&l);
}
END_TEST

START_TEST(test_hidden_status)
{
	struct http_response r;
	struct http_header h[2] = { { (char *)"X-Apple-I-Rscd", (char *)"401" },
		{ (char *)"scnt", (char *)"x" } };

	memset(&r, 0, sizeof(r));
	r.status = 200;
	r.headers = h;
	r.nheaders = 2;
	ck_assert_int_eq(auth_effective_status(&r), 401);
	h[0].value = (char *)"409";
	ck_assert_int_eq(auth_effective_status(&r), 409);
	h[0].value = (char *)"200";
	ck_assert_int_eq(auth_effective_status(&r), 200);
	h[0].value = (char *)"garbage";
	ck_assert_int_eq(auth_effective_status(&r), 200);
	/* only a 2xx hides a status; a real error stays what it is */
	h[0].value = (char *)"401";
	r.status = 503;
	ck_assert_int_eq(auth_effective_status(&r), 503);
	r.nheaders = 0;
	r.status = 204;
	ck_assert_int_eq(auth_effective_status(&r), 204);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("phone_list");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_html_old_location);
	tcase_add_test(tc, test_html_bridge_location_and_too_many);
	tcase_add_test(tc, test_json_fallback_shapes);
	tcase_add_test(tc, test_not_nul_terminated);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_entries_without_id_skipped);
	tcase_add_test(tc, test_hidden_status);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
