/* Exercises every function of the C ABI against three members embedded in this process:
 * normal use, bad input (NULL pointers, zero and huge lengths, closed handles, calls after
 * shutdown, expired timeouts), 8 threads calling at once, and cancellation of a blocked call
 * from another thread. Exits 0 when every check holds; prints the failed check otherwise.
 *
 * usage: abi_test PORT1 PORT2 PORT3 DATA_DIR
 */
#include "accord.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, accord_last_error_message());                      \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

#define OK(call) CHECK((call) == ACCORD_OK)
#define S(text) (const uint8_t *)(text), strlen(text)

static accord_client *shared_client;
static const char *shared_endpoints;

static void *writer(void *arg) {
    long id = (long)arg;
    char key[32];
    for (int i = 0; i < 20; i++) {
        uint64_t revision = 0;
        snprintf(key, sizeof key, "thread/%ld/%d", id, i);
        OK(accord_kv_put(shared_client, S(key), S("v"), &revision));
    }
    return NULL;
}

struct canceller {
    accord_session *session;
};

static void *cancel_later(void *arg) {
    struct canceller *c = arg;
    usleep(300 * 1000);
    OK(accord_session_cancel(c->session));
    return NULL;
}

/* Events delivered to a subscription's callback (on the library's thread). */
static pthread_mutex_t delivered_lock = PTHREAD_MUTEX_INITIALIZER;
static int delivered = 0;
static uint64_t delivered_revision = 0;

static void on_event(void *userdata, accord_result result, const accord_event *event) {
    CHECK(userdata == &delivered);
    if (result != ACCORD_OK || event == NULL)
        return;
    pthread_mutex_lock(&delivered_lock);
    delivered++;
    delivered_revision = event->revision;
    pthread_mutex_unlock(&delivered_lock);
}

static void subscription(accord_client *client) {
    accord_status status;
    OK(accord_client_status(client, &status));
    accord_subscription *subscription = NULL;
    CHECK(accord_watch_subscribe(client, ACCORD_SPACE_KV, S("cb/"), 1, NULL, NULL,
                                 &subscription) == ACCORD_ERR_NULL_ARGUMENT);
    OK(accord_watch_subscribe(client, ACCORD_SPACE_KV, S("cb/"), status.revision + 1, on_event,
                              &delivered, &subscription));
    uint64_t revision = 0;
    OK(accord_kv_put(client, S("cb/1"), S("x"), &revision));
    OK(accord_kv_put(client, S("other"), S("x"), &revision));
    int seen = 0;
    for (int waited = 0; waited < 100 && seen < 1; waited++) {
        usleep(50 * 1000);
        pthread_mutex_lock(&delivered_lock);
        seen = delivered;
        pthread_mutex_unlock(&delivered_lock);
    }
    CHECK(seen == 1);
    accord_subscription_free(subscription);
    accord_subscription_free(NULL);
}

