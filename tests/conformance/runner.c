/*
 * The conformance scenarios (README.md here) run through the C ABI.
 *
 *   runner SCENARIO.scn DATA_DIR
 *
 * Starts a single-member cluster in this process (data in DATA_DIR, a free loopback port),
 * runs the scenario's steps and exits 0 when every result is the one expected; otherwise
 * prints the file, line, step and actual result and exits 1.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accord.h"

/* Bounds of this program: tokens per line, line length, variables, handles. */
#define TOKENS_MAX 96
#define LINE_MAX_BYTES 1024
#define TOKEN_BYTES 256
#define VARS_MAX 64
#define HANDLES_MAX 64

static const char *scenario_path;
static int scenario_line;

static void fail(const char *format, ...) {
    va_list args;
    fprintf(stderr, "%s:%d: ", scenario_path, scenario_line);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\n");
    exit(1);
}

/* ---- results: a list of tokens ---- */

typedef struct {
    char tokens[TOKENS_MAX][TOKEN_BYTES];
    int count;
} result_t;

static void put_token(result_t *r, const char *format, ...) {
    va_list args;
    if (r->count == TOKENS_MAX) fail("too many result tokens");
    va_start(args, format);
    vsnprintf(r->tokens[r->count++], TOKEN_BYTES, format, args);
    va_end(args);
}

static void put_bytes(result_t *r, const uint8_t *data, size_t len) {
    if (len >= TOKEN_BYTES) fail("a value of %zu bytes is too long for this runner", len);
    if (r->count == TOKENS_MAX) fail("too many result tokens");
    if (len) memcpy(r->tokens[r->count], data, len);
    r->tokens[r->count++][len] = '\0';
}

/* ---- variables ---- */

static char var_names[VARS_MAX][64];
static char var_values[VARS_MAX][TOKEN_BYTES];
static int var_count;

static const char *var_get(const char *name) {
    for (int i = 0; i < var_count; i++)
        if (strcmp(var_names[i], name) == 0) return var_values[i];
    return NULL;
}

static void var_set(const char *name, const char *value) {
    if (var_count == VARS_MAX) fail("too many variables");
    snprintf(var_names[var_count], sizeof var_names[0], "%s", name);
    snprintf(var_values[var_count], sizeof var_values[0], "%s", value);
    var_count++;
}

