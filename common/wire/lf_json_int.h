/* lf_json_int.h: the JSON mapping's entry points for tests and the
 * fuzzer: the jansson path alone, and a count that shows which lines the
 * single-pass reader took. Not installed; programs use lf_json.h. */
#ifndef LF_JSON_INT_H
#define LF_JSON_INT_H

#include "lf_json.h"

#include <stdint.h>

/**
 * lf_json_parse_event() without its fast path: every line through jansson.
 * For tests that check the two paths build the same events; the same
 * contract as lf_json_parse_event().
 */
lf_err_t lf_json_parse_event_jansson(const char *text, size_t len,
                                     lf_event_t *ev, char *errstr,
                                     size_t errstr_size);

/**
 * Lines lf_json_parse_event() read with its single-pass reader on the
 * calling thread (thread-local: no cost shared between threads). A line
 * that reader declines goes to jansson and is not counted, so a test can
 * tell that plain lines do take the fast path.
 */
extern _Thread_local uint64_t lf_json_fast_lines;

#endif
