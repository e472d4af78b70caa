#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "icpd/buf.h"
#include "icpd/error.h"

START_TEST(test_empty_is_string)
{
	struct buf b = BUF_INIT;

	ck_assert_str_eq(b.data, "");
	ck_assert_uint_eq(b.len, 0);
	buf_release(&b);
}
END_TEST

START_TEST(test_add_and_format)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_adds(&b, "abc"), 0);
	ck_assert_int_eq(buf_addf(&b, "-%d-%s", 42, "x"), 0);
	ck_assert_str_eq(b.data, "abc-42-x");
	ck_assert_uint_eq(b.len, 8);
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(buf_add(&b, "0123456789", 10), 0);
	}
	ck_assert_uint_eq(b.len, 10008);
	ck_assert_int_eq(b.data[b.len], '\0');
	buf_release(&b);
}
END_TEST

START_TEST(test_cap_enforced)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_adds(&b, "12345678"), 0);
	ck_assert_int_eq(buf_adds(&b, "9"), ICPD_EPROTO);
	ck_assert_str_eq(b.data, "12345678");
	ck_assert_int_eq(buf_addf(&b, "%s", "x"), ICPD_EPROTO);
	buf_release(&b);
}
END_TEST

START_TEST(test_detach)
{
	struct buf b = BUF_INIT;
	size_t len;
	char *p;

	ck_assert_int_eq(buf_adds(&b, "hello"), 0);
	p = buf_detach(&b, &len);
	ck_assert_str_eq(p, "hello");
	ck_assert_uint_eq(len, 5);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	free(p);
	p = buf_detach(&b, &len);
	ck_assert_str_eq(p, "");
	free(p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_empty_is_string);
	tcase_add_test(tc, test_add_and_format);
	tcase_add_test(tc, test_cap_enforced);
	tcase_add_test(tc, test_detach);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
