//! Who may do what: identities (from a client certificate's common name or a shared-secret
//! token), roles, and per-space, per-prefix read and write rights.
//!
//! The access file, one statement per line (`#` starts a comment):
//!
//! ```text
//! role <role> <grant>...          a role: what its holders may do
//! user <name> <credential> <role>[,<role>...]
//! ```
//!
//! - a grant is `read:<space>:<prefix>` or `write:<space>:<prefix>` (write includes read),
//!   `admin` (membership changes, snapshots, every right) or `member` (may join as a
//!   member of the cluster and change the membership). `<space>` is `kv`, `lock`, `election`, `group`, `queue`,
//!   `barrier`, `counter`, `session` or `*` (every space); an empty prefix covers every name.
//! - a credential is `token:<secret>` (at least 16 characters; the client sends it in its
//!   `Hello`) or `cert:<common name>` (the subject common name of the TLS client
//!   certificate, which the cluster CA signed).
//! - built-in roles: `read-only` (`read:*:`), `read-write` (`write:*:`), `admin`, `member`.
//!
//! With an access file, every connection must identify itself: a caller with no known
//! credential is refused at its `Hello`, a member link needs the `member` role, and each
//! request is checked against the caller's rights (an unauthorized one gets
//! `PermissionDenied` and no data; watches included). Sessions need some write right: a
//! read-only client cannot create or keep one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::wire::{ClientOp, MembershipOp, Query};
use crate::core::state::{Command, Compare, Op, Space};
use crate::error::{Error, Result};
use crate::limits::{ACCESS_FILE_BYTES_MAX, ACCESS_GRANTS_MAX, TOKEN_BYTES_MAX};

/// Shortest token accepted in an access file (a guessable secret is no secret).
pub const TOKEN_CHARS_MIN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Right {
    Read,
    Write,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    right: Right,
    /// `None`: every space.
    space: Option<Space>,
    prefix: Vec<u8>,
}

/// What one identity may do (the union of its roles).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rights {
    /// The identity's name (from the access file), for errors and logs.
    pub name: String,
    grants: Vec<Grant>,
    admin: bool,
    member: bool,
}

impl Rights {
    /// Whether this identity may join the cluster as a member.
    pub fn is_member(&self) -> bool {
        self.member
    }

    fn may(&self, right: Right, space: Space, name: &[u8]) -> bool {
        self.admin
            || self.grants.iter().any(|grant| {
                grant.right >= right
                    && grant.space.is_none_or(|s| s == space)
                    && name.starts_with(&grant.prefix)
            })
    }

    fn may_write_somewhere(&self) -> bool {
        self.admin || self.grants.iter().any(|grant| grant.right == Right::Write)
    }

    fn check(
        &self,
        right: Right,
        space: Space,
        name: &[u8],
        whole: &str,
    ) -> std::result::Result<(), String> {
        if self.may(right, space, name) {
            return Ok(());
        }
        let verb = match right {
            Right::Read => "read",
            Right::Write => "write",
        };
        Err(format!(
            "permission denied: {} may not {verb} {whole}{}{:?} in the {} space",
            self.name,
            if whole.is_empty() { "" } else { " " },
            String::from_utf8_lossy(name),
            space.name()
        ))
    }

    fn check_admin(&self, what: &str) -> std::result::Result<(), String> {
        if self.admin {
            return Ok(());
        }
        Err(format!(
            "permission denied: {} may not {what} (the admin role may)",
            self.name
        ))
    }

    /// Whether this identity may make the request; the error says what is missing.
    pub fn authorize(&self, op: &ClientOp) -> std::result::Result<(), String> {
        use Right::Read;
        match op {
            ClientOp::Write(request) => self.authorize_command(&request.command),
            ClientOp::Get { key, .. } => self.check(Read, Space::Kv, key, "key"),
            ClientOp::Range { prefix, .. } => self.check(Read, Space::Kv, prefix, "keys under"),
            ClientOp::Watch { space, prefix, .. } => {
                self.check(Read, *space, prefix, "(watch) names under")
            }
            ClientOp::Query { query, .. } => match query {
                Query::Holders { space, name } => self.check(Read, *space, name, "holders of"),
                Query::Members { group } => self.check(Read, Space::Group, group, "members of"),
                Query::Queue { queue } => self.check(Read, Space::Queue, queue, "queue"),
                Query::Barrier { name } => self.check(Read, Space::Barrier, name, "barrier"),
                Query::Counter { name } => self.check(Read, Space::Counter, name, "counter"),
                Query::Session { session } => {
                    self.check(Read, Space::Session, &session.to_be_bytes(), "session")
                }
            },
            ClientOp::KeepAlive { .. } => self.check_sessions(),
            ClientOp::Status | ClientOp::Unwatch { .. } => Ok(()),
            ClientOp::Membership(MembershipOp::List) => Ok(()),
            // Members manage the membership too: a joining member adds and promotes itself.
            ClientOp::Membership(_) if self.member => Ok(()),
            ClientOp::Membership(_) => self.check_admin("change the membership"),
            ClientOp::Snapshot(_) => self.check_admin("save a snapshot"),
        }
    }

