//! Clients, embedded nodes, key-value calls, transactions and status through the C ABI.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{
    accord_buf, accord_result, bytes, free_handle, guard, handle, into_handle, millis, out, text,
    Failure,
};
use crate::api::{CancelHandle, Client, ClientConfig, Compare, Condition, KeyValue, Node, Op};
use crate::runtime::access::Secret;
use crate::runtime::node::NodeConfig;
use crate::runtime::tls::TlsFiles;

/// A connection to a cluster (opaque). Usable from any thread.
pub struct accord_client {
    client: RwLock<Option<Arc<Client>>>,
    cancel: CancelHandle,
}

impl accord_client {
    pub(crate) fn wrap(client: Client) -> accord_client {
        let cancel = client.cancel_handle();
        accord_client {
            client: RwLock::new(Some(Arc::new(client))),
            cancel,
        }
    }

    /// The client, unless closed.
    pub(crate) fn get(&self) -> Result<Arc<Client>, Failure> {
        self.client
            .read()
            .clone()
            .ok_or_else(|| Failure::shutdown("client"))
    }
}

/// Connects to a cluster: `endpoints` is a comma-separated list of member addresses
/// ("127.0.0.1:7101,127.0.0.1:7102"), `cluster_id` the cluster's id (1 by default on the
/// server), `timeout_ms` how long each call may take, retries included (0: 10 s). The first
/// call connects; this one fails only on a malformed argument.
#[no_mangle]
pub unsafe extern "C" fn accord_client_connect(
    endpoints: *const c_char,
    cluster_id: u64,
    timeout_ms: u32,
    client_out: *mut *mut accord_client,
) -> accord_result {
    unsafe {
        accord_client_connect_secure(
            endpoints,
            cluster_id,
            timeout_ms,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            client_out,
        )
    }
}

/// Like `accord_client_connect`, with TLS and a token; each of the four may be NULL.
/// `tls_ca_file`: the cluster CA's PEM file (NULL: plaintext). `tls_cert_file` and
/// `tls_key_file`: this client's certificate and key (PEM), when the members require one
/// (both or neither). `token`: the shared secret the members' access file knows this client
/// by (sent in each connection's greeting; use TLS so the network cannot read it). Files are
/// read here, so a missing or malformed one fails now with `ACCORD_ERR_CONFIG`. A member
/// that refuses the credentials makes calls fail with `ACCORD_ERR_PERMISSION_DENIED`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_client_connect_secure(
    endpoints: *const c_char,
    cluster_id: u64,
    timeout_ms: u32,
    tls_ca_file: *const c_char,
    tls_cert_file: *const c_char,
    tls_key_file: *const c_char,
    token: *const c_char,
    client_out: *mut *mut accord_client,
) -> accord_result {
    guard(|| {
        let endpoints = unsafe { text(endpoints, "endpoints") }?;
        let client_out = unsafe { out(client_out, "client_out") }?;
        let optional = |ptr: *const c_char, what: &str| -> Result<Option<String>, Failure> {
            if ptr.is_null() {
                return Ok(None);
            }
            Ok(Some(unsafe { text(ptr, what) }?.to_string()))
        };
        let ca = optional(tls_ca_file, "tls_ca_file")?;
        let cert = optional(tls_cert_file, "tls_cert_file")?;
        let key = optional(tls_key_file, "tls_key_file")?;
        let token = optional(token, "token")?;
        let list: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        let mut config = ClientConfig::new(list);
        config.cluster = cluster_id;
        if timeout_ms > 0 {
            config.timeout = millis(timeout_ms);
        }
        config.tls = match (ca, cert, key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => Some(TlsFiles {
                ca: ca.into(),
                cert: cert.map(Into::into),
                key: key.map(Into::into),
            }),
            (None, _, _) => {
                return Err(Failure::invalid(
                    "tls_cert_file and tls_key_file need tls_ca_file",
                ))
            }
        };
        config.token = Secret(token.unwrap_or_default().into_bytes());
        let client = Client::connect(config)?;
        *client_out = into_handle(accord_client::wrap(client));
        Ok(())
    })
}

