// Exercises the C++17 wrapper (include/accord.hpp) against three members embedded in this
// process: key-values and transactions (fenced by a lock token), sessions, std::lock_guard over
// accord::mutex (across threads and sessions), read-write locks and semaphores, elections with
// observers, groups, queues, barriers, counters, watches, the mapping of result codes to
// exception classes, and moved-from handles. Exits 0 when every check holds; prints each failed
// check and exits 1 otherwise.
//
// usage: cpp_test PORT1 PORT2 PORT3 DATA_DIR

#include "accord.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace {

std::atomic<int> failures{0};
std::mutex print_mutex;

void fail(const char* file, int line, const char* what, const std::string& detail) {
    std::lock_guard<std::mutex> guard(print_mutex);
    std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, what,
                 detail.empty() ? "" : ": ", detail.c_str());
    failures++;
}

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fail(__FILE__, __LINE__, #cond, "");                                           \
        }                                                                                  \
    } while (0)

// Runs `f`, expecting exactly exception class E (not a subclass of it, not a base) with `code`.
template <typename E, typename F>
void expect_throw(const char* file, int line, const char* what, accord_result code, F&& f) {
    try {
        f();
    } catch (const accord::error& e) {
        if (typeid(e) != typeid(E)) {
            fail(file, line, what,
                 std::string("threw the wrong class for ") + e.code_name() + ": " + e.what());
        } else if (e.code() != code) {
            fail(file, line, what, std::string("threw code ") + e.code_name() + ": " + e.what());
        } else if (std::string(e.what()).empty()) {
            fail(file, line, what, "threw without a message");
        }
        return;
    } catch (const std::exception& e) {
        fail(file, line, what, std::string("threw a non-accord exception: ") + e.what());
        return;
    }
    fail(file, line, what, "did not throw");
}