    fn check_sessions(&self) -> std::result::Result<(), String> {
        if self.may_write_somewhere() {
            return Ok(());
        }
        Err(format!(
            "permission denied: {} may not hold sessions (that needs a write right)",
            self.name
        ))
    }

    fn authorize_command(&self, command: &Command) -> std::result::Result<(), String> {
        use Right::{Read, Write};
        match command {
            Command::Put { key, .. }
            | Command::Delete { key }
            | Command::CompareAndSwap { key, .. } => self.check(Write, Space::Kv, key, "key"),
            Command::Txn {
                conditions,
                success,
                failure,
            } => {
                for condition in conditions {
                    let space = match condition.compare {
                        Compare::LockToken(_) => Space::Lock,
                        Compare::LeaderToken(_) => Space::Election,
                        _ => Space::Kv,
                    };
                    self.check(Read, space, &condition.key, "key")?;
                }
                for op in success.iter().chain(failure) {
                    let (Op::Put { key, .. } | Op::Delete { key }) = op;
                    self.check(Write, Space::Kv, key, "key")?;
                }
                Ok(())
            }
            Command::CreateSession { .. } | Command::CloseSession { .. } => self.check_sessions(),
            Command::ExpireSessions { .. } => self.check_admin("expire sessions"),
            Command::Acquire { space, name, .. } | Command::Release { space, name, .. } => {
                self.check(Write, *space, name, "")
            }
            Command::Proclaim { name, .. } => self.check(Write, Space::Election, name, ""),
            Command::Join { group, .. } | Command::Leave { group, .. } => {
                self.check(Write, Space::Group, group, "")
            }
            Command::Enqueue { queue, .. }
            | Command::Claim { queue, .. }
            | Command::Ack { queue, .. }
            | Command::Requeue { queue, .. } => self.check(Write, Space::Queue, queue, ""),
            Command::Enter { barrier, .. } | Command::Exit { barrier, .. } => {
                self.check(Write, Space::Barrier, barrier, "")
            }
            Command::Add { counter, .. } => self.check(Write, Space::Counter, counter, ""),
        }
    }
}

/// A shared-secret token: its `Debug` never shows it, so it cannot reach a log by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The parsed access file: credentials to identities and their rights. Its `Debug` shows
/// the identities, never the tokens.
#[derive(Clone, Default)]
pub struct AccessRules {
    tokens: Vec<(Vec<u8>, Arc<Rights>)>,
    certificates: BTreeMap<String, Arc<Rights>>,
}

impl std::fmt::Debug for AccessRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by_token: Vec<&str> = self.tokens.iter().map(|(_, r)| r.name.as_str()).collect();
        f.debug_struct("AccessRules")
            .field("token_users", &by_token)
            .field("certificate_users", &self.certificates.keys())
            .finish()
    }
}

