/*
 * accord — a header-only C++17 wrapper over the C ABI (accord.h).
 *
 * - Every failure throws: `accord::error` (a std::runtime_error carrying the accord_result
 *   code and the text of accord_last_error_message() at the time of the failure), or one of
 *   its subclasses for the codes a caller usually handles (timeout_error, cancelled_error,
 *   shutdown_error, session_lost_error, rejected_error, unavailable_error,
 *   invalid_argument_error, compacted_error).
 * - Handles are RAII and move-only: copying is deleted, moving is noexcept and leaves the
 *   source empty (inert: its destructor does nothing, its calls throw an accord::error with
 *   code ACCORD_ERR_NULL_ARGUMENT), and the destructor calls the matching accord_*_free.
 * - The destructors only free memory, exactly like the C functions they call: destroying a
 *   `lock`, `leadership`, `membership` or `claim` does NOT release it on the cluster (it stays
 *   held until released or until its session ends), and destroying a `session` does not
 *   close it (the cluster expires it after its TTL). Release explicitly, close the session,
 *   or use `accord::mutex` with std::lock_guard / std::unique_lock for scoped holds.
 * - Byte strings are std::string_view in and std::string out (any bytes, NUL included).
 * - Like the C handles, every object may be used from any thread; the const member functions
 *   may run concurrently on one object.
 *
 * Build: C++17; link with -laccord.
 */

#ifndef ACCORD_HPP
#define ACCORD_HPP

#include "accord.h"

#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace accord {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A failed accord call: `code()` is its accord_result, `what()` the library's message (or the
/// code's name when the library gave none).
class error : public std::runtime_error {
public:
    /// An error with `code` and `message`.
    error(accord_result code, const std::string& message)
        : std::runtime_error(message.empty() ? std::string(accord_result_str(code)) : message),
          code_(code) {}

    /// The accord_result of the failed call (one of ACCORD_ERR_*).
    accord_result code() const noexcept { return code_; }

    /// The code's name ("ACCORD_ERR_TIMEOUT"; "ACCORD_ERR_UNKNOWN" for others).
    const char* code_name() const noexcept { return accord_result_str(code_); }

private:
    accord_result code_;
};

/// ACCORD_ERR_TIMEOUT: a blocking call was not satisfied within its timeout.
class timeout_error : public error {
public:
    explicit timeout_error(const std::string& message) : error(ACCORD_ERR_TIMEOUT, message) {}
};

/// ACCORD_ERR_CANCELLED: the call was cancelled from another thread.
class cancelled_error : public error {
public:
    explicit cancelled_error(const std::string& message) : error(ACCORD_ERR_CANCELLED, message) {}
};

/// ACCORD_ERR_SHUTDOWN: the handle was closed (released, resigned...) or its node stopped.
class shutdown_error : public error {
public:
    explicit shutdown_error(const std::string& message) : error(ACCORD_ERR_SHUTDOWN, message) {}
};

/// ACCORD_ERR_SESSION_LOST: the session is possibly expired; what it held must be
/// considered gone.
class session_lost_error : public error {
public:
    explicit session_lost_error(const std::string& message)
        : error(ACCORD_ERR_SESSION_LOST, message) {}
};

/// ACCORD_ERR_REJECTED: the cluster refused the request; retrying will not help.
class rejected_error : public error {
public:
    explicit rejected_error(const std::string& message) : error(ACCORD_ERR_REJECTED, message) {}
};

/// ACCORD_ERR_UNAVAILABLE: no leader answered in time; retry later.
class unavailable_error : public error {
public:
    explicit unavailable_error(const std::string& message)
        : error(ACCORD_ERR_UNAVAILABLE, message) {}
};

/// ACCORD_ERR_INVALID_ARGUMENT: an argument is out of range or malformed.
class invalid_argument_error : public error {
public:
    explicit invalid_argument_error(const std::string& message)
        : error(ACCORD_ERR_INVALID_ARGUMENT, message) {}
};

/// ACCORD_ERR_COMPACTED: a watch's start revision left the member's history: list again.
class compacted_error : public error {
public:
    explicit compacted_error(const std::string& message)
        : error(ACCORD_ERR_COMPACTED, message) {}
};

/// ACCORD_ERR_PERMISSION_DENIED: no valid credentials, or the identity lacks the right.
class permission_denied_error : public error {
public:
    explicit permission_denied_error(const std::string& message)
        : error(ACCORD_ERR_PERMISSION_DENIED, message) {}
};

/// How a client proves who it is: TLS files (PEM) and a token, each optional ("" for none).
struct security {
    /// The cluster CA; empty: plaintext.
    std::string tls_ca_file;
    /// This client's certificate and key, when the members require one.
    std::string tls_cert_file;
    std::string tls_key_file;
    /// The shared secret the members' access file knows this client by.
    std::string token;
};

namespace detail {

/// Throws the exception class that matches `code` (which must not be ACCORD_OK).
[[noreturn]] inline void throw_error(accord_result code, const std::string& message) {
    switch (code) {
    case ACCORD_ERR_TIMEOUT:
        throw timeout_error(message);
    case ACCORD_ERR_CANCELLED:
        throw cancelled_error(message);
    case ACCORD_ERR_SHUTDOWN:
        throw shutdown_error(message);
    case ACCORD_ERR_SESSION_LOST:
        throw session_lost_error(message);
    case ACCORD_ERR_REJECTED:
        throw rejected_error(message);
    case ACCORD_ERR_UNAVAILABLE:
        throw unavailable_error(message);
    case ACCORD_ERR_INVALID_ARGUMENT:
        throw invalid_argument_error(message);
    case ACCORD_ERR_COMPACTED:
        throw compacted_error(message);
    case ACCORD_ERR_PERMISSION_DENIED:
        throw permission_denied_error(message);
    default:
        throw error(code, message);
    }
}

}  // namespace detail

/// Does nothing for ACCORD_OK; otherwise throws the matching accord::error subclass, with
/// this thread's accord_last_error_message() (so call it right after the failing call).
inline void check(accord_result result) {
    if (result == ACCORD_OK) {
        return;
    }
    const char* message = accord_last_error_message();
    detail::throw_error(result, message != nullptr ? std::string(message) : std::string());
}