/// Closes the client: later calls on it return `ACCORD_ERR_SHUTDOWN`, and the call in
/// progress on its connection, if any, is cancelled (also when a session opened from this
/// client is making it: sessions issue their commands through their client's connection;
/// they keep working after the close). Idempotent.
#[no_mangle]
pub unsafe extern "C" fn accord_client_close(client: *const accord_client) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?;
        client.cancel.cancel();
        client.client.write().take();
        Ok(())
    })
}

/// Cancels the call the client is making (from any thread): it returns
/// `ACCORD_ERR_CANCELLED`. A write it had sent may still be applied, exactly once.
#[no_mangle]
pub unsafe extern "C" fn accord_client_cancel(client: *const accord_client) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?;
        client.cancel.cancel();
        Ok(())
    })
}

/// Frees the client (NULL is ignored). No call may be running on it or follow.
#[no_mangle]
pub unsafe extern "C" fn accord_client_free(client: *mut accord_client) {
    unsafe { free_handle(client) }
}

/// Sets `key` to `value`.
#[no_mangle]
pub unsafe extern "C" fn accord_kv_put(
    client: *const accord_client,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    revision_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let key = unsafe { bytes(key, key_len, "key") }?;
        let value = unsafe { bytes(value, value_len, "value") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        *revision_out = client.put(key, value)?;
        Ok(())
    })
}

/// Reads `key` (linearizable unless `serializable`). `found_out` says whether it exists;
/// `value_out` receives its value (empty when absent; free it with `accord_buf_free`).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_get(
    client: *const accord_client,
    key: *const u8,
    key_len: usize,
    serializable: bool,
    found_out: *mut bool,
    value_out: *mut accord_buf,
    revision_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let key = unsafe { bytes(key, key_len, "key") }?;
        let found_out = unsafe { out(found_out, "found_out") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        let (found, revision) = if serializable {
            client.get_serializable(key)?
        } else {
            client.get(key)?
        };
        *found_out = found.is_some();
        *value_out = found.map_or_else(accord_buf::empty, |kv| accord_buf::from_vec(kv.value));
        *revision_out = revision;
        Ok(())
    })
}

/// Deletes `key`; `deleted_out` says whether it existed.
#[no_mangle]
pub unsafe extern "C" fn accord_kv_delete(
    client: *const accord_client,
    key: *const u8,
    key_len: usize,
    deleted_out: *mut bool,
    revision_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let key = unsafe { bytes(key, key_len, "key") }?;
        let deleted_out = unsafe { out(deleted_out, "deleted_out") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        let (deleted, revision) = client.delete(key)?;
        *deleted_out = deleted;
        *revision_out = revision;
        Ok(())
    })
}

/// Sets `key` to `value` if it holds `expected` (or, with `expect_absent`, if it does not
/// exist); `swapped_out` says whether it did.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn accord_kv_compare_and_swap(
    client: *const accord_client,
    key: *const u8,
    key_len: usize,
    expected: *const u8,
    expected_len: usize,
    expect_absent: bool,
    value: *const u8,
    value_len: usize,
    swapped_out: *mut bool,
    revision_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let key = unsafe { bytes(key, key_len, "key") }?;
        let expected = unsafe { bytes(expected, expected_len, "expected") }?;
        let value = unsafe { bytes(value, value_len, "value") }?;
        let swapped_out = unsafe { out(swapped_out, "swapped_out") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        let expected = (!expect_absent).then_some(expected);
        let (swapped, revision) = client.compare_and_swap(key, expected, value)?;
        *swapped_out = swapped;
        *revision_out = revision;
        Ok(())
    })
}

/// Keys read by a range (opaque); read with `accord_kv_list_*`, free with
/// `accord_kv_list_free`.
pub struct accord_kv_list {
    found: Vec<KeyValue>,
    more: bool,
    revision: u64,
}