#define CHECK_THROWS(E, code, expr)                                                        \
    expect_throw<E>(__FILE__, __LINE__, #expr, code, [&] { (void)(expr); })

// A section: an exception escaping it is a failure (and the next section still runs).
template <typename F>
void section(const char* name, F&& body) {
    try {
        body();
    } catch (const accord::error& e) {
        fail(__FILE__, __LINE__, name,
             std::string("unexpected ") + e.code_name() + ": " + e.what());
    } catch (const std::exception& e) {
        fail(__FILE__, __LINE__, name, std::string("unexpected exception: ") + e.what());
    }
}

// ------------------------------------------------------------------------------------------
// Compile-time properties of the wrapper.

template <typename T>
constexpr bool move_only_handle =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
    std::is_nothrow_destructible_v<T> && std::is_nothrow_default_constructible_v<T>;

static_assert(move_only_handle<accord::node>);
static_assert(move_only_handle<accord::client>);
static_assert(move_only_handle<accord::session>);
static_assert(move_only_handle<accord::lock>);
static_assert(move_only_handle<accord::leadership>);
static_assert(move_only_handle<accord::membership>);
static_assert(move_only_handle<accord::claim>);
static_assert(move_only_handle<accord::observer>);
static_assert(move_only_handle<accord::watch>);
static_assert(!std::is_copy_constructible_v<accord::txn> &&
              std::is_nothrow_move_constructible_v<accord::txn> &&
              std::is_nothrow_move_assignable_v<accord::txn>);
static_assert(!std::is_copy_constructible_v<accord::mutex> &&
              !std::is_move_constructible_v<accord::mutex>);
// BasicLockable / Lockable: lock(), unlock() (which may not throw), try_lock() -> bool.
static_assert(std::is_same_v<decltype(std::declval<accord::mutex&>().lock()), void>);
static_assert(noexcept(std::declval<accord::mutex&>().unlock()));
static_assert(std::is_same_v<decltype(std::declval<accord::mutex&>().try_lock()), bool>);
static_assert(noexcept(std::declval<const accord::mutex&>().token()));
static_assert(noexcept(std::declval<const accord::lock&>().token()));
static_assert(noexcept(std::declval<const accord::lock&>().is_held()));
static_assert(noexcept(std::declval<const accord::leadership&>().is_leader()));
static_assert(noexcept(std::declval<const accord::claim&>().payload()));
static_assert(noexcept(std::declval<const accord::session&>().id()));
static_assert(noexcept(std::declval<const accord::error&>().code()));
static_assert(std::is_base_of_v<std::runtime_error, accord::error>);
static_assert(std::is_base_of_v<accord::error, accord::timeout_error>);
static_assert(std::is_base_of_v<accord::error, accord::cancelled_error>);
static_assert(std::is_base_of_v<accord::error, accord::shutdown_error>);
static_assert(std::is_base_of_v<accord::error, accord::session_lost_error>);
static_assert(std::is_base_of_v<accord::error, accord::rejected_error>);
static_assert(std::is_base_of_v<accord::error, accord::unavailable_error>);
static_assert(std::is_base_of_v<accord::error, accord::invalid_argument_error>);
static_assert(std::is_base_of_v<accord::error, accord::compacted_error>);

// ------------------------------------------------------------------------------------------

void error_mapping() {
    accord::check(ACCORD_OK);  // does not throw
    CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, accord::check(ACCORD_ERR_TIMEOUT));
    CHECK_THROWS(accord::cancelled_error, ACCORD_ERR_CANCELLED,
                 accord::check(ACCORD_ERR_CANCELLED));
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, accord::check(ACCORD_ERR_SHUTDOWN));
    CHECK_THROWS(accord::session_lost_error, ACCORD_ERR_SESSION_LOST,
                 accord::check(ACCORD_ERR_SESSION_LOST));
    CHECK_THROWS(accord::rejected_error, ACCORD_ERR_REJECTED, accord::check(ACCORD_ERR_REJECTED));
    CHECK_THROWS(accord::unavailable_error, ACCORD_ERR_UNAVAILABLE,
                 accord::check(ACCORD_ERR_UNAVAILABLE));
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 accord::check(ACCORD_ERR_INVALID_ARGUMENT));
    CHECK_THROWS(accord::compacted_error, ACCORD_ERR_COMPACTED,
                 accord::check(ACCORD_ERR_COMPACTED));
    CHECK_THROWS(accord::permission_denied_error, ACCORD_ERR_PERMISSION_DENIED,
                 accord::check(ACCORD_ERR_PERMISSION_DENIED));
    // The others are plain accord::error.
    const accord_result plain[] = {ACCORD_ERR_NULL_ARGUMENT, ACCORD_ERR_IO,
                                   ACCORD_ERR_CORRUPTION,    ACCORD_ERR_LOCKED,
                                   ACCORD_ERR_CONFIG,        ACCORD_ERR_PROTOCOL,
                                   ACCORD_ERR_PANIC,         424242};
    for (accord_result code : plain) {
        CHECK_THROWS(accord::error, code, accord::check(code));
    }
    try {
        accord::check(424242);
    } catch (const accord::error& e) {
        CHECK(std::string(e.code_name()) == "ACCORD_ERR_UNKNOWN");
    }
}

void bad_input(const std::string& data_dir) {
    // A malformed configuration is ACCORD_ERR_CONFIG: a plain accord::error.
    CHECK_THROWS(accord::error, ACCORD_ERR_CONFIG, accord::client::connect(""));
    // A NUL inside a C string is refused by the wrapper rather than silently cut.
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 accord::client::connect(std::string("127.0.0.1:1\0,x", 14)));
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 accord::node::start(9, "not an address", "", data_dir + "/bad"));
    // TLS files are read at connect: a missing CA is a configuration error.
    accord::security missing;
    missing.tls_ca_file = data_dir + "/no-such-ca.pem";
    CHECK_THROWS(accord::error, ACCORD_ERR_CONFIG, accord::client::connect("127.0.0.1:1", missing));
}