/* Checks an actual result against the expected tokens; NULL when it matches, else why. */
static const char *check(char **expected, int expected_count, const result_t *actual) {
    static char why[512];
    if (expected_count != actual->count) return "a different number of tokens";
    for (int i = 0; i < expected_count; i++) {
        const char *want = expected[i];
        const char *got = actual->tokens[i];
        if (strcmp(want, "*") == 0) continue;
        if (want[0] != '$') {
            if (strcmp(want, got) != 0) {
                snprintf(why, sizeof why, "\"%s\" where \"%s\" was expected", got, want);
                return why;
            }
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%s", want + 1);
        char *above = strstr(name, ">$");
        if (above) {
            *above = '\0';
            const char *floor = var_get(above + 2);
            if (!floor) return "a comparison with an unbound variable";
            char *end;
            long long value = strtoll(got, &end, 10);
            if (*got == '\0' || *end != '\0') return "not an integer";
            if (value <= strtoll(floor, NULL, 10)) {
                snprintf(why, sizeof why, "%s is not above $%s = %s", got, above + 2, floor);
                return why;
            }
        }
        const char *bound = var_get(name);
        if (bound && strcmp(bound, got) != 0) {
            snprintf(why, sizeof why, "\"%s\" is not $%s = \"%s\"", got, name, bound);
            return why;
        }
        if (!bound) var_set(name, got);
    }
    return NULL;
}

/* ---- handles named by the scenario ---- */

typedef enum { H_SESSION, H_LOCK, H_LEADERSHIP, H_MEMBERSHIP, H_CLAIM, H_WATCH } kind_t;

typedef struct {
    char name[64];
    kind_t kind;
    void *ptr;
    bool done; /* released, resigned, left or settled */
    accord_event_list *events; /* a watch's batch being read */
    size_t next_event;
} handle_t;

static handle_t handles[HANDLES_MAX];
static int handle_count;

static handle_t *handle_get(const char *name, kind_t kind) {
    for (int i = 0; i < handle_count; i++)
        if (strcmp(handles[i].name, name) == 0) {
            if (handles[i].kind != kind) fail("%s is another kind of handle", name);
            return &handles[i];
        }
    fail("no handle %s", name);
    return NULL;
}

static handle_t *handle_find(const char *name) {
    for (int i = 0; i < handle_count; i++)
        if (strcmp(handles[i].name, name) == 0) return &handles[i];
    fail("no handle %s", name);
    return NULL;
}

static void handle_add(const char *name, kind_t kind, void *ptr) {
    for (int i = 0; i < handle_count; i++)
        if (strcmp(handles[i].name, name) == 0) {
            handles[i].kind = kind;
            handles[i].ptr = ptr;
            handles[i].done = false;
            return;
        }
    if (handle_count == HANDLES_MAX) fail("too many handles");
    handle_t *h = &handles[handle_count++];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->kind = kind;
    h->ptr = ptr;
    h->done = false;
    h->events = NULL;
    h->next_event = 0;
}

/* ---- the world: one member and a client of it ---- */

static accord_node *node;
static accord_client *client;

static uint32_t ms(const char *text) { return (uint32_t)strtoul(text, NULL, 10); }

static const uint8_t *B(const char *text) { return (const uint8_t *)text; }

static void put_error(result_t *r, accord_result code) {
    const char *name = accord_result_str(code);
    const char *prefix = "ACCORD_ERR_";
    if (strncmp(name, prefix, strlen(prefix)) == 0) name += strlen(prefix);
    char lower[64];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    r->count = 0;
    put_token(r, "error");
    put_token(r, "%s", lower);
}

static const char *state_name(accord_session_state state) {
    return accord_session_state_str(state);
}

/* The index of token `word` in args[from..count), or -1. */
static int find(char **args, int from, int count, const char *word) {
    for (int i = from; i < count; i++)
        if (strcmp(args[i], word) == 0) return i;
    return -1;
}

/* Adds the comparisons of args[from..to) (groups separated by ",") to `txn`. */
static accord_result txn_compares(accord_txn *txn, char **a, int from, int to) {
    for (int i = from; i < to;) {
        int end = find(a, i, to, ",");
        if (end < 0) end = to;
        const char *kind = a[i];
        const char *key = a[i + 1];
        size_t key_len = strlen(key);
        accord_result code;
        if (strcmp(kind, "value") == 0)
            code = accord_txn_compare_value(txn, B(key), key_len, B(a[i + 2]), strlen(a[i + 2]));
        else if (strcmp(kind, "exists") == 0)
            code = accord_txn_compare_exists(txn, B(key), key_len, true);
        else if (strcmp(kind, "absent") == 0)
            code = accord_txn_compare_exists(txn, B(key), key_len, false);
        else if (strcmp(kind, "version") == 0)
            code = accord_txn_compare_version(txn, B(key), key_len, strtoull(a[i + 2], NULL, 10));
        else if (strcmp(kind, "mod") == 0)
            code = accord_txn_compare_mod_revision(txn, B(key), key_len,
                                                   strtoull(a[i + 2], NULL, 10));
        else if (strcmp(kind, "lock") == 0)
            code = accord_txn_compare_lock_token(txn, B(key), key_len,
                                                 strtoull(a[i + 2], NULL, 10));
        else if (strcmp(kind, "leader") == 0)
            code = accord_txn_compare_leader_token(txn, B(key), key_len,
                                                   strtoull(a[i + 2], NULL, 10));
        else {
            fail("txn: unknown comparison %s", kind);
            return ACCORD_ERR_INVALID_ARGUMENT;
        }
        if (code != ACCORD_OK) return code;
        i = end + 1;
    }
    return ACCORD_OK;
}

/* Adds the operations of args[from..to) to the branch `on_success` of `txn`. */
static accord_result txn_ops(accord_txn *txn, bool on_success, char **a, int from, int to) {
    for (int i = from; i < to;) {
        int end = find(a, i, to, ",");
        if (end < 0) end = to;
        accord_result code;
        if (strcmp(a[i], "put") == 0)
            code = accord_txn_put(txn, on_success, B(a[i + 1]), strlen(a[i + 1]), B(a[i + 2]),
                                  strlen(a[i + 2]));
        else if (strcmp(a[i], "delete") == 0)
            code = accord_txn_delete(txn, on_success, B(a[i + 1]), strlen(a[i + 1]));
        else {
            fail("txn: unknown operation %s", a[i]);
            return ACCORD_ERR_INVALID_ARGUMENT;
        }
        if (code != ACCORD_OK) return code;
        i = end + 1;
    }
    return ACCORD_OK;
}

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The lock kinds of the steps that take one. */
static accord_lock_kind lock_kind(const char *op) {
    if (strcmp(op, "rlock") == 0) return ACCORD_LOCK_READ;
    if (strcmp(op, "wlock") == 0) return ACCORD_LOCK_WRITE;
    if (strcmp(op, "semaphore") == 0) return ACCORD_LOCK_SEMAPHORE;
    return ACCORD_LOCK_MUTEX;
}

/* Runs one step; its result goes to `r` (an error result when a call fails). */
static void run(const char *op, char **a, int n, result_t *r) {
    accord_result code = ACCORD_OK;
    r->count = 0;
#define CALL(expr)                     \
    do {                               \
        code = (expr);                 \
        if (code != ACCORD_OK) {       \
            put_error(r, code);        \
            return;                    \
        }                              \
    } while (0)
#define NEED(k) \
    if (n < (k)) fail("%s needs %d arguments", op, (k))

    if (strcmp(op, "put") == 0) {
        NEED(2);
        uint64_t rev;
        CALL(accord_kv_put(client, B(a[0]), strlen(a[0]), B(a[1]), strlen(a[1]), &rev));
        put_token(r, "rev");
        put_token(r, "%llu", (unsigned long long)rev);
    } else if (strcmp(op, "get") == 0) {
        NEED(1);
        bool found;
        accord_buf value;
        uint64_t rev;
        CALL(accord_kv_get(client, B(a[0]), strlen(a[0]), false, &found, &value, &rev));
        if (found) {
            put_token(r, "value");
            put_bytes(r, value.data, value.len);
        } else {
            put_token(r, "absent");
        }
        accord_buf_free(value);
    } else if (strcmp(op, "delete") == 0) {
        NEED(1);
        bool deleted;
        uint64_t rev;
        CALL(accord_kv_delete(client, B(a[0]), strlen(a[0]), &deleted, &rev));
        put_token(r, deleted ? "deleted" : "absent");
    } else if (strcmp(op, "range") == 0) {
        NEED(1);
        accord_kv_list *list;
        CALL(accord_kv_range(client, B(a[0]), strlen(a[0]), 0, &list));
        size_t len = accord_kv_list_len(list);
        put_token(r, "kvs");
        put_token(r, "%zu", len);
        for (size_t i = 0; i < len; i++) {
            const uint8_t *key, *value;
            size_t key_len, value_len;
            code = accord_kv_list_entry(list, i, &key, &key_len, &value, &value_len);
            if (code != ACCORD_OK) {
                accord_kv_list_free(list);
                put_error(r, code);
                return;
            }
            put_bytes(r, key, key_len);
            put_bytes(r, value, value_len);
        }
        accord_kv_list_free(list);
    } else if (strcmp(op, "cas") == 0) {
        NEED(3);
        bool absent = strcmp(a[1], "-") == 0;
        bool swapped;
        uint64_t rev;
        CALL(accord_kv_compare_and_swap(client, B(a[0]), strlen(a[0]), absent ? NULL : B(a[1]),
                                        absent ? 0 : strlen(a[1]), absent, B(a[2]), strlen(a[2]),
                                        &swapped, &rev));
        put_token(r, swapped ? "swapped" : "unchanged");
    } else if (strcmp(op, "txn") == 0) {
        int then = find(a, 0, n, "then");
        int otherwise = find(a, 0, n, "else");
        if (then < 0 || otherwise < then) fail("txn: then ... else ...");
        accord_txn *txn = accord_txn_new();
        bool succeeded = false;
        uint64_t rev;
        code = txn_compares(txn, a, 0, then);
        if (code == ACCORD_OK) code = txn_ops(txn, true, a, then + 1, otherwise);
        if (code == ACCORD_OK) code = txn_ops(txn, false, a, otherwise + 1, n);
        if (code == ACCORD_OK) code = accord_kv_txn(client, txn, &succeeded, &rev);
        accord_txn_free(txn);
        if (code != ACCORD_OK) {
            put_error(r, code);
            return;
        }
        put_token(r, succeeded ? "succeeded" : "failed");
    } else if (strcmp(op, "session") == 0) {
        NEED(2);
        accord_session *session;
        CALL(accord_session_create(client, ms(a[1]), &session));
        handle_add(a[0], H_SESSION, session);
        put_token(r, "ok");
    } else if (strcmp(op, "state") == 0) {
        NEED(1);
        accord_session_state state;
        CALL(accord_session_status(handle_get(a[0], H_SESSION)->ptr, &state));
        put_token(r, "%s", state_name(state));
    } else if (strcmp(op, "await-lost") == 0) {
        NEED(2);
        accord_session *session = handle_get(a[0], H_SESSION)->ptr;
        uint64_t deadline = now_ms() + ms(a[1]);
        accord_session_state state;
        CALL(accord_session_status(session, &state));
        while (state != ACCORD_SESSION_STATE_LOST && now_ms() < deadline)
            CALL(accord_session_wait_change(session, state, (uint32_t)(deadline - now_ms()),
                                            &state));
        put_token(r, "%s", state_name(state));
    } else if (strcmp(op, "close") == 0) {
        NEED(1);
        CALL(accord_session_close(handle_get(a[0], H_SESSION)->ptr));
        put_token(r, "ok");
    } else if (strcmp(op, "lock") == 0 || strcmp(op, "rlock") == 0 ||
               strcmp(op, "wlock") == 0 || strcmp(op, "semaphore") == 0) {
        bool semaphore = strcmp(op, "semaphore") == 0;
        NEED(semaphore ? 5 : 4);
        accord_lock *lock;
        uint32_t permits = semaphore ? (uint32_t)strtoul(a[3], NULL, 10) : 1;
        CALL(accord_lock_acquire(handle_get(a[0], H_SESSION)->ptr, B(a[2]), strlen(a[2]),
                                 lock_kind(op), permits, ms(a[semaphore ? 4 : 3]), false, &lock));
        uint64_t token;
        handle_add(a[1], H_LOCK, lock);
        CALL(accord_lock_token(lock, &token));
        put_token(r, "token");
        put_token(r, "%llu", (unsigned long long)token);
    } else if (strcmp(op, "release") == 0) {
        NEED(1);
        handle_t *h = handle_get(a[0], H_LOCK);
        h->done = true;
        CALL(accord_lock_release(h->ptr));
        put_token(r, "ok");
    } else if (strcmp(op, "campaign") == 0) {
        NEED(5);
        accord_leadership *leadership;
        CALL(accord_election_campaign(handle_get(a[0], H_SESSION)->ptr, B(a[2]), strlen(a[2]),
                                      B(a[3]), strlen(a[3]), ms(a[4]), &leadership));
        handle_add(a[1], H_LEADERSHIP, leadership);
        uint64_t token;
        CALL(accord_leadership_token(leadership, &token));
        put_token(r, "token");
        put_token(r, "%llu", (unsigned long long)token);
    } else if (strcmp(op, "proclaim") == 0) {
        NEED(2);
        CALL(accord_leadership_proclaim(handle_get(a[0], H_LEADERSHIP)->ptr, B(a[1]),
                                        strlen(a[1])));
        put_token(r, "ok");
    } else if (strcmp(op, "resign") == 0) {
        NEED(1);
        handle_t *h = handle_get(a[0], H_LEADERSHIP);
        h->done = true;
        CALL(accord_leadership_resign(h->ptr));
        put_token(r, "ok");
    } else if (strcmp(op, "leader") == 0) {
        NEED(1);
        bool found;
        uint64_t session, token;
        accord_buf value;
        CALL(accord_election_leader(client, B(a[0]), strlen(a[0]), &found, &session, &token,
                                    &value));
        if (found) {
            put_token(r, "leader");
            put_bytes(r, value.data, value.len);
            put_token(r, "token");
            put_token(r, "%llu", (unsigned long long)token);
        } else {
            put_token(r, "none");
        }
        accord_buf_free(value);
    } else if (strcmp(op, "join") == 0) {
        NEED(5);
        accord_membership *membership;
        CALL(accord_group_join(handle_get(a[0], H_SESSION)->ptr, B(a[2]), strlen(a[2]),
                               B(a[3]), strlen(a[3]), B(a[4]), strlen(a[4]), &membership));
        handle_add(a[1], H_MEMBERSHIP, membership);
        put_token(r, "ok");
    } else if (strcmp(op, "leave") == 0) {
        NEED(1);
        handle_t *h = handle_get(a[0], H_MEMBERSHIP);
        h->done = true;
        CALL(accord_membership_leave(h->ptr));
        put_token(r, "ok");
    } else if (strcmp(op, "members") == 0) {
        NEED(1);
        accord_member_list *list;
        CALL(accord_group_members(client, B(a[0]), strlen(a[0]), &list));
        size_t len = accord_member_list_len(list);
        put_token(r, "members");
        put_token(r, "%zu", len);
        for (size_t i = 0; i < len; i++) {
            const uint8_t *id, *metadata;
            size_t id_len, metadata_len;
            uint64_t session;
            code = accord_member_list_entry(list, i, &id, &id_len, &session, &metadata,
                                            &metadata_len);
            if (code != ACCORD_OK) {
                accord_member_list_free(list);
                put_error(r, code);
                return;
            }
            put_bytes(r, id, id_len);
            put_bytes(r, metadata, metadata_len);
        }
        accord_member_list_free(list);
    } else if (strcmp(op, "enqueue") == 0) {
        NEED(2);
        uint64_t item;
        CALL(accord_queue_enqueue(client, B(a[0]), strlen(a[0]), B(a[1]), strlen(a[1]), &item));
        put_token(r, "item");
        put_token(r, "%llu", (unsigned long long)item);
    } else if (strcmp(op, "claim") == 0) {
        NEED(4);
        accord_claim *claim;
        CALL(accord_queue_claim(handle_get(a[0], H_SESSION)->ptr, B(a[2]), strlen(a[2]),
                                ms(a[3]), false, &claim));
        handle_add(a[1], H_CLAIM, claim);
        uint64_t item, token;
        const uint8_t *payload;
        size_t payload_len;
        CALL(accord_claim_item(claim, &item, &token, &payload, &payload_len));
        put_token(r, "item");
        put_token(r, "%llu", (unsigned long long)item);
        put_token(r, "payload");
        put_bytes(r, payload, payload_len);
    } else if (strcmp(op, "ack") == 0 || strcmp(op, "nack") == 0) {
        NEED(1);
        handle_t *h = handle_get(a[0], H_CLAIM);
        h->done = true;
        CALL(accord_claim_settle(h->ptr, strcmp(op, "ack") == 0));
        put_token(r, "ok");
    } else if (strcmp(op, "held") == 0) {
        NEED(1);
        handle_t *h = handle_find(a[0]);
        bool held;
        if (h->kind == H_LOCK)
            held = accord_lock_is_held(h->ptr);
        else if (h->kind == H_LEADERSHIP)
            held = accord_leadership_is_leader(h->ptr);
        else if (h->kind == H_CLAIM)
            held = accord_claim_is_held(h->ptr);
        else {
            fail("%s is not a lock, leadership or claim", a[0]);
            return;
        }
        put_token(r, held ? "true" : "false");
    } else if (strcmp(op, "barrier") == 0) {
        NEED(4);
        CALL(accord_barrier_wait(handle_get(a[0], H_SESSION)->ptr, B(a[1]), strlen(a[1]),
                                 (uint32_t)strtoul(a[2], NULL, 10), ms(a[3])));
        put_token(r, "ok");
    } else if (strcmp(op, "add") == 0) {
        NEED(2);
        int64_t value;
        CALL(accord_counter_add(client, B(a[0]), strlen(a[0]), strtoll(a[1], NULL, 10), &value));
        put_token(r, "value");
        put_token(r, "%lld", (long long)value);
    } else if (strcmp(op, "counter") == 0) {
        NEED(1);
        int64_t value;
        CALL(accord_counter_get(client, B(a[0]), strlen(a[0]), &value));
        put_token(r, "value");
        put_token(r, "%lld", (long long)value);
    } else if (strcmp(op, "watch") == 0) {
        NEED(3);
        accord_watch *watch;
        CALL(accord_watch_open(client, ACCORD_SPACE_KV, B(a[1]), strlen(a[1]),
                               strtoull(a[2], NULL, 10), &watch));
        handle_add(a[0], H_WATCH, watch);
        put_token(r, "ok");
    } else if (strcmp(op, "events") == 0) {
        NEED(3);
        handle_t *h = handle_get(a[0], H_WATCH);
        unsigned long count = strtoul(a[1], NULL, 10);
        uint64_t deadline = now_ms() + ms(a[2]);
        for (unsigned long seen = 0; seen < count;) {
            if (h->events && h->next_event < accord_event_list_len(h->events)) {
                accord_event event;
                CALL(accord_event_list_get(h->events, h->next_event++, &event));
                seen++;
                put_token(r, event.kind == ACCORD_EVENT_PUT ? "put" : "delete");
                put_bytes(r, event.key, event.key_len);
                if (event.kind == ACCORD_EVENT_PUT) put_bytes(r, event.value, event.value_len);
                put_token(r, "%llu", (unsigned long long)event.revision);
                continue;
            }
            accord_event_list_free(h->events);
            h->events = NULL;
            h->next_event = 0;
            uint64_t now = now_ms();
            if (now >= deadline) {
                put_token(r, "timeout");
                break;
            }
            code = accord_watch_next(h->ptr, (uint32_t)(deadline - now), &h->events);
            if (code == ACCORD_ERR_TIMEOUT) continue;
            if (code != ACCORD_OK) {
                put_error(r, code);
                return;
            }
        }
    } else if (strcmp(op, "stop-node") == 0) {
        CALL(accord_node_stop(node));
        put_token(r, "ok");
    } else {
        fail("unknown step %s", op);
    }
#undef CALL
#undef NEED
}

/* Splits `line` in place into tokens (`""` is the empty token). */
static int split(char *line, char **tokens) {
    int count = 0;
    for (char *word = strtok(line, " \t\r\n"); word; word = strtok(NULL, " \t\r\n")) {
        if (count == TOKENS_MAX) fail("too many tokens");
        tokens[count++] = strcmp(word, "\"\"") == 0 ? word + 2 : word;
    }
    return count;
}

static uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    socklen_t len = sizeof address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &len) != 0) {
        fprintf(stderr, "no free loopback port\n");
        exit(1);
    }
    close(fd);
    return ntohs(address.sin_port);
}