/// The library's version, as text ("0.1.0").
inline const char* version() noexcept { return accord_version(); }

/// Whether the loaded library implements the ABI this header was written for.
inline bool abi_compatible() noexcept { return accord_abi_version() == ACCORD_ABI_VERSION; }

namespace detail {

inline const std::uint8_t* bytes(std::string_view s) noexcept {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

/// A copy of the (ptr, len) bytes (ptr may be NULL when len is 0).
inline std::string copy(const std::uint8_t* data, std::size_t len) {
    if (len == 0) {
        return std::string();
    }
    return std::string(reinterpret_cast<const char*>(data), len);
}

/// Takes an accord_buf returned by the library: copies it and frees it (even if the copy
/// throws).
inline std::string take(accord_buf& buf) {
    struct freer {
        accord_buf& buf;
        ~freer() {
            accord_buf_free(buf);
            buf = accord_buf{nullptr, 0};
        }
    } guard{buf};
    return copy(buf.data, buf.len);
}

/// `text` as a C string; a NUL byte inside (which C would silently cut at) is refused.
inline const char* c_str(const std::string& text, const char* what) {
    if (text.find('\0') != std::string::npos) {
        throw invalid_argument_error(std::string(what) + " contains a NUL byte");
    }
    return text.c_str();
}

/// Owns one C handle: frees it with `Free` (which accepts NULL) when destroyed or
/// overwritten; moving leaves the source NULL.
template <typename T, void (*Free)(T*)>
class unique_handle {
public:
    unique_handle() noexcept = default;
    explicit unique_handle(T* handle) noexcept : handle_(handle) {}
    ~unique_handle() { Free(handle_); }
    unique_handle(const unique_handle&) = delete;
    unique_handle& operator=(const unique_handle&) = delete;
    unique_handle(unique_handle&& other) noexcept : handle_(other.handle_) {
        other.handle_ = nullptr;
    }
    unique_handle& operator=(unique_handle&& other) noexcept {
        if (this != &other) {
            Free(handle_);
            handle_ = other.handle_;
            other.handle_ = nullptr;
        }
        return *this;
    }
    T* get() const noexcept { return handle_; }
    T* release() noexcept {
        T* handle = handle_;
        handle_ = nullptr;
        return handle;
    }

private:
    T* handle_ = nullptr;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Plain values
// ---------------------------------------------------------------------------------------------

/// How sure this process is that a session is alive (ACCORD_SESSION_STATE_*).
enum class session_state : accord_session_state {
    held = ACCORD_SESSION_STATE_HELD,       ///< a keepalive was acknowledged recently
    suspect = ACCORD_SESSION_STATE_SUSPECT, ///< a keepalive is overdue; still safe for now
    lost = ACCORD_SESSION_STATE_LOST,       ///< possibly expired: rely on nothing it held
};

/// Text for a session state ("held", "suspect", "lost"; "unknown" for others).
inline const char* to_string(session_state state) noexcept {
    return accord_session_state_str(static_cast<accord_session_state>(state));
}

/// A member's role (ACCORD_ROLE_*).
enum class node_role : accord_role {
    leader = ACCORD_ROLE_LEADER,
    follower = ACCORD_ROLE_FOLLOWER,
    candidate = ACCORD_ROLE_CANDIDATE,
    pre_candidate = ACCORD_ROLE_PRE_CANDIDATE,
};

/// A namespace of the replicated state, for watches (ACCORD_SPACE_*).
enum class space : accord_space {
    kv = ACCORD_SPACE_KV,
    lock = ACCORD_SPACE_LOCK,
    election = ACCORD_SPACE_ELECTION,
    group = ACCORD_SPACE_GROUP,
    queue = ACCORD_SPACE_QUEUE,
    barrier = ACCORD_SPACE_BARRIER,
    counter = ACCORD_SPACE_COUNTER,
    session = ACCORD_SPACE_SESSION,
};

/// What an event says happened (ACCORD_EVENT_*).
enum class event_kind : accord_event_kind {
    put = ACCORD_EVENT_PUT,
    del = ACCORD_EVENT_DELETE,
    granted = ACCORD_EVENT_GRANTED,
    waiting = ACCORD_EVENT_WAITING,
    ended = ACCORD_EVENT_ENDED,
    proclaimed = ACCORD_EVENT_PROCLAIMED,
    joined = ACCORD_EVENT_JOINED,
    left = ACCORD_EVENT_LEFT,
    enqueued = ACCORD_EVENT_ENQUEUED,
    acked = ACCORD_EVENT_ACKED,
    requeued = ACCORD_EVENT_REQUEUED,
    arrived = ACCORD_EVENT_ARRIVED,
    opened = ACCORD_EVENT_OPENED,
    counted = ACCORD_EVENT_COUNTED,
    session_created = ACCORD_EVENT_SESSION_CREATED,
    session_ended = ACCORD_EVENT_SESSION_ENDED,
};

/// A member's view of the cluster (accord_status).
struct cluster_status {
    std::uint64_t id = 0;                      ///< the member answering
    node_role role = node_role::follower;      ///< its role
    std::uint64_t term = 0;                    ///< its term
    std::uint64_t leader = 0;                  ///< the leader it knows (0: none)
    std::uint64_t commit = 0;                  ///< commit index
    std::uint64_t applied = 0;                 ///< applied index
    std::uint64_t last_index = 0;              ///< last log index
    std::uint64_t revision = 0;                ///< state revision
};

/// An election's leader: its session, fencing token and (last proclaimed) value.
struct leader_info {
    std::uint64_t session = 0;
    std::uint64_t token = 0;
    std::string value;
};

/// One change reported by an `observer`: the revision and the leader then (none while the
/// election has no leader).
struct leader_change {
    std::uint64_t revision = 0;
    std::optional<leader_info> leader;
};

/// One member of a group.
struct member_info {
    std::string id;          ///< the member's name in the group
    std::uint64_t session = 0;  ///< the session holding the membership
    std::string metadata;    ///< what it joined with
};

/// Keys read by `client::range_page`: the entries, whether more matched than were returned,
/// and the revision they were read at.
struct kv_page {
    std::vector<std::pair<std::string, std::string>> entries;
    bool more = false;
    std::uint64_t revision = 0;
};

/// One event from a `watch` (its key and value are copies, owned by the event).
struct event {
    std::uint64_t revision = 0;              ///< revision of the change
    accord::space space = accord::space::kv; ///< its space
    event_kind kind = event_kind::put;       ///< what happened
    std::string key;                         ///< the key or name
    std::string value;  ///< the value, election value, payload or metadata (may be empty)
    std::uint64_t session = 0;  ///< the session concerned (0: none)
    std::uint64_t token = 0;    ///< the grant's fencing token (0: none)
    std::uint64_t item = 0;     ///< queue item, barrier count or counter value (raw bits)

    /// `item` read as a counter's (signed) value, for event_kind::counted.
    std::int64_t counter_value() const noexcept {
        std::int64_t counted = 0;
        std::memcpy(&counted, &item, sizeof counted);
        return counted;
    }
};

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

/// A transaction being built: comparisons, then writes applied when every comparison holds
/// (`put`, `del`) or when one fails (`put_on_failure`, `del_on_failure`). Run it with
/// `client::commit`; it can be committed again (it is not consumed). Move-only.
class txn {
public:
    /// A new, empty transaction.
    txn() : handle_(accord_txn_new()) {
        if (handle_.get() == nullptr) {
            throw std::bad_alloc();
        }
    }
    ~txn() = default;
    txn(const txn&) = delete;
    txn& operator=(const txn&) = delete;
    txn(txn&&) noexcept = default;
    txn& operator=(txn&&) noexcept = default;

    /// Requires `key` to hold exactly `value`.
    txn& compare_value(std::string_view key, std::string_view value) {
        check(accord_txn_compare_value(handle_.get(), detail::bytes(key), key.size(),
                                       detail::bytes(value), value.size()));
        return *this;
    }

    /// Requires `key` to exist (`exists`) or not.
    txn& compare_exists(std::string_view key, bool exists = true) {
        check(accord_txn_compare_exists(handle_.get(), detail::bytes(key), key.size(), exists));
        return *this;
    }

    /// Requires `key`'s version (writes since created; 0: absent) to be `version`.
    txn& compare_version(std::string_view key, std::uint64_t version) {
        check(accord_txn_compare_version(handle_.get(), detail::bytes(key), key.size(), version));
        return *this;
    }

    /// Requires `key` to have been last written at `revision` (0: absent).
    txn& compare_mod_revision(std::string_view key, std::uint64_t revision) {
        check(accord_txn_compare_mod_revision(handle_.get(), detail::bytes(key), key.size(),
                                              revision));
        return *this;
    }

    /// Requires the lock `name` to be held with fencing token `token` (a fenced write).
    txn& compare_lock_token(std::string_view name, std::uint64_t token) {
        check(accord_txn_compare_lock_token(handle_.get(), detail::bytes(name), name.size(),
                                            token));
        return *this;
    }

    /// Requires the election `name` to be led with fencing token `token`.
    txn& compare_leader_token(std::string_view name, std::uint64_t token) {
        check(accord_txn_compare_leader_token(handle_.get(), detail::bytes(name), name.size(),
                                              token));
        return *this;
    }

    /// Sets `key` to `value` when every comparison holds.
    txn& put(std::string_view key, std::string_view value) {
        check(accord_txn_put(handle_.get(), true, detail::bytes(key), key.size(),
                             detail::bytes(value), value.size()));
        return *this;
    }

    /// Sets `key` to `value` when a comparison fails.
    txn& put_on_failure(std::string_view key, std::string_view value) {
        check(accord_txn_put(handle_.get(), false, detail::bytes(key), key.size(),
                             detail::bytes(value), value.size()));
        return *this;
    }

    /// Deletes `key` when every comparison holds.
    txn& del(std::string_view key) {
        check(accord_txn_delete(handle_.get(), true, detail::bytes(key), key.size()));
        return *this;
    }

    /// Deletes `key` when a comparison fails.
    txn& del_on_failure(std::string_view key) {
        check(accord_txn_delete(handle_.get(), false, detail::bytes(key), key.size()));
        return *this;
    }

    /// Whether this object holds a transaction (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_txn* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_txn, accord_txn_free> handle_;
};

// ---------------------------------------------------------------------------------------------
// Holds: locks, leadership, membership, claims
// ---------------------------------------------------------------------------------------------

/// A held lock (a mutex, one side of a read-write lock, or a semaphore's permits), from a
/// `session`. `release()` gives it to the next waiter; destroying it without releasing frees
/// the handle only: the lock stays held until the session ends. Move-only.
class lock {
public:
    /// An empty handle (as after a move).
    lock() noexcept = default;

    /// Adopts a C handle (this object frees it); its fencing token is read now.
    explicit lock(accord_lock* adopt) noexcept : handle_(adopt) {
        std::uint64_t token = 0;
        if (adopt != nullptr && accord_lock_token(adopt, &token) == ACCORD_OK) {
            token_ = token;
        }
    }
    ~lock() = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;
    lock(lock&& other) noexcept
        : handle_(std::move(other.handle_)), token_(std::exchange(other.token_, 0)) {}
    lock& operator=(lock&& other) noexcept {
        handle_ = std::move(other.handle_);
        token_ = std::exchange(other.token_, 0);
        return *this;
    }

    /// The grant's fencing token (its revision; 0 for an empty handle).
    std::uint64_t token() const noexcept { return token_; }

    /// Whether the lock is surely still held (not released, session not lost).
    bool is_held() const noexcept { return accord_lock_is_held(handle_.get()); }

    /// Releases the lock (the next waiter gets it); later releases throw shutdown_error.
    void release() { check(accord_lock_release(handle_.get())); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_lock* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_lock, accord_lock_free> handle_;
    std::uint64_t token_ = 0;
};

/// Leadership of an election, from `session::campaign`. `resign()` steps down; destroying it
/// without resigning frees the handle only (the session keeps leading until it ends).
/// Move-only.
class leadership {
public:
    /// An empty handle (as after a move).
    leadership() noexcept = default;

    /// Adopts a C handle (this object frees it); its fencing token is read now.
    explicit leadership(accord_leadership* adopt) noexcept : handle_(adopt) {
        std::uint64_t token = 0;
        if (adopt != nullptr && accord_leadership_token(adopt, &token) == ACCORD_OK) {
            token_ = token;
        }
    }
    ~leadership() = default;
    leadership(const leadership&) = delete;
    leadership& operator=(const leadership&) = delete;
    leadership(leadership&& other) noexcept
        : handle_(std::move(other.handle_)), token_(std::exchange(other.token_, 0)) {}
    leadership& operator=(leadership&& other) noexcept {
        handle_ = std::move(other.handle_);
        token_ = std::exchange(other.token_, 0);
        return *this;
    }

    /// The leadership's fencing token (0 for an empty handle).
    std::uint64_t token() const noexcept { return token_; }

    /// Whether this process surely still leads.
    bool is_leader() const noexcept { return accord_leadership_is_leader(handle_.get()); }

    /// Publishes a new value for observers.
    void proclaim(std::string_view value) const {
        check(accord_leadership_proclaim(handle_.get(), detail::bytes(value), value.size()));
    }

    /// Steps down (the next candidate is elected); later calls throw shutdown_error.
    void resign() { check(accord_leadership_resign(handle_.get())); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_leadership* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_leadership, accord_leadership_free> handle_;
    std::uint64_t token_ = 0;
};

/// Presence in a group, from `session::join`. `leave()` leaves; destroying it without leaving
/// frees the handle only (the member stays until its session ends). Move-only.
class membership {
public:
    /// An empty handle (as after a move).
    membership() noexcept = default;

    /// Adopts a C handle (this object frees it).
    explicit membership(accord_membership* adopt) noexcept : handle_(adopt) {}
    ~membership() = default;
    membership(const membership&) = delete;
    membership& operator=(const membership&) = delete;
    membership(membership&&) noexcept = default;
    membership& operator=(membership&&) noexcept = default;

    /// Leaves the group; later calls throw shutdown_error.
    void leave() { check(accord_membership_leave(handle_.get())); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_membership* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_membership, accord_membership_free> handle_;
};

/// A claimed work item, from `session::claim`: its id, fencing token and payload. `ack()`
/// removes it from the queue for good, `release()` gives it back; destroying it unsettled
/// frees the handle only (the item is redelivered when the session ends). Move-only.
class claim {
public:
    /// An empty handle (as after a move).
    claim() noexcept = default;

    /// Adopts a C handle (this object frees it); its item, token and payload are copied now.
    explicit claim(accord_claim* adopt) : handle_(adopt) {
        if (adopt == nullptr) {
            return;
        }
        const std::uint8_t* payload = nullptr;
        std::size_t payload_len = 0;
        check(accord_claim_item(adopt, &item_, &token_, &payload, &payload_len));
        payload_ = detail::copy(payload, payload_len);
    }
    ~claim() = default;
    claim(const claim&) = delete;
    claim& operator=(const claim&) = delete;
    claim(claim&& other) noexcept
        : handle_(std::move(other.handle_)),
          item_(std::exchange(other.item_, 0)),
          token_(std::exchange(other.token_, 0)),
          payload_(std::move(other.payload_)) {
        other.payload_.clear();
    }
    claim& operator=(claim&& other) noexcept {
        if (this != &other) {
            handle_ = std::move(other.handle_);
            item_ = std::exchange(other.item_, 0);
            token_ = std::exchange(other.token_, 0);
            payload_ = std::move(other.payload_);
            other.payload_.clear();
        }
        return *this;
    }

    /// The item's id in its queue (0 for an empty handle).
    std::uint64_t item() const noexcept { return item_; }

    /// The claim's fencing token (0 for an empty handle).
    std::uint64_t token() const noexcept { return token_; }

    /// The item's payload.
    const std::string& payload() const noexcept { return payload_; }

    /// Acknowledges the item: it leaves the queue for good. Later calls throw shutdown_error.
    void ack() { check(accord_claim_settle(handle_.get(), true)); }

    /// Gives the item back to its queue. Later calls throw shutdown_error.
    void release() { check(accord_claim_settle(handle_.get(), false)); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_claim* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_claim, accord_claim_free> handle_;
    std::uint64_t item_ = 0;
    std::uint64_t token_ = 0;
    std::string payload_;
};

// ---------------------------------------------------------------------------------------------
// Streams: observers and watches
// ---------------------------------------------------------------------------------------------

/// A stream of an election's leadership changes, from `client::observe`: the first change
/// reported is the leader when observing began. Move-only.
class observer {
public:
    /// An empty handle (as after a move).
    observer() noexcept = default;

    /// Adopts a C handle (this object frees it).
    explicit observer(accord_observer* adopt) noexcept : handle_(adopt) {}
    ~observer() = default;
    observer(const observer&) = delete;
    observer& operator=(const observer&) = delete;
    observer(observer&&) noexcept = default;
    observer& operator=(observer&&) noexcept = default;

    /// The next leadership change, waiting up to `timeout_ms`; empty if none came in time.
    std::optional<leader_change> next(std::uint32_t timeout_ms) const {
        std::uint64_t revision = 0;
        bool has_leader = false;
        std::uint64_t session = 0;
        std::uint64_t token = 0;
        accord_buf value{nullptr, 0};
        accord_result result = accord_observer_next(handle_.get(), timeout_ms, &revision,
                                                    &has_leader, &session, &token, &value);
        if (result == ACCORD_ERR_TIMEOUT) {
            return std::nullopt;
        }
        check(result);
        std::string text = detail::take(value);
        leader_change change;
        change.revision = revision;
        if (has_leader) {
            change.leader = leader_info{session, token, std::move(text)};
        }
        return change;
    }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_observer* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_observer, accord_observer_free> handle_;
};

/// A watch, from `client::watch`: the changes under a prefix of one space, in revision order,
/// none missed or repeated. Move-only.
class watch {
public:
    /// An empty handle (as after a move).
    watch() noexcept = default;

    /// Adopts a C handle (this object frees it).
    explicit watch(accord_watch* adopt) noexcept : handle_(adopt) {}
    ~watch() = default;
    watch(const watch&) = delete;
    watch& operator=(const watch&) = delete;
    watch(watch&&) noexcept = default;
    watch& operator=(watch&&) noexcept = default;

    /// The next events, waiting up to `timeout_ms`; empty if none came in time. Throws
    /// compacted_error if the watch fell behind the history (list again), rejected_error if
    /// the member cancelled it as a slow consumer.
    std::vector<event> next(std::uint32_t timeout_ms) const {
        accord_event_list* raw = nullptr;
        accord_result result = accord_watch_next(handle_.get(), timeout_ms, &raw);
        if (result == ACCORD_ERR_TIMEOUT) {
            return {};
        }
        check(result);
        detail::unique_handle<accord_event_list, accord_event_list_free> list(raw);
        std::size_t count = accord_event_list_len(list.get());
        std::vector<event> events;
        events.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            accord_event raw_event;
            check(accord_event_list_get(list.get(), i, &raw_event));
            event e;
            e.revision = raw_event.revision;
            e.space = static_cast<accord::space>(raw_event.space);
            e.kind = static_cast<event_kind>(raw_event.kind);
            e.key = detail::copy(raw_event.key, raw_event.key_len);
            e.value = detail::copy(raw_event.value, raw_event.value_len);
            e.session = raw_event.session;
            e.token = raw_event.token;
            e.item = raw_event.item;
            events.push_back(std::move(e));
        }
        return events;
    }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_watch* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_watch, accord_watch_free> handle_;
};

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// A connection to a cluster: key-value calls, transactions, counters, queues (enqueue),
/// elections (read and observe), groups (list), watches. Calls may run concurrently from many
/// threads. Move-only.
class client {
public:
    /// An empty handle (as after a move).
    client() noexcept = default;

    /// Adopts a C handle (this object frees it).
    explicit client(accord_client* adopt) noexcept : handle_(adopt) {}
    ~client() = default;
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    client(client&&) noexcept = default;
    client& operator=(client&&) noexcept = default;

    /// Connects to a cluster: `endpoints` is a comma-separated list of member addresses
    /// ("127.0.0.1:7101,127.0.0.1:7102"), `cluster_id` the cluster's id, `timeout_ms` how long
    /// each call may take, retries included (0: 10 s). Connecting happens on the first call.
    static client connect(const std::string& endpoints, std::uint64_t cluster_id = 1,
                          std::uint32_t timeout_ms = 0) {
        accord_client* raw = nullptr;
        check(accord_client_connect(detail::c_str(endpoints, "endpoints"), cluster_id,
                                    timeout_ms, &raw));
        return client(raw);
    }

    /// Like connect(), with TLS and a token (see accord_client_connect_secure()).
    static client connect(const std::string& endpoints, const security& credentials,
                          std::uint64_t cluster_id = 1, std::uint32_t timeout_ms = 0) {
        auto optional = [](const std::string& text) {
            return text.empty() ? nullptr : text.c_str();
        };
        accord_client* raw = nullptr;
        check(accord_client_connect_secure(
            detail::c_str(endpoints, "endpoints"), cluster_id, timeout_ms,
            optional(credentials.tls_ca_file), optional(credentials.tls_cert_file),
            optional(credentials.tls_key_file), optional(credentials.token), &raw));
        return client(raw);
    }

    /// Connects to a cluster given its member addresses one by one.
    static client connect(const std::vector<std::string>& endpoints,
                          std::uint64_t cluster_id = 1, std::uint32_t timeout_ms = 0) {
        std::string joined;
        for (const std::string& endpoint : endpoints) {
            if (!joined.empty()) {
                joined += ',';
            }
            joined += endpoint;
        }
        return connect(joined, cluster_id, timeout_ms);
    }

    /// Sets `key` to `value`; returns the revision of the write.
    std::uint64_t put(std::string_view key, std::string_view value) const {
        std::uint64_t revision = 0;
        check(accord_kv_put(handle_.get(), detail::bytes(key), key.size(), detail::bytes(value),
                            value.size(), &revision));
        return revision;
    }

    /// Reads `key` (linearizable): its value, or empty if it does not exist. `revision`, if
    /// given, receives the revision read at.
    std::optional<std::string> get(std::string_view key,
                                   std::uint64_t* revision = nullptr) const {
        return read(key, false, revision);
    }

    /// Reads `key` from the member the client talks to (serializable: maybe stale).
    std::optional<std::string> get_serializable(std::string_view key,
                                                std::uint64_t* revision = nullptr) const {
        return read(key, true, revision);
    }

    /// Deletes `key`; returns whether it existed.
    bool del(std::string_view key, std::uint64_t* revision = nullptr) const {
        bool deleted = false;
        std::uint64_t at = 0;
        check(accord_kv_delete(handle_.get(), detail::bytes(key), key.size(), &deleted, &at));
        if (revision != nullptr) {
            *revision = at;
        }
        return deleted;
    }

    /// Sets `key` to `value` if it holds `expected` (std::nullopt: if it does not exist);
    /// returns whether it did.
    bool compare_and_swap(std::string_view key, std::optional<std::string_view> expected,
                          std::string_view value, std::uint64_t* revision = nullptr) const {
        bool swapped = false;
        std::uint64_t at = 0;
        std::string_view want = expected.value_or(std::string_view());
        check(accord_kv_compare_and_swap(handle_.get(), detail::bytes(key), key.size(),
                                         detail::bytes(want), want.size(), !expected.has_value(),
                                         detail::bytes(value), value.size(), &swapped, &at));
        if (revision != nullptr) {
            *revision = at;
        }
        return swapped;
    }

    /// The keys under `prefix` and their values (linearizable), at most `limit` (0: as many as
    /// one reply holds; see range_page to learn whether more matched).
    std::vector<std::pair<std::string, std::string>> range(std::string_view prefix,
                                                           std::uint32_t limit = 0) const {
        return range_page(prefix, limit).entries;
    }

    /// Like range, with whether more keys matched than were returned and the revision read at.
    kv_page range_page(std::string_view prefix, std::uint32_t limit = 0) const {
        accord_kv_list* raw = nullptr;
        check(accord_kv_range(handle_.get(), detail::bytes(prefix), prefix.size(), limit, &raw));
        detail::unique_handle<accord_kv_list, accord_kv_list_free> list(raw);
        kv_page page;
        page.more = accord_kv_list_more(list.get());
        page.revision = accord_kv_list_revision(list.get());
        std::size_t count = accord_kv_list_len(list.get());
        page.entries.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint8_t* key = nullptr;
            const std::uint8_t* value = nullptr;
            std::size_t key_len = 0;
            std::size_t value_len = 0;
            check(accord_kv_list_entry(list.get(), i, &key, &key_len, &value, &value_len));
            page.entries.emplace_back(detail::copy(key, key_len), detail::copy(value, value_len));
        }
        return page;
    }

    /// Runs `transaction` atomically; returns whether every comparison held.
    bool commit(const txn& transaction, std::uint64_t* revision = nullptr) const {
        bool succeeded = false;
        std::uint64_t at = 0;
        check(accord_kv_txn(handle_.get(), transaction.native_handle(), &succeeded, &at));
        if (revision != nullptr) {
            *revision = at;
        }
        return succeeded;
    }

    /// Adds `delta` to counter `name`; returns the new value.
    std::int64_t counter_add(std::string_view name, std::int64_t delta) const {
        std::int64_t value = 0;
        check(accord_counter_add(handle_.get(), detail::bytes(name), name.size(), delta, &value));
        return value;
    }

    /// Counter `name`'s value (linearizable; 0 if never added to).
    std::int64_t counter_get(std::string_view name) const {
        std::int64_t value = 0;
        check(accord_counter_get(handle_.get(), detail::bytes(name), name.size(), &value));
        return value;
    }

    /// Adds an item to `queue`; returns its id.
    std::uint64_t enqueue(std::string_view queue, std::string_view payload) const {
        std::uint64_t item = 0;
        check(accord_queue_enqueue(handle_.get(), detail::bytes(queue), queue.size(),
                                   detail::bytes(payload), payload.size(), &item));
        return item;
    }

    /// The leader of election `name` now (linearizable), or empty if there is none.
    std::optional<leader_info> leader(std::string_view name) const {
        bool found = false;
        std::uint64_t session = 0;
        std::uint64_t token = 0;
        accord_buf value{nullptr, 0};
        check(accord_election_leader(handle_.get(), detail::bytes(name), name.size(), &found,
                                     &session, &token, &value));
        std::string text = detail::take(value);
        if (!found) {
            return std::nullopt;
        }
        return leader_info{session, token, std::move(text)};
    }

    /// The members of `group` (linearizable).
    std::vector<member_info> members(std::string_view group) const {
        accord_member_list* raw = nullptr;
        check(accord_group_members(handle_.get(), detail::bytes(group), group.size(), &raw));
        detail::unique_handle<accord_member_list, accord_member_list_free> list(raw);
        std::size_t count = accord_member_list_len(list.get());
        std::vector<member_info> found;
        found.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint8_t* id = nullptr;
            const std::uint8_t* metadata = nullptr;
            std::size_t id_len = 0;
            std::size_t metadata_len = 0;
            std::uint64_t session = 0;
            check(accord_member_list_entry(list.get(), i, &id, &id_len, &session, &metadata,
                                           &metadata_len));
            found.push_back(
                member_info{detail::copy(id, id_len), session, detail::copy(metadata, metadata_len)});
        }
        return found;
    }

    /// Observes election `name`: the first change reported is the leader now.
    [[nodiscard]] accord::observer observe(std::string_view name) const {
        accord_observer* raw = nullptr;
        check(accord_election_observe(handle_.get(), detail::bytes(name), name.size(), &raw));
        return accord::observer(raw);
    }

    /// Watches the keys (or names) of `in` under `prefix` from revision `from` (1: as far back
    /// as the member's history goes; compacted_error when `from` left it).
    [[nodiscard]] accord::watch watch(accord::space in, std::string_view prefix,
                                      std::uint64_t from = 1) const {
        accord_watch* raw = nullptr;
        check(accord_watch_open(handle_.get(), static_cast<accord_space>(in),
                                detail::bytes(prefix), prefix.size(), from, &raw));
        return accord::watch(raw);
    }

    /// The status of the member the client talks to.
    cluster_status status() const {
        accord_status raw;
        check(accord_client_status(handle_.get(), &raw));
        cluster_status out;
        out.id = raw.id;
        out.role = static_cast<node_role>(raw.role);
        out.term = raw.term;
        out.leader = raw.leader;
        out.commit = raw.commit;
        out.applied = raw.applied;
        out.last_index = raw.last_index;
        out.revision = raw.revision;
        return out;
    }

    /// Cancels the call the client is making (from any thread): it throws cancelled_error.
    /// A write it had sent may still be applied, exactly once.
    void cancel() const { check(accord_client_cancel(handle_.get())); }

    /// Closes the client: later calls throw shutdown_error. Idempotent.
    void close() { check(accord_client_close(handle_.get())); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_client* native_handle() const noexcept { return handle_.get(); }

private:
    std::optional<std::string> read(std::string_view key, bool serializable,
                                    std::uint64_t* revision) const {
        bool found = false;
        accord_buf value{nullptr, 0};
        std::uint64_t at = 0;
        check(accord_kv_get(handle_.get(), detail::bytes(key), key.size(), serializable, &found,
                            &value, &at));
        std::string text = detail::take(value);
        if (revision != nullptr) {
            *revision = at;
        }
        if (!found) {
            return std::nullopt;
        }
        return text;
    }

    detail::unique_handle<accord_client, accord_client_free> handle_;
};

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// A session: a lease kept alive by a thread of the library, under which locks, leadership,
/// group membership and queue claims are held; everything it holds is released when it ends.
/// `close()` ends it now; destroying it without closing only stops its keepalives (the
/// cluster expires it after its TTL). Move-only.
class session {
public:
    /// An empty handle (as after a move).
    session() noexcept = default;

    /// Adopts a C handle (this object frees it); its id is read now.
    explicit session(accord_session* adopt) noexcept : handle_(adopt) {
        std::uint64_t id = 0;
        if (adopt != nullptr && accord_session_id(adopt, &id) == ACCORD_OK) {
            id_ = id;
        }
    }
    ~session() = default;
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    session(session&& other) noexcept
        : handle_(std::move(other.handle_)), id_(std::exchange(other.id_, 0)) {}
    session& operator=(session&& other) noexcept {
        handle_ = std::move(other.handle_);
        id_ = std::exchange(other.id_, 0);
        return *this;
    }

    /// Opens a session on `through`'s cluster with `ttl_ms` (1000 to 86,400,000).
    static session create(const client& through, std::uint32_t ttl_ms = 10000) {
        accord_session* raw = nullptr;
        check(accord_session_create(through.native_handle(), ttl_ms, &raw));
        return session(raw);
    }

    /// The session's id (still known after close; 0 for an empty handle).
    std::uint64_t id() const noexcept { return id_; }

    /// The session's state now, checked against its safety clock.
    session_state state() const {
        accord_session_state now = 0;
        check(accord_session_status(handle_.get(), &now));
        return static_cast<session_state>(now);
    }

    /// Waits up to `timeout_ms` for the state to differ from `from`; returns the state then
    /// (`from` if nothing changed in time).
    session_state wait_change(session_state from, std::uint32_t timeout_ms) const {
        accord_session_state then = 0;
        check(accord_session_wait_change(handle_.get(), static_cast<accord_session_state>(from),
                                         timeout_ms, &then));
        return static_cast<session_state>(then);
    }

    /// Renews the session now instead of at its next keepalive (the library sends one every
    /// TTL / 3 by itself); returns once the cluster acknowledged it (`timeout_ms` 0: the
    /// client's call timeout).
    void keep_alive_once(std::uint32_t timeout_ms = 0) const {
        check(accord_session_keepalive(handle_.get(), timeout_ms));
    }

    /// Cancels the blocking calls in progress on this session (from any thread): they
    /// withdraw and throw cancelled_error.
    void cancel() const { check(accord_session_cancel(handle_.get())); }

    /// Ends the session now, releasing everything it holds; later calls throw shutdown_error.
    void close() { check(accord_session_close(handle_.get())); }

    /// Takes mutex `name`, waiting (FIFO) up to `timeout_ms` (timeout_error after).
    [[nodiscard]] accord::lock lock(std::string_view name, std::uint32_t timeout_ms) const {
        return acquire(name, ACCORD_LOCK_MUTEX, 0, timeout_ms);
    }

    /// Takes mutex `name` if it is free now; empty if it is busy.
    [[nodiscard]] std::optional<accord::lock> try_lock(std::string_view name) const {
        accord_lock* raw = nullptr;
        check(accord_lock_acquire(handle_.get(), detail::bytes(name), name.size(),
                                  ACCORD_LOCK_MUTEX, 0, 0, true, &raw));
        if (raw == nullptr) {
            return std::nullopt;
        }
        return accord::lock(raw);
    }

    /// Takes the shared (read) side of read-write lock `name`, waiting up to `timeout_ms`.
    [[nodiscard]] accord::lock read_lock(std::string_view name, std::uint32_t timeout_ms) const {
        return acquire(name, ACCORD_LOCK_READ, 0, timeout_ms);
    }

    /// Takes the exclusive (write) side of read-write lock `name`, waiting up to `timeout_ms`.
    [[nodiscard]] accord::lock write_lock(std::string_view name, std::uint32_t timeout_ms) const {
        return acquire(name, ACCORD_LOCK_WRITE, 0, timeout_ms);
    }

    /// Takes one of the `permits` permits of semaphore `name`, waiting up to `timeout_ms`.
    [[nodiscard]] accord::lock acquire_permit(std::string_view name, std::uint32_t permits,
                                              std::uint32_t timeout_ms) const {
        return acquire(name, ACCORD_LOCK_SEMAPHORE, permits, timeout_ms);
    }

    /// Stands for election `name` with `value`; returns once elected, or throws
    /// timeout_error after `timeout_ms` (the candidacy is withdrawn).
    [[nodiscard]] leadership campaign(std::string_view name, std::string_view value,
                                      std::uint32_t timeout_ms) const {
        accord_leadership* raw = nullptr;
        check(accord_election_campaign(handle_.get(), detail::bytes(name), name.size(),
                                       detail::bytes(value), value.size(), timeout_ms, &raw));
        return leadership(raw);
    }

    /// Joins `group` as `member` with `metadata`, for as long as the session lives.
    [[nodiscard]] membership join(std::string_view group, std::string_view member,
                                  std::string_view metadata = std::string_view()) const {
        accord_membership* raw = nullptr;
        check(accord_group_join(handle_.get(), detail::bytes(group), group.size(),
                                detail::bytes(member), member.size(), detail::bytes(metadata),
                                metadata.size(), &raw));
        return membership(raw);
    }

    /// Claims the oldest unclaimed item of `queue`, waiting up to `timeout_ms` for one.
    [[nodiscard]] accord::claim claim(std::string_view queue, std::uint32_t timeout_ms) const {
        accord_claim* raw = nullptr;
        check(accord_queue_claim(handle_.get(), detail::bytes(queue), queue.size(), timeout_ms,
                                 false, &raw));
        return accord::claim(raw);  // owns raw even if reading it throws
    }

    /// Claims the oldest unclaimed item of `queue` if there is one now; empty otherwise.
    [[nodiscard]] std::optional<accord::claim> try_claim(std::string_view queue) const {
        accord_claim* raw = nullptr;
        check(accord_queue_claim(handle_.get(), detail::bytes(queue), queue.size(), 0, true,
                                 &raw));
        if (raw == nullptr) {
            return std::nullopt;
        }
        return accord::claim(raw);  // owns raw even if reading it throws
    }

    /// Arrives at barrier `name` of `participants` and waits until all arrived, up to
    /// `timeout_ms` (then leaves the barrier and throws timeout_error).
    void barrier(std::string_view name, std::uint32_t participants,
                 std::uint32_t timeout_ms) const {
        check(accord_barrier_wait(handle_.get(), detail::bytes(name), name.size(), participants,
                                  timeout_ms));
    }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_session* native_handle() const noexcept { return handle_.get(); }

private:
    accord::lock acquire(std::string_view name, accord_lock_kind kind, std::uint32_t permits,
                         std::uint32_t timeout_ms) const {
        accord_lock* raw = nullptr;
        check(accord_lock_acquire(handle_.get(), detail::bytes(name), name.size(), kind, permits,
                                  timeout_ms, false, &raw));
        return accord::lock(raw);
    }

    detail::unique_handle<accord_session, accord_session_free> handle_;
    std::uint64_t id_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------------

/// A cluster member running in this process. Destroying it stops it (its data stays on
/// disk). Move-only.
class node {
public:
    /// An empty handle (as after a move).
    node() noexcept = default;

    /// Adopts a C handle (this object frees it).
    explicit node(accord_node* adopt) noexcept : handle_(adopt) {}
    ~node() = default;
    node(const node&) = delete;
    node& operator=(const node&) = delete;
    node(node&&) noexcept = default;
    node& operator=(node&&) noexcept = default;

    /// Starts member `id` listening on `listen` ("127.0.0.1:7101"), with the other members
    /// `peers` ("2=127.0.0.1:7102,3=127.0.0.1:7103") and its data in `data_dir` (created 0700
    /// if missing, locked while it runs).
    static node start(std::uint64_t id, const std::string& listen, const std::string& peers,
                      const std::string& data_dir) {
        accord_node* raw = nullptr;
        check(accord_node_start(id, detail::c_str(listen, "listen"),
                                detail::c_str(peers, "peers"),
                                detail::c_str(data_dir, "data_dir"), &raw));
        return node(raw);
    }

    /// A client of this member (its requests reach the member directly, and follow the
    /// leader over the network when the member does not lead).
    [[nodiscard]] accord::client client() const {
        accord_client* raw = nullptr;
        check(accord_node_client(handle_.get(), &raw));
        return accord::client(raw);
    }

    /// Stops the member (its data stays on disk); later calls throw shutdown_error.
    void stop() { check(accord_node_stop(handle_.get())); }

    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return handle_.get() != nullptr; }

    /// The C handle (still owned by this object).
    accord_node* native_handle() const noexcept { return handle_.get(); }

private:
    detail::unique_handle<accord_node, accord_node_free> handle_;
};

// ---------------------------------------------------------------------------------------------
// mutex: a distributed mutex for std::lock_guard / std::unique_lock / std::scoped_lock
// ---------------------------------------------------------------------------------------------

/// A distributed mutex meeting the standard Lockable requirements, so that
/// `std::lock_guard<accord::mutex> guard(m);` holds lock `name` of `session` for a scope.
///
/// - `lock()` waits up to the constructor's `timeout_ms` for the cluster lock and throws
///   (timeout_error, session_lost_error, ...) if it is not granted; `try_lock()` does not
///   wait; `unlock()` releases (it cannot throw: if the release fails, the hold ends with the
///   session anyway).
/// - Threads of this process sharing one accord::mutex are first serialized by a local
///   std::mutex, then take the cluster lock; so, like std::mutex, it must be unlocked by the
///   thread that locked it, and it is not recursive.
/// - `token()` is the current hold's fencing token (for txn::compare_lock_token), valid while
///   the calling thread holds the mutex.
/// - The session must outlive the mutex. Destroying a held mutex frees the hold without
///   releasing it (it ends with the session). Neither copyable nor movable (like std::mutex).
class mutex {
public:
    /// A mutex on lock `name` of `holder`, whose lock() waits up to `timeout_ms`.
    mutex(const session& holder, std::string name, std::uint32_t timeout_ms)
        : session_(&holder), name_(std::move(name)), timeout_ms_(timeout_ms) {}
    ~mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;
    mutex(mutex&&) = delete;
    mutex& operator=(mutex&&) = delete;

    /// Takes the lock, waiting up to the timeout; throws if it is not granted.
    void lock() {
        local_.lock();
        try {
            held_ = session_->lock(name_, timeout_ms_);
        } catch (...) {
            local_.unlock();
            throw;
        }
    }

    /// Takes the lock if it is free now (in this process and in the cluster); throws only if
    /// the cluster could not be asked.
    bool try_lock() {
        if (!local_.try_lock()) {
            return false;
        }
        try {
            std::optional<accord::lock> taken = session_->try_lock(name_);
            if (!taken) {
                local_.unlock();
                return false;
            }
            held_ = std::move(*taken);
            return true;
        } catch (...) {
            local_.unlock();
            throw;
        }
    }

    /// Releases the lock (the next waiter gets it).
    void unlock() noexcept {
        accord::lock held = std::move(held_);
        if (held) {
            // A failed release (session lost or closed) leaves nothing held once the session
            // ends; there is nothing more to do here, and unlock must not throw.
            (void)accord_lock_release(held.native_handle());
        }
        local_.unlock();
    }

    /// The current hold's fencing token (0 when not held).
    std::uint64_t token() const noexcept { return held_.token(); }

    /// Whether the current hold is surely still held (not released, session not lost).
    bool is_held() const noexcept { return held_.is_held(); }

    /// The lock's name.
    const std::string& name() const noexcept { return name_; }

private:
    const session* session_;
    std::string name_;
    std::uint32_t timeout_ms_;
    std::mutex local_;
    accord::lock held_;
};

}  // namespace accord

#endif  // ACCORD_HPP