/// Reads the keys under `prefix` (linearizable), at most `limit` (0: as many as one reply
/// holds).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_range(
    client: *const accord_client,
    prefix: *const u8,
    prefix_len: usize,
    limit: u32,
    list_out: *mut *mut accord_kv_list,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let list_out = unsafe { out(list_out, "list_out") }?;
        let limit = if limit == 0 { u32::MAX } else { limit };
        let (found, more, revision) = client.range(prefix, limit)?;
        *list_out = into_handle(accord_kv_list {
            found,
            more,
            revision,
        });
        Ok(())
    })
}

/// Number of keys in the list (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_list_len(list: *const accord_kv_list) -> usize {
    unsafe { list.as_ref() }.map_or(0, |l| l.found.len())
}

/// Whether more keys matched than the list holds (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_list_more(list: *const accord_kv_list) -> bool {
    unsafe { list.as_ref() }.is_some_and(|l| l.more)
}

/// The revision the range was read at (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_list_revision(list: *const accord_kv_list) -> u64 {
    unsafe { list.as_ref() }.map_or(0, |l| l.revision)
}

/// The `index`-th key and value, borrowed from the list (valid until it is freed).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_list_entry(
    list: *const accord_kv_list,
    index: usize,
    key_out: *mut *const u8,
    key_len_out: *mut usize,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> accord_result {
    guard(|| {
        let list = unsafe { handle(list, "list") }?;
        let key_out = unsafe { out(key_out, "key_out") }?;
        let key_len_out = unsafe { out(key_len_out, "key_len_out") }?;
        let value_out = unsafe { out(value_out, "value_out") }?;
        let value_len_out = unsafe { out(value_len_out, "value_len_out") }?;
        let entry = list.found.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is past the list's {} keys",
                list.found.len()
            ))
        })?;
        *key_out = entry.key.as_ptr();
        *key_len_out = entry.key.len();
        *value_out = entry.value.as_ptr();
        *value_len_out = entry.value.len();
        Ok(())
    })
}

/// Frees a list (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_kv_list_free(list: *mut accord_kv_list) {
    unsafe { free_handle(list) }
}

/// A transaction being built (opaque): comparisons, then writes on success or on failure.
pub struct accord_txn {
    parts: Mutex<TxnParts>,
}

#[derive(Default)]
struct TxnParts {
    conditions: Vec<Condition>,
    success: Vec<Op>,
    failure: Vec<Op>,
}

/// A new, empty transaction (never NULL).
#[no_mangle]
pub extern "C" fn accord_txn_new() -> *mut accord_txn {
    into_handle(accord_txn {
        parts: Mutex::new(TxnParts::default()),
    })
}

unsafe fn add_condition(
    txn: *const accord_txn,
    key: *const u8,
    key_len: usize,
    compare: impl FnOnce() -> Result<Compare, Failure>,
) -> accord_result {
    guard(|| {
        let txn = unsafe { handle(txn, "txn") }?;
        let key = unsafe { bytes(key, key_len, "key") }?.to_vec();
        let compare = compare()?;
        txn.parts.lock().conditions.push(Condition { key, compare });
        Ok(())
    })
}

/// Requires `key` to hold exactly `value`.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_value(
    txn: *const accord_txn,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> accord_result {
    unsafe {
        add_condition(txn, key, key_len, || {
            Ok(Compare::Value(bytes(value, value_len, "value")?.to_vec()))
        })
    }
}

/// Requires `key` to exist (`exists`) or not.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_exists(
    txn: *const accord_txn,
    key: *const u8,
    key_len: usize,
    exists: bool,
) -> accord_result {
    unsafe { add_condition(txn, key, key_len, || Ok(Compare::Exists(exists))) }
}

/// Requires `key`'s version (writes since created; 0: absent) to be `version`.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_version(
    txn: *const accord_txn,
    key: *const u8,
    key_len: usize,
    version: u64,
) -> accord_result {
    unsafe { add_condition(txn, key, key_len, || Ok(Compare::Version(version))) }
}

/// Requires `key` to have been last written at `revision` (0: absent).
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_mod_revision(
    txn: *const accord_txn,
    key: *const u8,
    key_len: usize,
    revision: u64,
) -> accord_result {
    unsafe { add_condition(txn, key, key_len, || Ok(Compare::ModRevision(revision))) }
}

