/* queue_workers — competing consumers of a work queue, writing to a fenced shared resource.
 *
 * usage: queue_workers ENDPOINTS QUEUE SHARED_FILE COUNT
 *        queue_workers ENDPOINTS QUEUE --produce N
 *
 * Worker mode: opens a session (TTL 5 s) and repeatedly claims the oldest item of QUEUE. For
 * each item it takes the mutex "file-lock", checks that the lock's fencing token is at least
 * the highest token already written to SHARED_FILE (its last line) — the check a fenced
 * resource makes to refuse a deposed holder — appends "<token> <payload>" to the file,
 * releases the mutex and acknowledges the item. It stops once the queue has stayed empty
 * for 2 s, or after COUNT items (0: no limit), and prints "worker <pid>: processed=<n>".
 *
 * Producer mode: enqueues the items "job-0" .. "job-(N-1)" and exits.
 *
 * Exit status: 0 done; 1 a call failed (the message says which); 2 bad arguments.
 */
#define _POSIX_C_SOURCE 200809L

#include "accord.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SESSION_TTL_MS 5000
#define CLAIM_TIMEOUT_MS 2000 /* the queue counts as drained once empty this long */
#define LOCK_TIMEOUT_MS 30000
#define CLIENT_TIMEOUT_MS 10000
#define LOCK_NAME "file-lock"

#define S(text) (const uint8_t *)(text), strlen(text)

static void report(const char *what, accord_result result) {
    fprintf(stderr, "worker %ld: %s failed: %s: %s\n", (long)getpid(), what,
            accord_result_str(result), accord_last_error_message());
}

static int produce(accord_client *client, const char *queue, long count) {
    char payload[64];
    for (long i = 0; i < count; i++) {
        snprintf(payload, sizeof payload, "job-%ld", i);
        uint64_t item = 0;
        /* The client already retries (through leader changes) for up to its timeout. */
        accord_result result = accord_queue_enqueue(client, S(queue), S(payload), &item);
        if (result != ACCORD_OK) {
            report("accord_queue_enqueue", result);
            return 1;
        }
    }
    printf("producer %ld: enqueued %ld items on %s\n", (long)getpid(), count, queue);
    return 0;
}

/* The fencing token on the last line of `path` (0 when the file is missing or empty). The
 * file only ever grows by whole lines written under the mutex, in token order, so its last
 * line holds the highest token written. Returns -1 on an I/O error. */
static int last_token(const char *path, uint64_t *token_out) {
    *token_out = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    char tail[4096];
    off_t start = st.st_size > (off_t)(sizeof tail - 1) ? st.st_size - (off_t)(sizeof tail - 1) : 0;
    ssize_t n = pread(fd, tail, sizeof tail - 1, start);
    close(fd);
    if (n < 0)
        return -1;
    tail[n] = '\0';
    while (n > 0 && tail[n - 1] == '\n')
        tail[--n] = '\0';
    if (n == 0)
        return 0;
    char *line = strrchr(tail, '\n');
    line = line ? line + 1 : tail;
    *token_out = strtoull(line, NULL, 10);
    return 0;
}