void key_values(const accord::client& c) {
    std::uint64_t revision = c.put("cpp/greeting", "hello");
    CHECK(revision > 0);
    std::uint64_t read_at = 0;
    std::optional<std::string> value = c.get("cpp/greeting", &read_at);
    CHECK(value && *value == "hello");
    CHECK(read_at >= revision);
    std::optional<std::string> stale = c.get_serializable("cpp/greeting");
    CHECK(!stale || *stale == "hello");
    CHECK(!c.get("cpp/absent"));

    // Any bytes: NUL and high bytes included.
    const std::string binary("a\0b\xff", 4);
    c.put("cpp/binary", binary);
    value = c.get("cpp/binary");
    CHECK(value && value->size() == 4 && *value == binary);
    c.put("cpp/empty-value", "");
    value = c.get("cpp/empty-value");
    CHECK(value && value->empty());

    CHECK(c.compare_and_swap("cpp/greeting", "hello", "hi"));
    CHECK(!c.compare_and_swap("cpp/greeting", "hello", "again"));
    CHECK(c.compare_and_swap("cpp/new", std::nullopt, "x"));
    CHECK(!c.compare_and_swap("cpp/new", std::nullopt, "y"));
    CHECK(c.get("cpp/new") == std::optional<std::string>("x"));

    std::vector<std::pair<std::string, std::string>> found = c.range("cpp/g");
    CHECK(found.size() == 1 && found[0].first == "cpp/greeting" && found[0].second == "hi");
    accord::kv_page page = c.range_page("cpp/", 1);
    CHECK(page.entries.size() == 1 && page.more && page.revision > 0);
    CHECK(c.range("cpp/nothing-here/").empty());

    accord::txn t;
    t.compare_value("cpp/greeting", "hi")
        .compare_exists("cpp/new")
        .compare_version("cpp/new", 1)
        .compare_mod_revision("cpp/absent", 0)
        .put("cpp/txn", "yes")
        .del("cpp/new")
        .put_on_failure("cpp/txn", "no");
    std::uint64_t txn_revision = 0;
    CHECK(c.commit(t, &txn_revision));
    CHECK(txn_revision > revision);
    CHECK(c.get("cpp/txn") == std::optional<std::string>("yes"));
    CHECK(!c.get("cpp/new"));
    accord::txn failing;
    failing.compare_exists("cpp/absent", true)
        .put("cpp/txn", "wrong")
        .put_on_failure("cpp/txn", "else")
        .del_on_failure("cpp/binary");
    CHECK(!c.commit(failing));
    CHECK(c.get("cpp/txn") == std::optional<std::string>("else"));
    CHECK(!c.get("cpp/binary"));

    CHECK(c.del("cpp/txn"));
    CHECK(!c.del("cpp/txn"));

    accord::cluster_status status = c.status();
    CHECK(status.id >= 1 && status.id <= 3 && status.term >= 1 && status.revision > 0);
    CHECK(status.role == accord::node_role::leader || status.role == accord::node_role::follower);

    // An empty key is invalid; the message is the library's.
    try {
        c.put("", "v");
        CHECK(!"an empty key was accepted");
    } catch (const accord::invalid_argument_error& e) {
        CHECK(e.code() == ACCORD_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()) == accord_last_error_message());
        CHECK(!std::string(e.what()).empty());
    }
    // No write can create the empty key: reading it is refused as writing it is.
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT, c.get(""));
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 c.commit(accord::txn().put("", "v")));
}

// Read-modify-write of a decimal counter stored in `key` (only correct under a lock).
void increment(const accord::client& c, const std::string& key) {
    std::optional<std::string> value = c.get(key);
    long n = value ? std::strtol(value->c_str(), nullptr, 10) : 0;
    c.put(key, std::to_string(n + 1));
}