/// Requires the lock `name` to be held with fencing token `token` (a fenced write: a deposed
/// holder's transaction fails).
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_lock_token(
    txn: *const accord_txn,
    name: *const u8,
    name_len: usize,
    token: u64,
) -> accord_result {
    unsafe { add_condition(txn, name, name_len, || Ok(Compare::LockToken(token))) }
}

/// Requires the election `name` to be led with fencing token `token`.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_compare_leader_token(
    txn: *const accord_txn,
    name: *const u8,
    name_len: usize,
    token: u64,
) -> accord_result {
    unsafe { add_condition(txn, name, name_len, || Ok(Compare::LeaderToken(token))) }
}

/// Adds a put to the success branch (`on_success`) or the failure branch.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_put(
    txn: *const accord_txn,
    on_success: bool,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> accord_result {
    guard(|| {
        let txn = unsafe { handle(txn, "txn") }?;
        let key = unsafe { bytes(key, key_len, "key") }?.to_vec();
        let value = unsafe { bytes(value, value_len, "value") }?.to_vec();
        let mut parts = txn.parts.lock();
        let branch = if on_success {
            &mut parts.success
        } else {
            &mut parts.failure
        };
        branch.push(Op::Put { key, value });
        Ok(())
    })
}

/// Adds a delete to the success branch (`on_success`) or the failure branch.
#[no_mangle]
pub unsafe extern "C" fn accord_txn_delete(
    txn: *const accord_txn,
    on_success: bool,
    key: *const u8,
    key_len: usize,
) -> accord_result {
    guard(|| {
        let txn = unsafe { handle(txn, "txn") }?;
        let key = unsafe { bytes(key, key_len, "key") }?.to_vec();
        let mut parts = txn.parts.lock();
        let branch = if on_success {
            &mut parts.success
        } else {
            &mut parts.failure
        };
        branch.push(Op::Delete { key });
        Ok(())
    })
}

/// Runs the transaction atomically; `succeeded_out` says whether every comparison held.
#[no_mangle]
pub unsafe extern "C" fn accord_kv_txn(
    client: *const accord_client,
    txn: *const accord_txn,
    succeeded_out: *mut bool,
    revision_out: *mut u64,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let txn = unsafe { handle(txn, "txn") }?;
        let succeeded_out = unsafe { out(succeeded_out, "succeeded_out") }?;
        let revision_out = unsafe { out(revision_out, "revision_out") }?;
        let (conditions, success, failure) = {
            let parts = txn.parts.lock();
            (
                parts.conditions.clone(),
                parts.success.clone(),
                parts.failure.clone(),
            )
        };
        let (succeeded, revision) = client.txn(conditions, success, failure)?;
        *succeeded_out = succeeded;
        *revision_out = revision;
        Ok(())
    })
}

/// Frees a transaction (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_txn_free(txn: *mut accord_txn) {
    unsafe { free_handle(txn) }
}

/// A member's role.
pub type accord_role = u32;
/// Leading.
pub const ACCORD_ROLE_LEADER: accord_role = 1;
/// Following.
pub const ACCORD_ROLE_FOLLOWER: accord_role = 2;
/// Campaigning.
pub const ACCORD_ROLE_CANDIDATE: accord_role = 3;
/// Asking whether it could win before campaigning.
pub const ACCORD_ROLE_PRE_CANDIDATE: accord_role = 4;

/// A member's view of the cluster.
#[repr(C)]
pub struct accord_status {
    /// The member answering.
    pub id: u64,
    /// Its role (`ACCORD_ROLE_*`).
    pub role: accord_role,
    /// Its term.
    pub term: u64,
    /// The leader it knows (0: none).
    pub leader: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// State revision.
    pub revision: u64,
}

