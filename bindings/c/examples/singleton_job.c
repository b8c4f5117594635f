/* singleton_job — a job that must run in one process at a time, however many are started.
 *
 * usage: singleton_job ENDPOINTS ELECTION NAME OUTPUT_FILE
 *
 * Opens a session (TTL 2 s) and campaigns in ELECTION with the value NAME. Once elected it
 * appends "<NAME> <token> elected" to OUTPUT_FILE, then works: every 100 ms, while
 * accord_leadership_is_leader() says it surely still leads, it appends "<NAME> <token> tick".
 * If this process dies, its session expires after the TTL and the next candidate is elected
 * with a larger fencing token.
 *
 * Exit status: 0 leadership lost, or SIGINT/SIGTERM received (it then resigns, so a standby
 * takes over at once); 1 a call failed; 2 bad arguments. Otherwise it runs until killed.
 */
#define _POSIX_C_SOURCE 200809L

#include "accord.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SESSION_TTL_MS 2000
#define CAMPAIGN_TIMEOUT_MS 3600000 /* an hour; campaigning starts again after it */
#define CLIENT_TIMEOUT_MS 10000
#define TICK_MS 100

#define S(text) (const uint8_t *)(text), strlen(text)

static const char *name = "";
static pthread_mutex_t stop_mutex = PTHREAD_MUTEX_INITIALIZER;
static int stop_requested = 0; /* set by the signal thread; read through stopping() */

static int stopping(void) {
    pthread_mutex_lock(&stop_mutex);
    int stop = stop_requested;
    pthread_mutex_unlock(&stop_mutex);
    return stop;
}

static void report(const char *what, accord_result result) {
    fprintf(stderr, "singleton %s (pid %ld): %s failed: %s: %s\n", name, (long)getpid(), what,
            accord_result_str(result), accord_last_error_message());
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int append_line(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        fprintf(stderr, "singleton %s: cannot open %s: %s\n", name, path, strerror(errno));
        return -1;
    }
    size_t len = strlen(line);
    ssize_t written = write(fd, line, len);
    close(fd);
    if (written != (ssize_t)len) {
        fprintf(stderr, "singleton %s: cannot append to %s\n", name, path);
        return -1;
    }
    return 0;
}

/* SIGINT and SIGTERM are blocked in every thread (the library's included) and taken here: the
 * handler-free way to interrupt a blocking call, since accord_session_cancel may be called
 * from any thread but not from a signal handler. */
static void *signal_thread(void *arg) {
    accord_session *session = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
        pthread_mutex_lock(&stop_mutex);
        stop_requested = 1;
        pthread_mutex_unlock(&stop_mutex);
        accord_session_cancel(session); /* wakes a campaign in progress */
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ENDPOINTS ELECTION NAME OUTPUT_FILE\n", argv[0]);
        return 2;
    }
    const char *endpoints = argv[1], *election = argv[2], *output = argv[4];
    name = argv[3];
    if (accord_abi_version() != ACCORD_ABI_VERSION) {
        fprintf(stderr, "libaccord ABI %u, this program was built for %u\n",
                accord_abi_version(), ACCORD_ABI_VERSION);
        return 1;
    }
    /* Block the signals before any thread exists, so that threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    accord_client *client = NULL;
    accord_session *session = NULL;
    accord_leadership *leadership = NULL;
    pthread_t signals;
    int signals_started = 0, status = 1;
    accord_result result = accord_client_connect(endpoints, 1, CLIENT_TIMEOUT_MS, &client);
    if (result != ACCORD_OK) {
        report("accord_client_connect", result);
        goto done;
    }
    if ((result = accord_session_create(client, SESSION_TTL_MS, &session)) != ACCORD_OK) {
        report("accord_session_create", result);
        goto done;
    }
    if (pthread_create(&signals, NULL, signal_thread, session) != 0) {
        fprintf(stderr, "singleton %s: cannot start a thread\n", name);
        goto done;
    }
    signals_started = 1;

    printf("singleton %s (pid %ld): campaigning in %s\n", name, (long)getpid(), election);
    fflush(stdout);
    while (!stopping()) {
        result = accord_election_campaign(session, S(election), S(name), CAMPAIGN_TIMEOUT_MS,
                                          &leadership);
        if (result == ACCORD_OK)
            break;
        if (result == ACCORD_ERR_TIMEOUT)
            continue; /* still not elected: stand again */
        if (result == ACCORD_ERR_CANCELLED && stopping()) {
            status = 0;
            goto done;
        }
        report("accord_election_campaign", result);
        goto done;
    }
    if (stopping()) { /* elected just as the signal came: step down at once */
        status = 0;
        goto done;
    }

    uint64_t token = 0;
    if ((result = accord_leadership_token(leadership, &token)) != ACCORD_OK) {
        report("accord_leadership_token", result);
        goto done;
    }
    char line[256];
    snprintf(line, sizeof line, "%s %" PRIu64 " elected\n", name, token);
    if (append_line(output, line) != 0)
        goto done;
    printf("singleton %s: elected with token %" PRIu64 "\n", name, token);
    fflush(stdout);

    snprintf(line, sizeof line, "%s %" PRIu64 " tick\n", name, token);
    while (!stopping()) {
        sleep_ms(TICK_MS);
        /* Check right before each piece of work: once this is false another process may
         * already lead, and nothing more may be written under this token. */
        if (!accord_leadership_is_leader(leadership)) {
            printf("singleton %s: lost leadership (token %" PRIu64 ")\n", name, token);
            status = 0;
            goto done;
        }
        if (append_line(output, line) != 0)
            goto done;
    }
    status = 0;

done:
    if (leadership != NULL) {
        if (stopping() && accord_leadership_is_leader(leadership)) {
            if ((result = accord_leadership_resign(leadership)) == ACCORD_OK)
                printf("singleton %s: resigned\n", name);
            else
                report("accord_leadership_resign", result);
        }
        accord_leadership_free(leadership);
    }
    accord_session_state state = ACCORD_SESSION_STATE_LOST;
    if (session != NULL && accord_session_status(session, &state) == ACCORD_OK &&
        state != ACCORD_SESSION_STATE_LOST)
        /* Ends a candidacy or leadership now, not after the TTL. (A lost session is not
         * closed: the cluster may be unreachable, and the call would wait its timeout.) */
        accord_session_close(session);
    if (signals_started) {
        if (!stopping())
            pthread_kill(signals, SIGTERM); /* ends the signal thread, which uses the session */
        pthread_join(signals, NULL);
    }
    accord_session_free(session);
    if (client != NULL)
        accord_client_close(client);
    accord_client_free(client);
    fflush(stdout);
    return status;
}