void locks(const accord::client& c) {
    accord::session a = accord::session::create(c, 10000);
    accord::session b = accord::session::create(c, 10000);
    CHECK(a.id() > 0 && b.id() > 0 && a.id() != b.id());
    CHECK(a.state() == accord::session_state::held);
    CHECK(a.wait_change(accord::session_state::held, 10) == accord::session_state::held);
    CHECK(std::string(accord::to_string(a.state())) == "held");
    a.keep_alive_once();
    a.keep_alive_once(5000);
    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 accord::session::create(c, 10));

    // A held mutex: busy for b (try_lock empty; a wait times out; a wait is cancelled).
    accord::lock held = a.lock("cpp/m", 5000);
    CHECK(held && held.token() > 0 && held.is_held());
    CHECK(!b.try_lock("cpp/m"));
    CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, b.lock("cpp/m", 300));
    std::thread canceller([&b] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        b.cancel();
    });
    CHECK_THROWS(accord::cancelled_error, ACCORD_ERR_CANCELLED, b.lock("cpp/m", 20000));
    canceller.join();

    // A write fenced by the lock token: accepted while held, refused after the release.
    accord::txn fenced;
    fenced.compare_lock_token("cpp/m", held.token()).put("cpp/guarded", "a");
    CHECK(c.commit(fenced));
    held.release();
    CHECK(!held.is_held());
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, held.release());
    CHECK(!c.commit(fenced));

    // std::lock_guard over accord::mutex.
    accord::mutex m(a, "cpp/mx", 5000);
    CHECK(m.token() == 0 && !m.is_held() && m.name() == "cpp/mx");
    std::uint64_t first_token = 0;
    {
        std::lock_guard<accord::mutex> guard(m);
        first_token = m.token();
        CHECK(first_token > 0 && m.is_held());
        CHECK(!b.try_lock("cpp/mx"));  // the second session finds it busy
        accord::txn t;
        t.compare_lock_token("cpp/mx", m.token()).put("cpp/mx-guarded", "1");
        CHECK(c.commit(t));
    }
    CHECK(m.token() == 0 && !m.is_held());
    std::optional<accord::lock> by_b = b.try_lock("cpp/mx");  // released by the guard
    CHECK(by_b && by_b->is_held() && by_b->token() > first_token);
    {
        std::unique_lock<accord::mutex> attempt(m, std::try_to_lock);
        CHECK(!attempt.owns_lock());
    }
    if (by_b) {
        by_b->release();
    }
    {
        std::unique_lock<accord::mutex> attempt(m, std::try_to_lock);
        CHECK(attempt.owns_lock() && m.token() > first_token);
    }
    {
        // lock() that is not granted in time throws (and the local mutex is left unlocked).
        accord::lock blocker = b.lock("cpp/mx2", 5000);
        accord::mutex slow(a, "cpp/mx2", 300);
        CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT,
                     std::lock_guard<accord::mutex>(slow));
        CHECK(!slow.try_lock());
        blocker.release();
        CHECK(slow.try_lock());
        CHECK(slow.token() > blocker.token());
        slow.unlock();
        CHECK(slow.token() == 0);
    }

    // One accord::mutex shared by threads of this process, and one per session: both exclude.
    {
        accord::mutex shared(a, "cpp/rmw-lock", 20000);
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; t++) {
            threads.emplace_back([&] {
                for (int i = 0; i < 4; i++) {
                    std::lock_guard<accord::mutex> guard(shared);
                    increment(c, "cpp/rmw");
                }
            });
        }
        for (std::thread& thread : threads) {
            thread.join();
        }
        CHECK(c.get("cpp/rmw") == std::optional<std::string>("12"));
    }
    {
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; t++) {
            threads.emplace_back([&c] {
                try {
                    accord::session own = accord::session::create(c, 10000);
                    accord::mutex m2(own, "cpp/rmw2-lock", 20000);
                    for (int i = 0; i < 4; i++) {
                        std::lock_guard<accord::mutex> guard(m2);
                        increment(c, "cpp/rmw2");
                    }
                    own.close();
                } catch (const std::exception& e) {
                    fail(__FILE__, __LINE__, "a locking thread", e.what());
                }
            });
        }
        for (std::thread& thread : threads) {
            thread.join();
        }
        CHECK(c.get("cpp/rmw2") == std::optional<std::string>("8"));
    }

    // Read-write lock and semaphore.
    {
        accord::lock reader1 = b.read_lock("cpp/rw", 2000);
        accord::lock reader2 = a.read_lock("cpp/rw", 2000);
        CHECK(reader1.is_held() && reader2.is_held());
        accord::session third = accord::session::create(c, 10000);
        CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, third.write_lock("cpp/rw", 300));
        reader1.release();
        reader2.release();
        accord::lock writer = third.write_lock("cpp/rw", 2000);
        CHECK(writer.is_held() && writer.token() > 0);
        writer.release();
        accord::lock permit1 = a.acquire_permit("cpp/sem", 2, 2000);
        accord::lock permit2 = b.acquire_permit("cpp/sem", 2, 2000);
        CHECK(permit1.is_held() && permit2.is_held());
        CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT,
                     third.acquire_permit("cpp/sem", 2, 300));
        permit1.release();
        permit2.release();
        third.close();
    }

    // Use after close.
    b.close();
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, b.close());
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, b.lock("cpp/m", 10));
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, b.try_lock("cpp/m"));
    CHECK(b.state() == accord::session_state::lost);  // a closed session is lost
    CHECK(b.id() > 0);  // still known
    a.close();
}

