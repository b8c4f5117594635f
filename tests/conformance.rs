//! The cross-language conformance scenarios (`tests/conformance/*.scn`; the format is in
//! `tests/conformance/README.md`), run here through the Rust API and through the C ABI (by
//! `tests/conformance/runner.c`). The Python and Go suites run the same files.
//!
//! The C runner links `target/release/libaccord.so`: `make test` builds it first.

mod common;
use common::{library_dir, root};

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accord::api::{
    Claim, Client, Compare, Condition, Event, EventKind, Leadership, Lock, Membership, Node,
    NodeConfig, Op, Session, SessionStatus, Space, WatchItem, WatchStream,
};
use accord::Error;

fn scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/conformance"))
        .expect("tests/conformance")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in tests/conformance");
    files
}

/// One step: `op args -> expected`.
struct Step {
    line: usize,
    text: String,
    op: String,
    args: Vec<String>,
    expected: Vec<String>,
}

fn token(raw: &str) -> String {
    if raw == "\"\"" {
        String::new()
    } else {
        raw.to_string()
    }
}

fn parse(path: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut steps = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (call, expected) = trimmed
            .split_once("->")
            .unwrap_or_else(|| panic!("{}:{}: no `->` in {trimmed:?}", path.display(), i + 1));
        let mut words = call.split_whitespace().map(token);
        let op = words
            .next()
            .unwrap_or_else(|| panic!("{}:{}: no step", path.display(), i + 1));
        steps.push(Step {
            line: i + 1,
            text: trimmed.to_string(),
            op,
            args: words.collect(),
            expected: expected.split_whitespace().map(token).collect(),
        });
    }
    steps
}

/// Variables bound by expected results and used by later arguments.
#[derive(Default)]
struct Bindings(HashMap<String, String>);

impl Bindings {
    fn substitute(&self, args: &[String]) -> Result<Vec<String>, String> {
        args.iter()
            .map(|a| match a.strip_prefix('$') {
                Some(name) => self
                    .0
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("${name} is not bound")),
                None => Ok(a.clone()),
            })
            .collect()
    }

    fn check(&mut self, expected: &[String], actual: &[String]) -> Result<(), String> {
        if expected.len() != actual.len() {
            return Err("a different number of tokens".into());
        }
        for (want, got) in expected.iter().zip(actual) {
            if want == "*" {
                continue;
            }
            let Some(pattern) = want.strip_prefix('$') else {
                if want != got {
                    return Err(format!("{got:?} where {want:?} was expected"));
                }
                continue;
            };
            let (name, above) = match pattern.split_once(">$") {
                Some((name, above)) => (name, Some(above)),
                None => (pattern, None),
            };
            if let Some(above) = above {
                let floor: i128 = self
                    .0
                    .get(above)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("${above} is not bound to an integer"))?;
                let value: i128 = got
                    .parse()
                    .map_err(|_| format!("{got:?} is not an integer"))?;
                if value <= floor {
                    return Err(format!("{value} is not above ${above} = {floor}"));
                }
            }
            match self.0.get(name) {
                Some(bound) if bound != got => {
                    return Err(format!("{got:?} is not ${name} = {bound:?}"));
                }
                Some(_) => {}
                None => {
                    self.0.insert(name.to_string(), got.clone());
                }
            }
        }
        Ok(())
    }
}

/// The result kind a failed call reports: the C result code's name, lower case, without
/// `ACCORD_ERR_` (the same mapping as the C ABI's).
fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::InvalidArgument(_) | Error::EntryTooLarge { .. } => "invalid_argument",
        Error::Timeout(_) => "timeout",
        Error::Cancelled => "cancelled",
        Error::NotLeader { .. } | Error::Busy(_) | Error::TransferInProgress => "unavailable",
        Error::Rejected(_) => "rejected",
        Error::SessionLost(_) => "session_lost",
        Error::PermissionDenied(_) => "permission_denied",
        Error::Io { .. } | Error::StorageFailed(_) => "io",
        Error::Corruption { .. } | Error::Corrupt(_) => "corruption",
        Error::DataDirLocked { .. } => "locked",
        Error::InvalidConfig(_) | Error::UnknownNode(_) => "config",
        Error::Protocol(_) | Error::InvalidMessage(_) => "protocol",
        Error::Compacted { .. } | Error::Unavailable(_) => "compacted",
    }
}