static void bad_input(void) {
    uint64_t revision = 0;
    accord_client *client = NULL;
    CHECK(accord_client_connect(NULL, 1, 0, &client) == ACCORD_ERR_NULL_ARGUMENT);
    CHECK(accord_client_connect("127.0.0.1:1", 1, 0, NULL) == ACCORD_ERR_NULL_ARGUMENT);
    CHECK(accord_client_connect("", 1, 0, &client) == ACCORD_ERR_CONFIG);
    CHECK(client == NULL); /* outputs are written only on success */
    /* TLS files are read at connect: a missing CA is a configuration error, a certificate
       without a CA an invalid argument; a token alone (no access file here) is accepted. */
    CHECK(accord_client_connect_secure("127.0.0.1:1", 1, 0, "/nonexistent/ca.pem", NULL, NULL,
                                       NULL, &client) == ACCORD_ERR_CONFIG);
    CHECK(strstr(accord_last_error_message(), "/nonexistent/ca.pem") != NULL);
    CHECK(accord_client_connect_secure("127.0.0.1:1", 1, 0, NULL, "cert.pem", "key.pem", NULL,
                                       &client) == ACCORD_ERR_INVALID_ARGUMENT);
    CHECK(client == NULL);
    CHECK(accord_client_connect_secure(NULL, 1, 0, NULL, NULL, NULL, NULL, &client) ==
          ACCORD_ERR_NULL_ARGUMENT);
    {
        accord_client *with_token = NULL;
        OK(accord_client_connect_secure(shared_endpoints, 1, 10000, NULL, NULL, NULL,
                                        "a-token-of-sixteen-chars", &with_token));
        OK(accord_kv_put(with_token, S("token/k"), S("v"), &revision));
        OK(accord_client_close(with_token));
        accord_client_free(with_token);
    }
    CHECK(strcmp(accord_result_str(ACCORD_ERR_PERMISSION_DENIED),
                 "ACCORD_ERR_PERMISSION_DENIED") == 0);
    CHECK(accord_kv_put(NULL, S("k"), S("v"), &revision) == ACCORD_ERR_NULL_ARGUMENT);
    CHECK(strlen(accord_last_error_message()) > 0);
    CHECK(accord_kv_put(shared_client, NULL, 3, S("v"), &revision) == ACCORD_ERR_NULL_ARGUMENT);
    CHECK(accord_kv_put(shared_client, S("k"), S("v"), NULL) == ACCORD_ERR_NULL_ARGUMENT);
    /* An empty key, a huge length. */
    CHECK(accord_kv_put(shared_client, NULL, 0, S("v"), &revision) == ACCORD_ERR_INVALID_ARGUMENT);
    CHECK(accord_kv_put(shared_client, (const uint8_t *)"k", SIZE_MAX, S("v"), &revision) ==
          ACCORD_ERR_INVALID_ARGUMENT);
    CHECK(accord_txn_put(NULL, true, S("k"), S("v")) == ACCORD_ERR_NULL_ARGUMENT);
    CHECK(accord_lock_acquire(NULL, S("m"), ACCORD_LOCK_MUTEX, 0, 10, false, NULL) ==
          ACCORD_ERR_NULL_ARGUMENT);
    CHECK(accord_kv_list_len(NULL) == 0);
    CHECK(!accord_lock_is_held(NULL));
    CHECK(strcmp(accord_result_str(ACCORD_ERR_TIMEOUT), "ACCORD_ERR_TIMEOUT") == 0);
    CHECK(strcmp(accord_result_str(424242), "ACCORD_ERR_UNKNOWN") == 0);
    /* _free accepts NULL. */
    accord_client_free(NULL);
    accord_session_free(NULL);
    accord_lock_free(NULL);
    accord_txn_free(NULL);
    accord_kv_list_free(NULL);
    accord_event_list_free(NULL);
    accord_watch_free(NULL);
    accord_node_free(NULL);
    accord_buf empty = {NULL, 0};
    accord_buf_free(empty);
}

static void key_values(accord_client *client) {
    uint64_t revision = 0, revision2 = 0;
    bool found = false, deleted = false, swapped = false, succeeded = false;
    accord_buf value = {NULL, 0};
    OK(accord_kv_put(client, S("greeting"), S("hello"), &revision));
    CHECK(revision > 0);
    OK(accord_kv_get(client, S("greeting"), false, &found, &value, &revision2));
    CHECK(found && value.len == 5 && memcmp(value.data, "hello", 5) == 0);
    CHECK(revision2 >= revision);
    accord_buf_free(value);
    OK(accord_kv_get(client, S("greeting"), true, &found, &value, &revision2));
    accord_buf_free(value);
    OK(accord_kv_get(client, S("absent"), false, &found, &value, &revision2));
    CHECK(!found && value.data == NULL);
    OK(accord_kv_compare_and_swap(client, S("greeting"), S("hello"), false, S("hi"), &swapped,
                                  &revision));
    CHECK(swapped);
    OK(accord_kv_compare_and_swap(client, S("new"), NULL, 0, true, S("x"), &swapped, &revision));
    CHECK(swapped);
    accord_kv_list *list = NULL;
    OK(accord_kv_range(client, S("g"), 0, &list));
    CHECK(accord_kv_list_len(list) == 1 && !accord_kv_list_more(list));
    CHECK(accord_kv_list_revision(list) > 0);
    const uint8_t *k, *v;
    size_t klen, vlen;
    OK(accord_kv_list_entry(list, 0, &k, &klen, &v, &vlen));
    CHECK(klen == 8 && memcmp(k, "greeting", 8) == 0 && vlen == 2);
    CHECK(accord_kv_list_entry(list, 5, &k, &klen, &v, &vlen) == ACCORD_ERR_INVALID_ARGUMENT);
    accord_kv_list_free(list);
    accord_txn *txn = accord_txn_new();
    OK(accord_txn_compare_value(txn, S("greeting"), S("hi")));
    OK(accord_txn_compare_exists(txn, S("new"), true));
    OK(accord_txn_compare_version(txn, S("new"), 1));
    OK(accord_txn_compare_mod_revision(txn, S("absent"), 0));
    OK(accord_txn_put(txn, true, S("txn"), S("yes")));
    OK(accord_txn_delete(txn, true, S("new")));
    OK(accord_txn_put(txn, false, S("txn"), S("no")));
    OK(accord_kv_txn(client, txn, &succeeded, &revision));
    CHECK(succeeded);
    accord_txn_free(txn);
    OK(accord_kv_delete(client, S("txn"), &deleted, &revision));
    CHECK(deleted);
    accord_status status;
    OK(accord_client_status(client, &status));
    CHECK(status.id >= 1 && status.id <= 3 && status.term >= 1);
}