void elections(const accord::client& c) {
    accord::session a = accord::session::create(c, 10000);
    accord::session b = accord::session::create(c, 10000);
    accord::observer observer = c.observe("cpp/e");
    CHECK(!c.leader("cpp/e"));
    accord::leadership lead = a.campaign("cpp/e", "alpha", 5000);
    CHECK(lead && lead.token() > 0 && lead.is_leader());
    CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, b.campaign("cpp/e", "other", 300));
    lead.proclaim("beta");
    std::optional<accord::leader_info> leader = c.leader("cpp/e");
    CHECK(leader && leader->session == a.id() && leader->token == lead.token() &&
          leader->value == "beta");

    // The observer reports the leader now (none), then the election.
    bool saw_leader = false;
    for (int i = 0; i < 5 && !saw_leader; i++) {
        std::optional<accord::leader_change> change = observer.next(5000);
        CHECK(change.has_value());
        if (change && change->leader) {
            saw_leader = change->leader->token == lead.token() &&
                         change->leader->session == a.id() && change->revision > 0;
        }
    }
    CHECK(saw_leader);

    accord::txn fenced;
    fenced.compare_leader_token("cpp/e", lead.token()).put("cpp/led", "1");
    CHECK(c.commit(fenced));
    lead.resign();
    CHECK(!lead.is_leader());
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, lead.resign());
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, lead.proclaim("gamma"));
    CHECK(!c.leader("cpp/e"));
    CHECK(!c.commit(fenced));
    bool saw_none = false;
    for (int i = 0; i < 5 && !saw_none; i++) {
        std::optional<accord::leader_change> change = observer.next(5000);
        CHECK(change.has_value());
        saw_none = change && !change->leader;
    }
    CHECK(saw_none);

    // An idle election: the current state (no leader), then nothing: empty on timeout.
    accord::observer idle = c.observe("cpp/idle");
    std::optional<accord::leader_change> now = idle.next(5000);
    CHECK(now && !now->leader);
    CHECK(!idle.next(50));
    a.close();
    b.close();
}

void groups_queues_barriers_counters(const accord::client& c) {
    accord::session a = accord::session::create(c, 10000);
    accord::session b = accord::session::create(c, 10000);

    // Group.
    accord::membership first = a.join("cpp/g", "w1", "meta");
    std::vector<accord::member_info> members = c.members("cpp/g");
    CHECK(members.size() == 1 && members[0].id == "w1" && members[0].session == a.id() &&
          members[0].metadata == "meta");
    accord::membership second = b.join("cpp/g", "w2");
    CHECK(c.members("cpp/g").size() == 2);
    first.leave();
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, first.leave());
    members = c.members("cpp/g");
    CHECK(members.size() == 1 && members[0].id == "w2" && members[0].metadata.empty());
    second.leave();
    CHECK(c.members("cpp/g").empty());

    // Queue: claim, give back, claim by another session, acknowledge.
    std::uint64_t item = c.enqueue("cpp/q", std::string("job\0x", 5));
    CHECK(item > 0);
    accord::claim claimed = a.claim("cpp/q", 2000);
    CHECK(claimed && claimed.item() == item && claimed.token() > 0);
    CHECK(claimed.payload() == std::string("job\0x", 5));
    CHECK(!b.try_claim("cpp/q"));
    claimed.release();
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, claimed.ack());
    std::optional<accord::claim> again = b.try_claim("cpp/q");
    CHECK(again && again->item() == item && again->payload().size() == 5);
    if (again) {
        again->ack();
        CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, again->ack());
    }
    CHECK(!a.try_claim("cpp/q"));
    CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, a.claim("cpp/q", 200));

    // Barriers: alone; too few in time; two sessions on two threads.
    a.barrier("cpp/b1", 1, 2000);
    CHECK_THROWS(accord::timeout_error, ACCORD_ERR_TIMEOUT, a.barrier("cpp/b2", 2, 300));
    std::atomic<int> passed{0};
    std::thread other([&] {
        try {
            b.barrier("cpp/b3", 2, 20000);
            passed++;
        } catch (const std::exception& e) {
            fail(__FILE__, __LINE__, "b at barrier cpp/b3", e.what());
        }
    });
    a.barrier("cpp/b3", 2, 20000);
    passed++;
    other.join();
    CHECK(passed == 2);

    // Counter.
    CHECK(c.counter_get("cpp/c") == 0);
    CHECK(c.counter_add("cpp/c", 5) == 5);
    CHECK(c.counter_add("cpp/c", -7) == -2);
    CHECK(c.counter_get("cpp/c") == -2);

    a.close();
    b.close();
}

