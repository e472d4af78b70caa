#include <check.h>
#include <stdlib.h>

#include "icpd/error.h"

START_TEST(test_exit_mapping)
{
	ck_assert_int_eq(exit_code(ICPD_OK), 0);
	ck_assert_int_eq(exit_code(ICPD_EINTERNAL), 1);
	ck_assert_int_eq(exit_code(ICPD_EUSAGE), 2);
	ck_assert_int_eq(exit_code(ICPD_EAUTH), 3);
	ck_assert_int_eq(exit_code(ICPD_ESESSION), 3);
	ck_assert_int_eq(exit_code(ICPD_EPARTIAL), 4);
	ck_assert_int_eq(exit_code(ICPD_EASSET), 4);
	ck_assert_int_eq(exit_code(ICPD_EUNAVAIL), 5);
	ck_assert_int_eq(exit_code(ICPD_ENET), 5);
	ck_assert_int_eq(exit_code(ICPD_ESTORAGE), 6);
	ck_assert_int_eq(exit_code(ICPD_EACCOUNT), 7);
	ck_assert_int_eq(exit_code(ICPD_ENOTIMPL), 1);
	ck_assert_int_eq(exit_code(ICPD_EPROTO), 1);
	/* an unknown code is an internal error, never success */
	ck_assert_int_eq(exit_code(-12345), 1);
}
END_TEST

START_TEST(test_message_set_once)
{
	int r = error_set(ICPD_ESTORAGE, "cannot open '%s': %s", "/x", "No space left on device");

	ck_assert_int_eq(r, ICPD_ESTORAGE);
	ck_assert_int_eq(error_code(), ICPD_ESTORAGE);
	ck_assert_str_eq(error_message(), "cannot open '/x': No space left on device");
	ck_assert_str_eq(error_hint_text(), "");
	error_hint("free some space and run again");
	ck_assert_str_eq(error_hint_text(), "free some space and run again");
	error_clear();
	ck_assert_str_eq(error_message(), "");
	ck_assert_int_eq(error_code(), 0);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(error_name(ICPD_EAUTH), "auth_required");
	ck_assert_str_eq(error_name(ICPD_OK), "ok");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("error");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_exit_mapping);
	tcase_add_test(tc, test_message_set_once);
	tcase_add_test(tc, test_names);
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