static void coordination(accord_client *client) {
    accord_session *a = NULL, *b = NULL;
    OK(accord_session_create(client, 10000, &a));
    OK(accord_session_create(client, 10000, &b));
    CHECK(accord_session_create(client, 10, &b) == ACCORD_ERR_INVALID_ARGUMENT);
    uint64_t id = 0, token = 0, token2 = 0, revision = 0, session = 0, item = 0;
    accord_session_state state = 0;
    OK(accord_session_id(a, &id));
    CHECK(id > 0);
    OK(accord_session_status(a, &state));
    CHECK(state == ACCORD_SESSION_STATE_HELD);
    OK(accord_session_wait_change(a, ACCORD_SESSION_STATE_HELD, 10, &state));
    CHECK(state == ACCORD_SESSION_STATE_HELD);
    CHECK(strcmp(accord_session_state_str(state), "held") == 0);
    OK(accord_session_keepalive(a, 5000));
    OK(accord_session_keepalive(b, 0));

    /* Mutex: fenced; busy for another session; a blocked wait cancelled from a thread. */
    accord_lock *lock = NULL, *busy = NULL;
    OK(accord_lock_acquire(a, S("m"), ACCORD_LOCK_MUTEX, 0, 5000, false, &lock));
    OK(accord_lock_token(lock, &token));
    CHECK(token > 0 && accord_lock_is_held(lock));
    OK(accord_lock_acquire(b, S("m"), ACCORD_LOCK_MUTEX, 0, 0, true, &busy));
    CHECK(busy == NULL);
    CHECK(accord_lock_acquire(b, S("m"), ACCORD_LOCK_MUTEX, 0, 300, false, &busy) ==
          ACCORD_ERR_TIMEOUT); /* an expired timeout */
    pthread_t thread;
    struct canceller c = {b};
    pthread_create(&thread, NULL, cancel_later, &c);
    CHECK(accord_lock_acquire(b, S("m"), ACCORD_LOCK_MUTEX, 0, 20000, false, &busy) ==
          ACCORD_ERR_CANCELLED);
    pthread_join(thread, NULL);
    accord_txn *fenced = accord_txn_new();
    OK(accord_txn_compare_lock_token(fenced, S("m"), token));
    OK(accord_txn_put(fenced, true, S("guarded"), S("a")));
    bool succeeded = false;
    OK(accord_kv_txn(client, fenced, &succeeded, &revision));
    CHECK(succeeded);
    OK(accord_lock_release(lock));
    CHECK(!accord_lock_is_held(lock));
    CHECK(accord_lock_release(lock) == ACCORD_ERR_SHUTDOWN);
    accord_lock_free(lock);
    OK(accord_kv_txn(client, fenced, &succeeded, &revision));
    CHECK(!succeeded); /* the released holder's fenced write is refused */
    accord_txn_free(fenced);
    OK(accord_lock_acquire(b, S("rw"), ACCORD_LOCK_READ, 0, 2000, false, &lock));
    accord_lock *reader2 = NULL;
    OK(accord_lock_acquire(a, S("rw"), ACCORD_LOCK_READ, 0, 2000, false, &reader2));
    OK(accord_lock_release(lock));
    OK(accord_lock_release(reader2));
    accord_lock_free(lock);
    accord_lock_free(reader2);
    OK(accord_lock_acquire(a, S("rw"), ACCORD_LOCK_WRITE, 0, 2000, false, &lock));
    OK(accord_lock_release(lock));
    accord_lock_free(lock);
    OK(accord_lock_acquire(a, S("sem"), ACCORD_LOCK_SEMAPHORE, 2, 2000, false, &lock));
    OK(accord_lock_release(lock));
    accord_lock_free(lock);
    CHECK(accord_lock_acquire(a, S("x"), 99, 0, 10, false, &lock) == ACCORD_ERR_INVALID_ARGUMENT);

    /* Election. */
    accord_observer *observer = NULL;
    OK(accord_election_observe(client, S("e"), &observer));
    accord_leadership *leadership = NULL;
    OK(accord_election_campaign(a, S("e"), S("alpha"), 5000, &leadership));
    OK(accord_leadership_token(leadership, &token2));
    CHECK(token2 > token && accord_leadership_is_leader(leadership));
    OK(accord_leadership_proclaim(leadership, S("beta")));
    bool found = false, has_leader = false;
    accord_buf value = {NULL, 0};
    OK(accord_election_leader(client, S("e"), &found, &session, &token, &value));
    CHECK(found && session == id && value.len == 4 && memcmp(value.data, "beta", 4) == 0);
    accord_buf_free(value);
    OK(accord_observer_next(observer, 2000, &revision, &has_leader, &session, &token, &value));
    accord_buf_free(value); /* the leader when observing began: none */
    OK(accord_observer_next(observer, 2000, &revision, &has_leader, &session, &token, &value));
    CHECK(has_leader && token == token2);
    accord_buf_free(value);
    accord_txn *led = accord_txn_new();
    OK(accord_txn_compare_leader_token(led, S("e"), token2));
    OK(accord_txn_put(led, true, S("led"), S("by-alpha")));
    OK(accord_kv_txn(client, led, &succeeded, &revision));
    CHECK(succeeded);
    OK(accord_leadership_resign(leadership));
    CHECK(!accord_leadership_is_leader(leadership));
    OK(accord_kv_txn(client, led, &succeeded, &revision));
    CHECK(!succeeded); /* the resigned leader's fenced write is refused */
    accord_txn_free(led);
    accord_leadership_free(leadership);
    accord_observer_free(observer);

    /* Group. */
    accord_membership *membership = NULL;
    OK(accord_group_join(a, S("g"), S("w1"), S("meta"), &membership));
    accord_member_list *members = NULL;
    OK(accord_group_members(client, S("g"), &members));
    CHECK(accord_member_list_len(members) == 1);
    const uint8_t *mid, *meta;
    size_t mid_len, meta_len;
    OK(accord_member_list_entry(members, 0, &mid, &mid_len, &session, &meta, &meta_len));
    CHECK(mid_len == 2 && session == id && meta_len == 4);
    accord_member_list_free(members);
    OK(accord_membership_leave(membership));
    accord_membership_free(membership);

    /* Queue. */
    OK(accord_queue_enqueue(client, S("q"), S("job"), &item));
    accord_claim *claim = NULL;
    OK(accord_queue_claim(a, S("q"), 2000, false, &claim));
    const uint8_t *payload;
    size_t payload_len;
    OK(accord_claim_item(claim, &item, &token, &payload, &payload_len));
    CHECK(payload_len == 3 && memcmp(payload, "job", 3) == 0);
    CHECK(accord_claim_is_held(claim));
    OK(accord_claim_settle(claim, true));
    CHECK(!accord_claim_is_held(claim));
    CHECK(accord_claim_settle(claim, true) == ACCORD_ERR_SHUTDOWN);
    accord_claim_free(claim);
    accord_claim *none = NULL;
    OK(accord_queue_claim(a, S("q"), 0, true, &none));
    CHECK(none == NULL);

    /* Barrier and counter. */
    OK(accord_barrier_wait(a, S("b"), 1, 2000));
    int64_t count = 0;
    OK(accord_counter_add(client, S("c"), 5, &count));
    OK(accord_counter_add(client, S("c"), -2, &count));
    OK(accord_counter_get(client, S("c"), &count));
    CHECK(count == 3);

    /* Watch. */
    accord_status status;
    OK(accord_client_status(client, &status));
    accord_watch *watch = NULL;
    OK(accord_watch_open(client, ACCORD_SPACE_KV, S("w/"), status.revision + 1, &watch));
    OK(accord_kv_put(client, S("w/1"), S("one"), &revision));
    accord_event_list *events = NULL;
    OK(accord_watch_next(watch, 5000, &events));
    CHECK(accord_event_list_len(events) == 1);
    accord_event event;
    OK(accord_event_list_get(events, 0, &event));
    CHECK(event.kind == ACCORD_EVENT_PUT && event.revision == revision && event.key_len == 3);
    CHECK(event.value_len == 3 && memcmp(event.value, "one", 3) == 0);
    accord_event_list_free(events);
    CHECK(accord_watch_next(watch, 50, &events) == ACCORD_ERR_TIMEOUT);
    accord_watch_free(watch);
    CHECK(accord_watch_open(client, 77, S(""), 1, &watch) == ACCORD_ERR_INVALID_ARGUMENT);

    /* Closing a session releases everything; later calls are refused. */
    OK(accord_session_close(a));
    CHECK(accord_session_close(a) == ACCORD_ERR_SHUTDOWN);
    CHECK(accord_session_keepalive(a, 100) == ACCORD_ERR_SHUTDOWN);
    CHECK(accord_lock_acquire(a, S("m"), ACCORD_LOCK_MUTEX, 0, 10, false, &lock) ==
          ACCORD_ERR_SHUTDOWN);
    OK(accord_session_close(b));
    accord_session_free(a);
    accord_session_free(b);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT1 PORT2 PORT3 DATA_DIR\n", argv[0]);
        return 2;
    }
    int ports[3] = {atoi(argv[1]), atoi(argv[2]), atoi(argv[3])};
    const char *data_dir = argv[4];
    CHECK(accord_abi_version() == ACCORD_ABI_VERSION);
    CHECK(strlen(accord_version()) > 0);
    char listen[3][32], peers[3][96], dir[3][512], endpoints[128];
    for (int i = 0; i < 3; i++) {
        snprintf(listen[i], sizeof listen[i], "127.0.0.1:%d", ports[i]);
        snprintf(dir[i], sizeof dir[i], "%s/n%d", data_dir, i + 1);
    }
    for (int i = 0; i < 3; i++) {
        peers[i][0] = 0;
        for (int j = 0; j < 3; j++) {
            if (j == i)
                continue;
            char peer[48];
            snprintf(peer, sizeof peer, "%s%d=127.0.0.1:%d", peers[i][0] ? "," : "", j + 1,
                     ports[j]);
            strcat(peers[i], peer);
        }
    }
    snprintf(endpoints, sizeof endpoints, "%s,%s,%s", listen[0], listen[1], listen[2]);
    accord_node *nodes[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        OK(accord_node_start(i + 1, listen[i], peers[i], dir[i], &nodes[i]));
    }
    accord_node *twice = NULL;
    CHECK(accord_node_start(1, listen[0], peers[0], dir[0], &twice) != ACCORD_OK);
    CHECK(accord_node_start(9, "not an address", "", dir[0], &twice) ==
          ACCORD_ERR_INVALID_ARGUMENT);
    OK(accord_client_connect(endpoints, 1, 10000, &shared_client));
    shared_endpoints = endpoints;
    bad_input();
    key_values(shared_client);
    pthread_t threads[8];
    for (long t = 0; t < 8; t++)
        pthread_create(&threads[t], NULL, writer, (void *)t);
    for (int t = 0; t < 8; t++)
        pthread_join(threads[t], NULL);
    accord_kv_list *list = NULL;
    OK(accord_kv_range(shared_client, S("thread/"), 0, &list));
    CHECK(accord_kv_list_len(list) == 160);
    accord_kv_list_free(list);
    coordination(shared_client);
    subscription(shared_client);
    accord_client *local = NULL;
    OK(accord_node_client(nodes[0], &local));
    uint64_t revision = 0;
    OK(accord_kv_put(local, S("local"), S("1"), &revision));
    OK(accord_client_cancel(local));
    OK(accord_client_close(local));
    CHECK(accord_kv_put(local, S("k"), S("v"), &revision) == ACCORD_ERR_SHUTDOWN);
    accord_client_free(local);
    OK(accord_client_close(shared_client));
    CHECK(accord_kv_put(shared_client, S("k"), S("v"), &revision) == ACCORD_ERR_SHUTDOWN);
    accord_client_free(shared_client);
    for (int i = 0; i < 3; i++) {
        OK(accord_node_stop(nodes[i]));
        CHECK(accord_node_stop(nodes[i]) == ACCORD_ERR_SHUTDOWN);
        accord_client *after = NULL;
        CHECK(accord_node_client(nodes[i], &after) == ACCORD_ERR_SHUTDOWN);
        accord_node_free(nodes[i]);
    }
    if (failures > 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("abi_test: every check passed\n");
    return 0;
}