// Waits for `count` events (or gives up after a few empty waits).
std::vector<accord::event> collect(const accord::watch& w, std::size_t count) {
    std::vector<accord::event> all;
    for (int i = 0; i < 10 && all.size() < count; i++) {
        for (accord::event& e : w.next(2000)) {
            all.push_back(std::move(e));
        }
    }
    return all;
}

void watches(const accord::client& c) {
    accord::watch w = c.watch(accord::space::kv, "cpp/w/", c.status().revision + 1);
    std::uint64_t put_revision = c.put("cpp/w/1", "one");
    std::uint64_t delete_revision = 0;
    CHECK(c.del("cpp/w/1", &delete_revision));
    c.put("cpp/elsewhere", "not watched");
    std::vector<accord::event> events = collect(w, 2);
    CHECK(events.size() == 2);
    if (events.size() == 2) {
        CHECK(events[0].kind == accord::event_kind::put && events[0].space == accord::space::kv);
        CHECK(events[0].revision == put_revision && events[0].key == "cpp/w/1" &&
              events[0].value == "one");
        CHECK(events[1].kind == accord::event_kind::del && events[1].revision == delete_revision);
    }
    CHECK(w.next(50).empty());  // a timeout is an empty batch

    accord::watch counted = c.watch(accord::space::counter, "cpp/wc", c.status().revision + 1);
    c.counter_add("cpp/wc", -3);
    events = collect(counted, 1);
    CHECK(events.size() == 1 && events[0].kind == accord::event_kind::counted &&
          events[0].key == "cpp/wc" && events[0].counter_value() == -3);

    CHECK_THROWS(accord::invalid_argument_error, ACCORD_ERR_INVALID_ARGUMENT,
                 c.watch(static_cast<accord::space>(77), "", 1));
}

