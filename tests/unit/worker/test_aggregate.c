/*
 * tests/unit/worker/test_aggregate.c — prefixing and un-prefixing names,
 * merging list pages of several backends (order, prefixes, URIs with "+",
 * collisions without prefixes: first backend wins), upstream cursors handed
 * back for draining, and results that are not lists.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "worker/aggregate.h"

static const char *const names[] = {"a", "a__b", "zed"};

Test(names, prefix_and_owner)
{
    struct mb_buf b = {0};
    cr_assert_eq(mb_names_prefix(&b, "demo", "__", "echo", 4), 0);
    cr_expect_str_eq(mb_buf_cstr(&b), "demo__echo");
    const char *rest = NULL;
    const char *s = "zed__tool";
    cr_expect_eq(mb_names_owner(names, 3, "__", s, strlen(s), &rest), 2);
    cr_expect_str_eq(rest, "tool");
    s = "a__b__x"; /* nested names: the longest backend name wins */
    cr_expect_eq(mb_names_owner(names, 3, "__", s, strlen(s), &rest), 1);
    cr_expect_str_eq(rest, "x");
    s = "a__x";
    cr_expect_eq(mb_names_owner(names, 3, "__", s, strlen(s), &rest), 0);
    cr_expect_str_eq(rest, "x");
    s = "nobody__x";
    cr_expect_eq(mb_names_owner(names, 3, "__", s, strlen(s), &rest), -1);
    s = "zed";
    cr_expect_eq(mb_names_owner(names, 3, "__", s, strlen(s), &rest), -1, "no separator");
    s = "zed+test://x";
    cr_expect_eq(mb_names_owner(names, 3, MB_URI_SEPARATOR, s, strlen(s), &rest), 2);
    cr_expect_str_eq(rest, "test://x");
    mb_buf_free(&b);
}

Test(merge, pages_and_backends_in_order_with_prefixes)
{
    static const char *const two[] = {"one", "two"};
    struct mb_merge m;
    char *cursor = NULL;
    cr_assert_eq(mb_merge_init(&m, MB_LIST_TOOLS, 2), 0);
    const char *p2 = "{\"tools\":[{\"name\":\"x\",\"inputSchema\":{}}]}";
    cr_assert_eq(mb_merge_page(&m, 1, p2, strlen(p2), &cursor), 0);
    cr_expect_null(cursor);
    const char *p1 = "{\"tools\":[{\"name\":\"e\"}],\"nextCursor\":\"c2\"}";
    cr_assert_eq(mb_merge_page(&m, 0, p1, strlen(p1), &cursor), 0);
    cr_assert_str_eq(cursor, "c2", "the upstream cursor is handed back to drain");
    free(cursor);
    const char *p1b = "{\"tools\":[{\"name\":\"f\"}]}";
    cr_assert_eq(mb_merge_page(&m, 0, p1b, strlen(p1b), &cursor), 0);
    cr_expect_null(cursor);
    struct mb_buf out = {0};
    cJSON *learned[2] = {0};
    cr_assert_eq(mb_merge_finish(&m, two, "__", true, &out, learned), 0);
    cr_expect_str_eq(mb_buf_cstr(&out),
                     "{\"tools\":[{\"name\":\"one__e\"},{\"name\":\"one__f\"},{\"name\":\"two__x\","
                     "\"inputSchema\":{}}]}");
    cr_expect_eq(cJSON_GetArraySize(learned[0]), 2);
    cr_expect_str_eq(cJSON_GetArrayItem(learned[1], 0)->valuestring, "x", "learned unprefixed");
    cJSON_Delete(learned[0]);
    cJSON_Delete(learned[1]);
    mb_merge_free(&m);
    mb_buf_free(&out);
}

Test(merge, resources_get_plus_and_never_keeps_first)
{
    static const char *const two[] = {"one", "two"};
    struct mb_merge m;
    char *cursor = NULL;
    struct mb_buf out = {0};
    const char *r = "{\"resources\":[{\"uri\":\"test://h\",\"name\":\"h\"}]}";

    cr_assert_eq(mb_merge_init(&m, MB_LIST_RESOURCES, 2), 0);
    cr_assert_eq(mb_merge_page(&m, 0, r, strlen(r), &cursor), 0);
    cr_assert_eq(mb_merge_page(&m, 1, r, strlen(r), &cursor), 0);
    cr_assert_eq(mb_merge_finish(&m, two, "__", true, &out, NULL), 0);
    cr_expect_str_eq(mb_buf_cstr(&out), "{\"resources\":[{\"uri\":\"one+test://h\",\"name\":\"h\"},"
                                        "{\"uri\":\"two+test://h\",\"name\":\"h\"}]}");
    mb_merge_free(&m);

    mb_buf_reset(&out);
    cr_assert_eq(mb_merge_init(&m, MB_LIST_RESOURCES, 2), 0);
    cr_assert_eq(mb_merge_page(&m, 0, r, strlen(r), &cursor), 0);
    cr_assert_eq(mb_merge_page(&m, 1, r, strlen(r), &cursor), 0);
    cr_assert_eq(mb_merge_finish(&m, two, "__", false, &out, NULL), 0);
    cr_expect_str_eq(mb_buf_cstr(&out), "{\"resources\":[{\"uri\":\"test://h\",\"name\":\"h\"}]}",
                     "without prefixes the first backend wins");
    mb_merge_free(&m);
    mb_buf_free(&out);
}

Test(merge, dropped_backend_and_bad_pages)
{
    static const char *const two[] = {"one", "two"};
    struct mb_merge m;
    char *cursor = NULL;
    struct mb_buf out = {0};
    cr_assert_eq(mb_merge_init(&m, MB_LIST_PROMPTS, 2), 0);
    const char *ok = "{\"prompts\":[{\"name\":\"g\"}]}";
    cr_assert_eq(mb_merge_page(&m, 0, ok, strlen(ok), &cursor), 0);
    cr_assert_eq(mb_merge_page(&m, 1, ok, strlen(ok), &cursor), 0);
    mb_merge_drop(&m, 0);
    const char *bad[] = {"[]", "{\"tools\":[]}", "{\"prompts\":{}}",
                         "{\"prompts\":[],\"nextCursor\":5}", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(mb_merge_page(&m, 1, bad[i], strlen(bad[i]), &cursor), MB_ERR, "%s", bad[i]);
    cr_assert_eq(mb_merge_finish(&m, two, "__", true, &out, NULL), 0);
    cr_expect_str_eq(mb_buf_cstr(&out), "{\"prompts\":[{\"name\":\"two__g\"}]}");
    mb_merge_free(&m);
    mb_buf_free(&out);
}
