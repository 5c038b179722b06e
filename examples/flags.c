/*
 * flags: feature flags with a snapshot.
 *
 * Evaluates every flag of one user with one /flags request, lists them
 * without capturing $feature_flag_called (posthog_flags_peek), decides on
 * one flag (posthog_flags_is_enabled: that read is the exposure, captured
 * once), and captures an event carrying the values the code branched on.
 *
 *   POSTHOG_API_KEY=phc_... ./flags user-1 new-checkout
 *   ./flags user-1 new-checkout http://127.0.0.1:8000     a local server
 *
 * With POSTHOG_SECRET_KEY=phs_... the flags are evaluated locally from
 * definitions the client loads in the background.
 *
 * Exit status: 0 when the calls succeeded (an unknown flag is not an error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <posthog/posthog.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DISTINCT_ID FLAG_KEY [HOST]\n", argv[0]);
        return 2;
    }
    const char *user = argv[1], *flag = argv[2];
    posthog_options_t *o = posthog_options_new();
    char why[256];
    if (!o) return 1;
    if (argc > 3 && posthog_options_set_ex(o, "host", argv[3], why, sizeof why) != POSTHOG_OK) {
        fprintf(stderr, "%s\n", why);
        posthog_options_free(o);
        return 1;
    }
    const char *secret = getenv("POSTHOG_SECRET_KEY");
    if (secret && *secret &&
        posthog_options_set_ex(o, "secret_key", secret, why, sizeof why) != POSTHOG_OK) {
        fprintf(stderr, "%s\n", why);
        posthog_options_free(o);
        return 1;
    }
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "cannot create the client: %s\n", err);
        return 1;
    }
    if (secret && *secret) posthog_wait_for_flag_definitions(c, 5000);

    posthog_flags_options_t fo = {.person_properties_json = "{\"plan\": \"pro\"}"};
    posthog_flags_t *flags = NULL;
    posthog_status_t st = posthog_evaluate_flags(c, user, &fo, &flags);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "evaluate_flags: %s\n", posthog_strerror(st));
        posthog_client_free(c);
        return 1;
    }
    char ferr[160];
    if (*posthog_flags_error(flags, ferr, sizeof ferr))
        fprintf(stderr, "flags could not all be evaluated: %s\n", ferr);

    /* list them: no $feature_flag_called for these reads; their values go
     * on the event as $feature/<key> */
    posthog_props_t *props = posthog_props_new();
    if (!props) {
        posthog_flags_free(flags);
        posthog_client_free(c);
        return 1;
    }
    for (size_t i = 0; i < posthog_flags_count(flags); i++) {
        posthog_flag_t f;
        if (!posthog_flags_peek(flags, posthog_flags_key(flags, i), &f)) continue;
        printf("%-30s %-8s %s%s\n", f.key, f.variant ? f.variant : f.enabled ? "true" : "false",
               f.payload_json ? "payload " : "", f.payload_json ? f.payload_json : "");
        char name[256];
        snprintf(name, sizeof name, "$feature/%s", f.key);
        if (f.variant) posthog_props_set_string(props, name, f.variant);
        else posthog_props_set_bool(props, name, f.enabled);
    }

    /* decide: this read is the exposure */
    int on = posthog_flags_is_enabled(flags, flag, 0);
    printf("%s is %s for %s\n", flag, on ? "on" : "off", user);
    st = posthog_capture(c, user, on ? "checkout_new" : "checkout_old", props);
    if (st != POSTHOG_OK) fprintf(stderr, "capture: %s\n", posthog_strerror(st));
    posthog_props_free(props);

    posthog_flags_free(flags);
    posthog_status_t fl = posthog_flush(c, 10000);
    posthog_client_free(c);
    return st == POSTHOG_OK && fl == POSTHOG_OK ? 0 : 1;
}