void moves(const std::string& endpoints) {
    // Client: move construction and assignment; the moved-from handle is inert.
    accord::client original = accord::client::connect(endpoints, 1, 10000);
    original.put("cpp/mv/1", "a");
    accord::client moved(std::move(original));
    CHECK(!original && moved);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, original.put("cpp/mv/x", "x"));
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, original.close());
    CHECK(moved.get("cpp/mv/1") == std::optional<std::string>("a"));
    accord::client target = accord::client::connect(endpoints, 1, 10000);
    target.put("cpp/mv/2", "b");
    target = std::move(moved);  // frees target's own client first
    CHECK(!moved && target);
    accord::client& alias = target;
    target = std::move(alias);  // self-move leaves it intact
    CHECK(target && target.get("cpp/mv/2") == std::optional<std::string>("b"));
    accord::client empty;
    CHECK(!empty);

    // Session and lock.
    accord::session first = accord::session::create(target, 10000);
    std::uint64_t id = first.id();
    accord::session s(std::move(first));
    CHECK(!first && first.id() == 0 && s.id() == id);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, first.lock("cpp/mv/l", 10));
    accord::lock l1 = s.lock("cpp/mv/l", 2000);
    std::uint64_t token = l1.token();
    accord::lock l2(std::move(l1));
    CHECK(!l1 && l1.token() == 0 && !l1.is_held());
    CHECK(l2 && l2.token() == token && l2.is_held());
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, l1.release());
    std::vector<accord::lock> kept;
    kept.push_back(std::move(l2));
    kept.emplace_back();  // an empty one; the vector reallocates by moving (noexcept)
    kept.reserve(16);
    CHECK(kept[0].token() == token && kept[0].is_held() && !kept[1]);
    kept[0].release();
    accord::lock assigned = s.lock("cpp/mv/l2", 2000);
    assigned.release();
    assigned = s.lock("cpp/mv/l3", 2000);  // the released handle is freed
    CHECK(assigned.is_held());
    assigned.release();

    // Claim: the payload moves with it.
    target.enqueue("cpp/mv/q", "payload");
    accord::claim c1 = s.claim("cpp/mv/q", 2000);
    accord::claim c2;
    c2 = std::move(c1);
    CHECK(!c1 && c1.item() == 0 && c1.token() == 0 && c1.payload().empty());
    CHECK(c2 && c2.payload() == "payload" && c2.item() > 0);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, c1.ack());
    c2.ack();

    // Leadership, membership, observer, watch, txn.
    accord::leadership lead1 = s.campaign("cpp/mv/e", "v", 2000);
    accord::leadership lead2(std::move(lead1));
    CHECK(!lead1 && lead1.token() == 0 && !lead1.is_leader() && lead2.is_leader());
    lead2.resign();
    accord::membership m1 = s.join("cpp/mv/g", "me");
    accord::membership m2(std::move(m1));
    CHECK(!m1 && m2);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, m1.leave());
    m2.leave();
    accord::observer o1 = target.observe("cpp/mv/e");
    accord::observer o2(std::move(o1));
    CHECK(!o1 && o2);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, o1.next(10));
    accord::watch w1 = target.watch(accord::space::kv, "cpp/mv/", 1);
    accord::watch w2;
    w2 = std::move(w1);
    CHECK(!w1 && w2);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, w1.next(10));
    accord::txn t1;
    t1.put("cpp/mv/t", "1");
    accord::txn t2(std::move(t1));
    CHECK(!t1 && t2);
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, target.commit(t1));
    CHECK_THROWS(accord::error, ACCORD_ERR_NULL_ARGUMENT, t1.put("k", "v"));
    CHECK(target.commit(t2));

    s.close();
    target.close();
    target.close();  // idempotent
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, target.put("cpp/mv/z", "z"));
    CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN,
                 accord::session::create(target, 10000));
    // Every handle here (moved-from, empty, closed) is destroyed at the end of this scope.
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s PORT1 PORT2 PORT3 DATA_DIR\n", argv[0]);
        return 2;
    }
    const std::string ports[3] = {argv[1], argv[2], argv[3]};
    const std::string data_dir = argv[4];
    CHECK(accord::abi_compatible());
    CHECK(std::string(accord::version()).size() > 0);

    std::string endpoints;
    for (int i = 0; i < 3; i++) {
        endpoints += (i > 0 ? "," : "") + std::string("127.0.0.1:") + ports[i];
    }
    section("error mapping", error_mapping);

    std::vector<accord::node> nodes;
    section("starting the members", [&] {
        for (int i = 0; i < 3; i++) {
            std::string peers;
            for (int j = 0; j < 3; j++) {
                if (j != i) {
                    peers += (peers.empty() ? "" : ",") + std::to_string(j + 1) +
                             "=127.0.0.1:" + ports[j];
                }
            }
            nodes.push_back(accord::node::start(static_cast<std::uint64_t>(i + 1),
                                                "127.0.0.1:" + ports[i], peers,
                                                data_dir + "/n" + std::to_string(i + 1)));
        }
    });
    if (nodes.size() != 3) {
        std::fprintf(stderr, "cannot start the members; stopping\n");
        return 1;
    }
    section("starting a member twice", [&] {
        try {
            (void)accord::node::start(1, "127.0.0.1:" + ports[0], "", data_dir + "/n1");
            CHECK(!"a second member on the same directory started");
        } catch (const accord::error& e) {
            CHECK(e.code() != ACCORD_OK);
        }
    });
    section("bad input", [&] { bad_input(data_dir); });

    {
        accord::client c = accord::client::connect(endpoints, 1, 10000);
        section("key-values", [&] { key_values(c); });
        section("locks", [&] { locks(c); });
        section("elections", [&] { elections(c); });
        section("groups, queues, barriers, counters", [&] { groups_queues_barriers_counters(c); });
        section("watches", [&] { watches(c); });
        section("moves", [&] { moves(endpoints); });
        section("a member's own client", [&] {
            accord::client local = nodes[0].client();
            CHECK(local.put("cpp/local", "1") > 0);
            local.cancel();
            local.close();
            CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, local.put("k", "v"));
        });
        section("closing the client", [&] {
            c.close();
            CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, c.put("k", "v"));
        });
    }
    section("stopping the members", [&] {
        for (accord::node& n : nodes) {
            n.stop();
            CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, n.stop());
            CHECK_THROWS(accord::shutdown_error, ACCORD_ERR_SHUTDOWN, n.client());
        }
    });
    accord::node moved_node(std::move(nodes[0]));
    CHECK(!nodes[0] && moved_node);
    nodes.clear();

    if (failures > 0) {
        std::fprintf(stderr, "cpp_test: %d checks failed\n", failures.load());
        return 1;
    }
    std::printf("cpp_test: every check passed\n");
    return 0;
}
