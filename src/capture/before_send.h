/*
 * before_send: the user's callback between capture and the queue.
 * Runs on the capturing thread, no lock held. See posthog.h for the
 * callback's contract (verdict + library-owned posthog_replacement_t).
 */
#ifndef POSTHOG_BEFORE_SEND_H
#define POSTHOG_BEFORE_SEND_H

#include "client.h"
#include "event.h"

/*
 * Calls before_send with the event of *img. KEEP (or an unknown verdict,
 * logged): POSTHOG_OK, *img unchanged. DROP: counted as before_send,
 * POSTHOG_E_DROPPED. REPLACE: *img is freed and replaced by the record of
 * the replacement (POSTHOG_OK), or the event is dropped as invalid or
 * too_large with the replacement's refusal message and that status.
 * `event` and `did` (borrowed) name the event in drop reports.
 */
posthog_status_t posthog__before_send_apply(posthog_client_t *c, ph_rec_t **img,
                                            const char *event, const char *did);

#endif