static void free_handles(void) {
    for (int i = handle_count - 1; i >= 0; i--) {
        handle_t *h = &handles[i];
        switch (h->kind) {
        case H_SESSION: accord_session_free(h->ptr); break;
        case H_LOCK: accord_lock_free(h->ptr); break;
        case H_LEADERSHIP: accord_leadership_free(h->ptr); break;
        case H_MEMBERSHIP: accord_membership_free(h->ptr); break;
        case H_CLAIM: accord_claim_free(h->ptr); break;
        case H_WATCH:
            accord_event_list_free(h->events);
            accord_watch_free(h->ptr);
            break;
        }
    }
    handle_count = 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SCENARIO.scn DATA_DIR\n", argv[0]);
        return 2;
    }
    scenario_path = argv[1];
    FILE *file = fopen(scenario_path, "r");
    if (!file) {
        perror(scenario_path);
        return 2;
    }
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)free_port());
    accord_result code = accord_node_start(1, listen, "", argv[2], &node);
    if (code != ACCORD_OK) {
        fprintf(stderr, "starting a member: %s: %s\n", accord_result_str(code),
                accord_last_error_message());
        return 1;
    }
    code = accord_node_client(node, &client);
    if (code != ACCORD_OK) {
        fprintf(stderr, "a client: %s\n", accord_result_str(code));
        return 1;
    }
    char line[LINE_MAX_BYTES];
    char original[LINE_MAX_BYTES];
    char *tokens[TOKENS_MAX];
    char substituted[TOKENS_MAX][TOKEN_BYTES];
    char *args[TOKENS_MAX];
    static result_t result;
    int steps = 0;
    while (fgets(line, sizeof line, file)) {
        scenario_line++;
        snprintf(original, sizeof original, "%s", line);
        original[strcspn(original, "\r\n")] = '\0';
        int count = split(line, tokens);
        if (count == 0 || tokens[0][0] == '#') continue;
        int arrow = find(tokens, 0, count, "->");
        if (arrow < 1) fail("no `->` in %s", original);
        int n = 0;
        for (int i = 1; i < arrow; i++) {
            const char *arg = tokens[i];
            if (arg[0] == '$') {
                arg = var_get(arg + 1);
                if (!arg) fail("%s is not bound", tokens[i]);
            }
            snprintf(substituted[n], TOKEN_BYTES, "%s", arg);
            args[n] = substituted[n];
            n++;
        }
        run(tokens[0], args, n, &result);
        const char *why = check(tokens + arrow + 1, count - arrow - 1, &result);
        if (why) {
            fprintf(stderr, "%s:%d: %s\n  got:", scenario_path, scenario_line, original);
            for (int i = 0; i < result.count; i++) fprintf(stderr, " %s", result.tokens[i]);
            fprintf(stderr, "\n  (%s)\n", why);
            return 1;
        }
        steps++;
    }
    fclose(file);
    free_handles();
    accord_client_free(client);
    accord_node_free(node);
    const char *base = strrchr(scenario_path, '/');
    printf("conformance c %s: %d steps ok\n", base ? base + 1 : scenario_path, steps);
    return 0;
}