/// What a handle name stands for.
enum Held {
    Lock(Lock),
    Leadership(Leadership),
    Membership(Membership),
    Claim(Claim),
    /// Released, resigned, left or settled.
    Done,
}

struct Watch {
    stream: WatchStream,
    pending: VecDeque<Event>,
}

/// A scenario's world: one member, a client of it, and the handles the steps named.
struct World {
    node: Option<Node>,
    client: Client,
    sessions: HashMap<String, Session>,
    held: HashMap<String, Held>,
    watches: HashMap<String, Watch>,
}

fn ms(text: &str) -> Duration {
    Duration::from_millis(text.parse().expect("milliseconds"))
}

fn int<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a number"))
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses the arguments of `txn` (see the README) into conditions and both branches.
fn parse_txn(args: &[String]) -> (Vec<Condition>, Vec<Op>, Vec<Op>) {
    let then = args.iter().position(|a| a == "then").expect("txn: then");
    let otherwise = args.iter().position(|a| a == "else").expect("txn: else");
    let groups = |part: &[String]| -> Vec<Vec<String>> {
        part.split(|a| a == ",")
            .filter(|g| !g.is_empty())
            .map(|g| g.to_vec())
            .collect()
    };
    let conditions = groups(&args[..then])
        .into_iter()
        .map(|c| {
            let key = c[1].as_bytes().to_vec();
            let compare = match c[0].as_str() {
                "value" => Compare::Value(c[2].as_bytes().to_vec()),
                "exists" => Compare::Exists(true),
                "absent" => Compare::Exists(false),
                "version" => Compare::Version(int(&c[2])),
                "mod" => Compare::ModRevision(int(&c[2])),
                "lock" => Compare::LockToken(int(&c[2])),
                "leader" => Compare::LeaderToken(int(&c[2])),
                other => panic!("txn: unknown comparison {other}"),
            };
            Condition { key, compare }
        })
        .collect();
    let ops = |part: &[String]| -> Vec<Op> {
        groups(part)
            .into_iter()
            .map(|o| match o[0].as_str() {
                "put" => Op::Put {
                    key: o[1].as_bytes().to_vec(),
                    value: o[2].as_bytes().to_vec(),
                },
                "delete" => Op::Delete {
                    key: o[1].as_bytes().to_vec(),
                },
                other => panic!("txn: unknown operation {other}"),
            })
            .collect()
    };
    (
        conditions,
        ops(&args[then + 1..otherwise]),
        ops(&args[otherwise + 1..]),
    )
}

fn state_name(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Held => "held",
        SessionStatus::Suspect => "suspect",
        SessionStatus::Lost => "lost",
    }
}

impl World {
    fn start(dir: &Path) -> World {
        let address: SocketAddr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut config = NodeConfig::new(1, address, [(1, address)].into(), dir.to_path_buf());
        config.tick = Duration::from_millis(20);
        let node = Node::start(config).expect("a single-member cluster starts");
        let client = node.client().unwrap();
        World {
            node: Some(node),
            client,
            sessions: HashMap::new(),
            held: HashMap::new(),
            watches: HashMap::new(),
        }
    }

    fn session(&self, name: &str) -> &Session {
        self.sessions
            .get(name)
            .unwrap_or_else(|| panic!("no session {name}"))
    }

    fn hold(&mut self, name: &str, held: accord::Result<Held>) -> Result<Vec<String>, Error> {
        let held = held?;
        let token = match &held {
            Held::Lock(lock) => lock.token(),
            Held::Leadership(leadership) => leadership.token(),
            _ => 0,
        };
        self.held.insert(name.to_string(), held);
        Ok(vec!["token".into(), token.to_string()])
    }

    fn take(&mut self, name: &str) -> Held {
        std::mem::replace(
            self.held
                .get_mut(name)
                .unwrap_or_else(|| panic!("no handle {name}")),
            Held::Done,
        )
    }