static int append_line(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(line);
    ssize_t written = write(fd, line, len); /* one write: the line lands whole */
    int ok = written == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

enum outcome { WRITTEN, FENCED_OUT, FAILED };

/* Writes one item's line to the shared file under the fenced mutex. */
static enum outcome write_fenced(accord_session *session, const char *file,
                                 const uint8_t *payload, size_t payload_len) {
    accord_lock *lock = NULL;
    accord_result result = accord_lock_acquire(session, S(LOCK_NAME), ACCORD_LOCK_MUTEX, 0,
                                               LOCK_TIMEOUT_MS, false, &lock);
    if (result != ACCORD_OK) {
        report("accord_lock_acquire", result);
        return FAILED;
    }
    enum outcome outcome = FAILED;
    uint64_t token = 0, highest = 0;
    if ((result = accord_lock_token(lock, &token)) != ACCORD_OK) {
        report("accord_lock_token", result);
    } else if (last_token(file, &highest) != 0) {
        fprintf(stderr, "worker %ld: cannot read %s: %s\n", (long)getpid(), file, strerror(errno));
    } else if (token < highest || !accord_lock_is_held(lock)) {
        /* A newer holder has written (or our session may have expired): this holder is
         * deposed and must not touch the resource. */
        fprintf(stderr, "worker %ld: fenced out: token %" PRIu64 " < highest written %" PRIu64
                        " (or lock no longer held); not writing\n",
                (long)getpid(), token, highest);
        outcome = FENCED_OUT;
    } else {
        char line[512];
        int len = snprintf(line, sizeof line, "%" PRIu64 " %.*s\n", token, (int)payload_len,
                           (const char *)payload);
        if (len < 0 || (size_t)len >= sizeof line) {
            fprintf(stderr, "worker %ld: payload too long\n", (long)getpid());
        } else if (append_line(file, line) != 0) {
            fprintf(stderr, "worker %ld: cannot append to %s: %s\n", (long)getpid(), file,
                    strerror(errno));
        } else {
            outcome = WRITTEN;
        }
    }
    if ((result = accord_lock_release(lock)) != ACCORD_OK)
        report("accord_lock_release", result); /* the session's end releases it anyway */
    accord_lock_free(lock);
    return outcome;
}

static int work(accord_client *client, const char *queue, const char *file, long limit) {
    accord_session *session = NULL;
    accord_result result = accord_session_create(client, SESSION_TTL_MS, &session);
    if (result != ACCORD_OK) {
        report("accord_session_create", result);
        return 1;
    }
    long processed = 0, fenced_out = 0;
    int status = 0;
    while (limit == 0 || processed < limit) {
        accord_claim *claim = NULL;
        result = accord_queue_claim(session, S(queue), CLAIM_TIMEOUT_MS, false, &claim);
        if (result == ACCORD_ERR_TIMEOUT)
            break; /* empty for CLAIM_TIMEOUT_MS: done */
        if (result != ACCORD_OK) {
            report("accord_queue_claim", result);
            status = 1;
            break;
        }
        uint64_t item = 0, claim_token = 0;
        const uint8_t *payload = NULL;
        size_t payload_len = 0;
        if ((result = accord_claim_item(claim, &item, &claim_token, &payload, &payload_len)) !=
            ACCORD_OK) {
            report("accord_claim_item", result);
            accord_claim_settle(claim, false);
            accord_claim_free(claim);
            status = 1;
            break;
        }
        enum outcome outcome = write_fenced(session, file, payload, payload_len);
        /* Written: acknowledge (the item leaves the queue). Otherwise give it back for
         * another worker. */
        if ((result = accord_claim_settle(claim, outcome == WRITTEN)) != ACCORD_OK) {
            report("accord_claim_settle", result);
            status = 1;
        }
        accord_claim_free(claim);
        if (outcome == WRITTEN) {
            processed++;
        } else if (outcome == FENCED_OUT) {
            fenced_out++;
        } else {
            status = 1;
            break;
        }
        if (status != 0)
            break;
    }
    accord_session_state state = ACCORD_SESSION_STATE_LOST;
    if (accord_session_status(session, &state) == ACCORD_OK && state != ACCORD_SESSION_STATE_LOST)
        accord_session_close(session); /* releases anything still held, now */
    accord_session_free(session);
    printf("worker %ld: processed=%ld\n", (long)getpid(), processed);
    if (fenced_out > 0)
        printf("worker %ld: fenced_out=%ld\n", (long)getpid(), fenced_out);
    return status;
}

static int parse_count(const char *text, long *out) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 0)
        return -1;
    *out = value;
    return 0;
}

int main(int argc, char **argv) {
    long count = 0;
    int producing = argc == 5 && strcmp(argv[3], "--produce") == 0;
    if (argc != 5 || parse_count(argv[4], &count) != 0) {
        fprintf(stderr,
                "usage: %s ENDPOINTS QUEUE SHARED_FILE COUNT   (COUNT: most items to take, 0: all)\n"
                "       %s ENDPOINTS QUEUE --produce N\n",
                argv[0], argv[0]);
        return 2;
    }
    if (accord_abi_version() != ACCORD_ABI_VERSION) {
        fprintf(stderr, "libaccord ABI %u, this program was built for %u\n",
                accord_abi_version(), ACCORD_ABI_VERSION);
        return 1;
    }
    accord_client *client = NULL;
    accord_result result = accord_client_connect(argv[1], 1, CLIENT_TIMEOUT_MS, &client);
    if (result != ACCORD_OK) {
        report("accord_client_connect", result);
        return 1;
    }
    int status = producing ? produce(client, argv[2], count) : work(client, argv[2], argv[3], count);
    accord_client_close(client);
    accord_client_free(client);
    return status;
}