impl AccessRules {
    /// Reads and checks an access file (errors name the line).
    pub fn load(path: &Path) -> Result<AccessRules> {
        let metadata = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading the access file {}", path.display()), &e))?;
        if metadata.len() > ACCESS_FILE_BYTES_MAX as u64 {
            return Err(Error::InvalidConfig(format!(
                "the access file {} is over {ACCESS_FILE_BYTES_MAX} bytes",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading the access file {}", path.display()), &e))?;
        AccessRules::parse(&text)
            .map_err(|why| Error::InvalidConfig(format!("access file {}: {why}", path.display())))
    }

    /// Parses the text of an access file.
    pub fn parse(text: &str) -> std::result::Result<AccessRules, String> {
        let mut roles: BTreeMap<String, Rights> = BTreeMap::new();
        for (name, grant) in [
            ("read-only", "read:*:"),
            ("read-write", "write:*:"),
            ("admin", "admin"),
            ("member", "member"),
        ] {
            let mut rights = Rights::default();
            add_grant(&mut rights, grant)?;
            roles.insert(name.into(), rights);
        }
        let mut users: Vec<(usize, Vec<&str>)> = Vec::new();
        let mut grants = 0usize;
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let words: Vec<&str> = line
                .split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let at = |why: String| format!("line {number}: {why}");
            match words.first() {
                None => continue,
                Some(&"role") => {
                    let [_, name, rest @ ..] = words.as_slice() else {
                        return Err(at("write `role <name> <grant>...`".into()));
                    };
                    if roles.contains_key(*name) {
                        return Err(at(format!("role {name} is defined already")));
                    }
                    let mut rights = Rights::default();
                    for grant in rest {
                        grants += 1;
                        if grants > ACCESS_GRANTS_MAX {
                            return Err(at(format!("more than {ACCESS_GRANTS_MAX} grants")));
                        }
                        add_grant(&mut rights, grant).map_err(at)?;
                    }
                    roles.insert(name.to_string(), rights);
                }
                Some(&"user") => users.push((number, words)),
                Some(other) => {
                    return Err(at(format!(
                        "unknown statement {other:?} (use `role` or `user`)"
                    )))
                }
            }
        }
        let mut rules = AccessRules::default();
        let mut names = std::collections::BTreeSet::new();
        for (number, words) in users {
            let at = |why: String| format!("line {number}: {why}");
            let [_, name, credential, role_list] = words.as_slice() else {
                return Err(at(
                    "write `user <name> <credential> <role>[,<role>...]`".into()
                ));
            };
            if !names.insert(name.to_string()) {
                return Err(at(format!("user {name} is defined already")));
            }
            let mut rights = Rights {
                name: name.to_string(),
                ..Rights::default()
            };
            for role in role_list.split(',') {
                let Some(granted) = roles.get(role) else {
                    return Err(at(format!("unknown role {role:?}")));
                };
                rights.grants.extend(granted.grants.iter().cloned());
                rights.admin |= granted.admin;
                rights.member |= granted.member;
            }
            let rights = Arc::new(rights);
            if let Some(token) = credential.strip_prefix("token:") {
                if token.len() < TOKEN_CHARS_MIN || token.len() > TOKEN_BYTES_MAX {
                    return Err(at(format!(
                        "a token must have {TOKEN_CHARS_MIN} to {TOKEN_BYTES_MAX} characters"
                    )));
                }
                if rules.tokens.iter().any(|(t, _)| t == token.as_bytes()) {
                    return Err(at("this token is given to another user already".into()));
                }
                rules.tokens.push((token.as_bytes().to_vec(), rights));
            } else if let Some(common_name) = credential.strip_prefix("cert:") {
                if common_name.is_empty() || rules.certificates.contains_key(common_name) {
                    return Err(at(format!(
                        "certificate name {common_name:?} is empty or given already"
                    )));
                }
                rules.certificates.insert(common_name.to_string(), rights);
            } else {
                return Err(at(
                    "a credential is `token:<secret>` or `cert:<common name>`".into(),
                ));
            }
        }
        Ok(rules)
    }

    /// The rights of a caller that presented `token` (may be empty) over a connection whose
    /// client certificate has `certificate_name`; `None` when neither identifies anyone.
    /// A certificate wins over a token.
    pub fn identify(&self, token: &[u8], certificate_name: Option<&str>) -> Option<Arc<Rights>> {
        if let Some(rights) = certificate_name.and_then(|name| self.certificates.get(name)) {
            return Some(rights.clone());
        }
        if token.is_empty() {
            return None;
        }
        // Every token is compared in full, so the time taken does not tell how much of a
        // guess was right.
        let mut found = None;
        for (known, rights) in &self.tokens {
            if constant_time_eq(known, token) {
                found = Some(rights.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn add_grant(rights: &mut Rights, grant: &str) -> std::result::Result<(), String> {
    match grant {
        "admin" => rights.admin = true,
        "member" => rights.member = true,
        _ => {
            let mut parts = grant.splitn(3, ':');
            let (Some(right), Some(space), Some(prefix)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "grant {grant:?}: write read:<space>:<prefix>, write:<space>:<prefix>, admin \
                     or member"
                ));
            };
            let right = match right {
                "read" => Right::Read,
                "write" => Right::Write,
                other => return Err(format!("grant {grant:?}: unknown right {other:?}")),
            };
            let space = match space {
                "*" => None,
                name => Some(
                    Space::from_name(name)
                        .ok_or_else(|| format!("grant {grant:?}: unknown space {name:?}"))?,
                ),
            };
            rights.grants.push(Grant {
                right,
                space,
                prefix: prefix.as_bytes().to_vec(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Request;

    const FILE: &str = "
        # an application and an operator
        role app write:kv:app/ read:kv:shared/ write:lock:app/ read:*:public/
        user alice token:alice-secret-0123456789 app
        user bob cert:bob.example read-only
        user ops token:ops-secret-0123456789ab admin
        user n1 cert:node1 member
    ";

    fn put(key: &str) -> ClientOp {
        ClientOp::Write(Request {
            client: 1,
            sequence: 1,
            command: Command::Put {
                key: key.into(),
                value: b"v".to_vec(),
            },
        })
    }

    #[test]
    fn rights_follow_roles_prefixes_and_spaces() {
        let rules = AccessRules::parse(FILE).unwrap();
        let alice = rules.identify(b"alice-secret-0123456789", None).unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.authorize(&put("app/x")).is_ok());
        let denied = alice.authorize(&put("other/x")).unwrap_err();
        assert!(
            denied.contains("alice may not write key \"other/x\""),
            "{denied}"
        );
        let get = |key: &str| ClientOp::Get {
            key: key.into(),
            serializable: false,
        };
        assert!(alice.authorize(&get("shared/a")).is_ok());
        assert!(alice.authorize(&get("public/a")).is_ok());
        assert!(alice.authorize(&put("shared/a")).is_err());
        let watch = |space, prefix: &str| ClientOp::Watch {
            watch: 1,
            space,
            prefix: prefix.into(),
            from: 0,
        };
        assert!(alice.authorize(&watch(Space::Kv, "app/sub/")).is_ok());
        assert!(alice.authorize(&watch(Space::Kv, "")).is_err());
        assert!(alice.authorize(&watch(Space::Queue, "public/q")).is_ok());
        assert!(alice.authorize(&watch(Space::Queue, "app/")).is_err());
        assert!(alice
            .authorize(&ClientOp::Snapshot(
                super::super::wire::SnapshotOp::Prepare { after: 0 }
            ))
            .is_err());

        let bob = rules.identify(b"", Some("bob.example")).unwrap();
        assert!(bob.authorize(&get("anything")).is_ok());
        assert!(bob.authorize(&put("anything")).is_err());
        assert!(bob
            .authorize(&ClientOp::KeepAlive { sessions: vec![1] })
            .is_err());
        assert!(!bob.is_member());

        let ops = rules.identify(b"ops-secret-0123456789ab", None).unwrap();
        assert!(ops.authorize(&put("anything")).is_ok());
        assert!(ops
            .authorize(&ClientOp::Membership(MembershipOp::Remove { id: 2 }))
            .is_ok());
        assert!(rules.identify(b"", Some("node1")).unwrap().is_member());
        assert!(rules.identify(b"alice-secret-012345678", None).is_none());
        assert!(rules.identify(b"", Some("mallory")).is_none());
        assert!(rules.identify(b"", None).is_none());
    }

    #[test]
    fn mistakes_in_the_file_name_their_line() {
        for (text, expected) in [
            ("role r bogus", "line 1: grant \"bogus\""),
            (
                "\nuser a token:short read-only",
                "line 2: a token must have",
            ),
            (
                "user a token:0123456789abcdefgh nosuch",
                "unknown role \"nosuch\"",
            ),
            ("role r read:nowhere:x", "unknown space \"nowhere\""),
            ("group x", "unknown statement"),
            ("user a password:x read-only", "a credential is"),
            (
                "user a cert:x read-only\nuser a cert:y read-only",
                "user a is defined already",
            ),
            ("role admin read:*:", "role admin is defined already"),
        ] {
            let why = AccessRules::parse(text).unwrap_err();
            assert!(why.contains(expected), "{text:?}: {why}");
        }
    }
}