    /// Runs one step; the result's tokens, or the error it failed with.
    fn run(&mut self, op: &str, a: &[String]) -> Result<Vec<String>, Error> {
        let b = |i: usize| a[i].as_bytes();
        let ok = || Ok(words(&["ok"]));
        match op {
            "put" => Ok(vec!["rev".into(), self.client.put(b(0), b(1))?.to_string()]),
            "get" => Ok(match self.client.get(b(0))?.0 {
                Some(kv) => vec!["value".into(), text(&kv.value)],
                None => words(&["absent"]),
            }),
            "delete" => Ok(words(&[if self.client.delete(b(0))?.0 {
                "deleted"
            } else {
                "absent"
            }])),
            "range" => {
                let (kvs, _, _) = self.client.range(b(0), 0)?;
                let mut out = vec!["kvs".into(), kvs.len().to_string()];
                for kv in kvs {
                    out.push(text(&kv.key));
                    out.push(text(&kv.value));
                }
                Ok(out)
            }
            "cas" => {
                let expected = (a[1] != "-").then(|| b(1));
                let (swapped, _) = self.client.compare_and_swap(b(0), expected, b(2))?;
                Ok(words(&[if swapped { "swapped" } else { "unchanged" }]))
            }
            "txn" => {
                let (conditions, success, failure) = parse_txn(a);
                let (succeeded, _) = self.client.txn(conditions, success, failure)?;
                Ok(words(&[if succeeded { "succeeded" } else { "failed" }]))
            }
            "session" => {
                let session = accord::api::session(&self.client, ms(&a[1]))?;
                self.sessions.insert(a[0].clone(), session);
                ok()
            }
            "state" => Ok(words(&[state_name(self.session(&a[0]).status())])),
            "await-lost" => {
                let session = self.session(&a[0]);
                session.wait_lost(ms(&a[1]));
                Ok(words(&[state_name(session.status())]))
            }
            "close" => {
                self.session(&a[0]).end()?;
                ok()
            }
            "lock" | "rlock" | "wlock" => {
                let session = self.session(&a[0]);
                let lock = match op {
                    "lock" => session.lock(b(2), ms(&a[3])),
                    "rlock" => session.read_lock(b(2), ms(&a[3])),
                    _ => session.write_lock(b(2), ms(&a[3])),
                };
                self.hold(&a[1], lock.map(Held::Lock))
            }
            "semaphore" => {
                let permit = self
                    .session(&a[0])
                    .acquire_permit(b(2), int(&a[3]), ms(&a[4]));
                self.hold(&a[1], permit.map(Held::Lock))
            }
            "campaign" => {
                let leadership = self.session(&a[0]).campaign(b(2), b(3), ms(&a[4]));
                self.hold(&a[1], leadership.map(Held::Leadership))
            }
            "proclaim" => match self.held.get(&a[0]) {
                Some(Held::Leadership(leadership)) => leadership.proclaim(b(1)).and_then(|_| ok()),
                _ => panic!("{} is not a leadership", a[0]),
            },
            "resign" => match self.take(&a[0]) {
                Held::Leadership(leadership) => leadership.resign().and_then(|_| ok()),
                _ => panic!("{} is not a leadership", a[0]),
            },
            "leader" => Ok(match self.client.leader(b(0))? {
                Some(holder) => vec![
                    "leader".into(),
                    text(&holder.value),
                    "token".into(),
                    holder.token.to_string(),
                ],
                None => words(&["none"]),
            }),
            "join" => {
                let membership = self.session(&a[0]).join(b(2), b(3), b(4))?;
                self.held.insert(a[1].clone(), Held::Membership(membership));
                ok()
            }
            "leave" => match self.take(&a[0]) {
                Held::Membership(membership) => membership.leave().and_then(|_| ok()),
                _ => panic!("{} is not a membership", a[0]),
            },
            "members" => {
                let (members, _) = self.client.members(b(0))?;
                let mut out = vec!["members".into(), members.len().to_string()];
                for member in members {
                    out.push(text(&member.id));
                    out.push(text(&member.metadata));
                }
                Ok(out)
            }
            "enqueue" => Ok(vec![
                "item".into(),
                self.client.enqueue(b(0), b(1))?.to_string(),
            ]),
            "claim" => {
                let claim = self.session(&a[0]).claim(b(2), ms(&a[3]))?;
                let out = vec![
                    "item".into(),
                    claim.item.to_string(),
                    "payload".into(),
                    text(&claim.payload),
                ];
                self.held.insert(a[1].clone(), Held::Claim(claim));
                Ok(out)
            }
            "ack" | "nack" => match self.take(&a[0]) {
                Held::Claim(claim) => if op == "ack" {
                    claim.ack()
                } else {
                    claim.release()
                }
                .and_then(|_| ok()),
                _ => panic!("{} is not a claim", a[0]),
            },
            "release" => match self.take(&a[0]) {
                Held::Lock(lock) => lock.release().and_then(|_| ok()),
                _ => panic!("{} is not a lock", a[0]),
            },
            "held" => {
                let held = match self.held.get(&a[0]) {
                    Some(Held::Lock(lock)) => lock.is_held(),
                    Some(Held::Leadership(leadership)) => leadership.is_leader(),
                    Some(Held::Claim(claim)) => claim.is_held(),
                    Some(Held::Done) => false,
                    _ => panic!("{} is not a lock, leadership or claim", a[0]),
                };
                Ok(words(&[if held { "true" } else { "false" }]))
            }
            "barrier" => {
                self.session(&a[0]).barrier(b(1), int(&a[2]), ms(&a[3]))?;
                ok()
            }
            "add" => Ok(vec![
                "value".into(),
                self.client.add(b(0), int(&a[1]))?.to_string(),
            ]),
            "counter" => Ok(vec!["value".into(), self.client.counter(b(0))?.to_string()]),
            "watch" => {
                let (stream, _) = self.client.watch(Space::Kv, b(1), int(&a[2]))?;
                self.watches.insert(
                    a[0].clone(),
                    Watch {
                        stream,
                        pending: VecDeque::new(),
                    },
                );
                ok()
            }
            "events" => {
                let watch = self
                    .watches
                    .get_mut(&a[0])
                    .unwrap_or_else(|| panic!("no watch {}", a[0]));
                let count: usize = int(&a[1]);
                let deadline = Instant::now() + ms(&a[2]);
                let mut out = Vec::new();
                let mut seen = 0;
                while seen < count {
                    if let Some(event) = watch.pending.pop_front() {
                        seen += 1;
                        let revision = event.revision.to_string();
                        match event.kind {
                            EventKind::Put => {
                                out.extend([
                                    "put".into(),
                                    text(&event.key),
                                    text(&event.value),
                                    revision,
                                ]);
                            }
                            _ => out.extend(["delete".into(), text(&event.key), revision]),
                        }
                        continue;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        out.push("timeout".into());
                        break;
                    }
                    match watch.stream.next(left)? {
                        Some((_, WatchItem::Events(events))) => watch.pending.extend(events),
                        Some((_, WatchItem::Compacted { .. })) => {
                            return Err(Error::Compacted { first_index: 0 })
                        }
                        Some((_, WatchItem::Cancelled(why))) => return Err(Error::Rejected(why)),
                        None => {}
                    }
                }
                Ok(out)
            }
            "stop-node" => {
                if let Some(node) = self.node.take() {
                    node.stop()?;
                }
                ok()
            }
            other => panic!("unknown step {other:?}"),
        }
    }
}

