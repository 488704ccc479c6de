/* fuzz_definition.c: libFuzzer target for the funnel definition parser
 * (lf_definition_parse), whose input is a file people edit by hand.
 * Whatever the bytes, parsing must not crash, leak or overflow, and must
 * give a reason when it refuses; a definition that parses must write a
 * canonical form that parses back to the same canonical form, and must
 * apply to a lead without crashing. */
#include "lf_definition.h"
#include "lf_funnel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run one event of every type that takes a rule through @p def. */
static void apply_all(const lf_definition_t *def)
{
    lf_lead_t lead;
    lf_funnel_out_t out = {0};
    lf_event_t ev;
    char id[8];

    if (lf_lead_init(&lead, "L") != LF_OK)
        abort();
    for (int t = LF_EV_CAPTURED; t <= LF_EV_DISQUALIFIED; t++) {
        memset(&ev, 0, sizeof(ev));
        snprintf(id, sizeof(id), "e%d", t);
        ev.event_id = id;
        ev.lead_id = "L";
        ev.type = (lf_event_type_t)t;
        ev.occurred_at = t;
        if (t == LF_EV_SCORED) {
            ev.u.scored.score = 50;
            ev.u.scored.threshold = 40;
            ev.u.scored.model = "m";
        }
        if (lf_funnel_apply_def(def, &lead, &ev, &out) != LF_OK)
            abort();
        lf_funnel_out_reset(&out);
    }
    lf_funnel_out_free(&out);
    lf_lead_clear(&lead);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512] = "", again[512];
    lf_definition_t *def, *back;
    char *c, *c2;
    lf_buf_t text = {0};

    def = lf_definition_parse((const char *)data, size, errstr, sizeof(errstr));
    if (!def) {
        if (!errstr[0]) {
            fprintf(stderr, "rejected without a reason\n");
            abort();
        }
        return 0;
    }
    if (!(c = lf_definition_canonical(def)))
        abort();
    back = lf_definition_parse(c, strlen(c), again, sizeof(again));
    if (!back || !(c2 = lf_definition_canonical(back)) || strcmp(c, c2)) {
        fprintf(stderr, "the canonical form does not read back: %s\n%s\n",
                back ? "" : again, c);
        abort();
    }
    lf_definition_describe(def, &text);
    apply_all(def);
    lf_buf_free(&text);
    free(c);
    free(c2);
    lf_definition_destroy(back);
    lf_definition_destroy(def);
    return 0;
}