/// The status of the member the client talks to.
#[no_mangle]
pub unsafe extern "C" fn accord_client_status(
    client: *const accord_client,
    status_out: *mut accord_status,
) -> accord_result {
    guard(|| {
        let client = unsafe { handle(client, "client") }?.get()?;
        let status_out = unsafe { out(status_out, "status_out") }?;
        let status = client.status()?;
        let role = match status.role.as_str() {
            "leader" => ACCORD_ROLE_LEADER,
            "candidate" => ACCORD_ROLE_CANDIDATE,
            "pre-candidate" => ACCORD_ROLE_PRE_CANDIDATE,
            _ => ACCORD_ROLE_FOLLOWER,
        };
        *status_out = accord_status {
            id: status.id,
            role,
            term: status.term,
            leader: status.leader,
            commit: status.commit,
            applied: status.applied,
            last_index: status.last_index,
            revision: status.revision,
        };
        Ok(())
    })
}

/// A cluster member running in this process (opaque).
pub struct accord_node {
    node: Mutex<Option<Node>>,
}

impl accord_node {
    /// The member's client, for Rust code holding a C handle (the ABI benchmark compares
    /// the two paths to one member).
    pub fn rust_client(&self) -> crate::Result<Client> {
        let node = self.node.lock();
        match node.as_ref() {
            Some(node) => node.client(),
            None => Err(crate::Error::InvalidArgument("the node was stopped".into())),
        }
    }
}

/// Starts a member in this process: `id` its node id, `listen` its address
/// ("127.0.0.1:7101"), `peers` the other members ("2=127.0.0.1:7102,3=127.0.0.1:7103"),
/// `data_dir` its data directory (created 0700 if missing, locked while it runs).
#[no_mangle]
pub unsafe extern "C" fn accord_node_start(
    id: u64,
    listen: *const c_char,
    peers: *const c_char,
    data_dir: *const c_char,
    node_out: *mut *mut accord_node,
) -> accord_result {
    guard(|| {
        let listen = unsafe { text(listen, "listen") }?;
        let peers = unsafe { text(peers, "peers") }?;
        let data_dir = unsafe { text(data_dir, "data_dir") }?;
        let node_out = unsafe { out(node_out, "node_out") }?;
        let address = |text: &str| -> Result<SocketAddr, Failure> {
            text.parse()
                .map_err(|_| Failure::invalid(format!("{text} is not an address (host:port)")))
        };
        let listen = address(listen)?;
        let mut members = BTreeMap::new();
        members.insert(id, listen);
        for peer in peers.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (peer_id, peer_address) = peer
                .split_once('=')
                .ok_or_else(|| Failure::invalid(format!("peer {peer} is not id=host:port")))?;
            let peer_id: u64 = peer_id
                .parse()
                .map_err(|_| Failure::invalid(format!("peer id {peer_id} is not a number")))?;
            members.insert(peer_id, address(peer_address)?);
        }
        let config = NodeConfig::new(id, listen, members, PathBuf::from(data_dir));
        let node = Node::start(config)?;
        *node_out = into_handle(accord_node {
            node: Mutex::new(Some(node)),
        });
        Ok(())
    })
}

/// A client of the member (its requests reach the member's event loop directly, and follow
/// the leader over the network when the member does not lead).
#[no_mangle]
pub unsafe extern "C" fn accord_node_client(
    node: *const accord_node,
    client_out: *mut *mut accord_client,
) -> accord_result {
    guard(|| {
        let node = unsafe { handle(node, "node") }?;
        let client_out = unsafe { out(client_out, "client_out") }?;
        let guard = node.node.lock();
        let node = guard.as_ref().ok_or_else(|| Failure::shutdown("node"))?;
        *client_out = into_handle(accord_client::wrap(node.client()?));
        Ok(())
    })
}

/// Stops the member (its data stays on disk). Later calls return `ACCORD_ERR_SHUTDOWN`.
#[no_mangle]
pub unsafe extern "C" fn accord_node_stop(node: *const accord_node) -> accord_result {
    guard(|| {
        let node = unsafe { handle(node, "node") }?;
        let running = node
            .node
            .lock()
            .take()
            .ok_or_else(|| Failure::shutdown("node"))?;
        running.stop()?;
        Ok(())
    })
}

/// Frees the node handle (stopping the member if it runs; NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn accord_node_free(node: *mut accord_node) {
    if let Some(handle) = unsafe { node.as_ref() } {
        if let Some(running) = handle.node.lock().take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| running.stop()));
        }
    }
    unsafe { free_handle(node) }
}