fn run_scenario(path: &Path) -> usize {
    let dir = std::env::temp_dir().join(format!(
        "accord-conformance-rust-{}-{}",
        path.file_stem().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut world = World::start(&dir);
    let mut bindings = Bindings::default();
    let steps = parse(path);
    for step in &steps {
        let args = bindings
            .substitute(&step.args)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), step.line));
        let actual = match world.run(&step.op, &args) {
            Ok(tokens) => tokens,
            Err(error) => vec!["error".into(), error_kind(&error).into()],
        };
        if let Err(why) = bindings.check(&step.expected, &actual) {
            panic!(
                "{}:{}: {}\n  got: {}\n  ({why})",
                path.display(),
                step.line,
                step.text,
                actual.join(" ")
            );
        }
    }
    drop(world);
    let _ = std::fs::remove_dir_all(&dir);
    steps.len()
}

#[test]
fn the_scenarios_pass_through_the_rust_api() {
    for path in scenarios() {
        let steps = run_scenario(&path);
        println!(
            "conformance rust {}: {steps} steps ok",
            path.file_name().unwrap().to_string_lossy()
        );
    }
}

#[test]
fn the_scenarios_pass_through_the_c_abi() {
    let dir = std::env::temp_dir().join(format!("accord-conformance-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let library = library_dir();
    let program = dir.join("runner");
    let compiled = Command::new("cc")
        .args(["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-D_DEFAULT_SOURCE")
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/conformance/runner.c"))
        .arg("-L")
        .arg(&library)
        .args(["-laccord", "-lpthread"])
        .arg(format!("-Wl,-rpath,{}", library.display()))
        .arg("-o")
        .arg(&program)
        .output()
        .expect("cc runs");
    assert!(
        compiled.status.success(),
        "compiling runner.c:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    for path in scenarios() {
        let data = dir.join(path.file_stem().unwrap());
        let output = Command::new(&program)
            .arg(&path)
            .arg(&data)
            .output()
            .expect("the C runner runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "C runner: {text}");
        print!("{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
