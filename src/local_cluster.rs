//! A cluster of `accord server` processes on loopback, each with its own data directory under
//! one temporary directory: what `accord demo`, `accord bench local` and the multi-process
//! tests run. Dropping it kills every process and removes the directory.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::{Client, ClientConfig, Status};
use crate::error::{Error, Result};
use crate::runtime::tls::TlsFiles;
use crate::types::NodeId;

/// Servers one local cluster may run.
const LOCAL_NODES_MAX: usize = 7;

/// A running local cluster.
pub struct LocalCluster {
    binary: PathBuf,
    dir: PathBuf,
    members: BTreeMap<NodeId, SocketAddr>,
    processes: BTreeMap<NodeId, Child>,
    /// Members added to the running cluster (started with `--join` instead of `--peers`).
    joined: std::collections::BTreeSet<NodeId>,
    /// Extra arguments every server gets (tick length, election timeout…).
    pub server_args: Vec<String>,
    /// With TLS: the CA, and the certificate clients of this cluster present (`None`:
    /// plaintext on loopback).
    client_tls: Option<TlsFiles>,
}

/// Free loopback ports, found by binding port 0 (the port is released before the server
/// binds it; a collision in between is possible but unlikely on a test machine).
fn free_ports(count: usize) -> Result<Vec<SocketAddr>> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("finding free loopback ports", &e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map_err(|e| Error::io("reading a port", &e)))
        .collect()
}

impl LocalCluster {
    /// Starts `nodes` servers using the `accord` executable at `binary`, with data under a
    /// fresh directory named after `name` in the system's temporary directory.
    pub fn start(
        binary: &Path,
        nodes: usize,
        name: &str,
        server_args: &[&str],
    ) -> Result<LocalCluster> {
        LocalCluster::start_with(binary, nodes, name, server_args, false)
    }

    /// Like [`LocalCluster::start`]; with `tls`, a throwaway CA signs a certificate for each
    /// member (`node<id>`) and one for clients (`client`), and every connection uses mutual
    /// TLS.
    pub fn start_with(
        binary: &Path,
        nodes: usize,
        name: &str,
        server_args: &[&str],
        tls: bool,
    ) -> Result<LocalCluster> {
        if nodes == 0 || nodes > LOCAL_NODES_MAX {
            return Err(Error::InvalidConfig(format!("1..={LOCAL_NODES_MAX} nodes")));
        }
        let dir = std::env::temp_dir().join(format!("accord-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
        let members = free_ports(nodes)?
            .into_iter()
            .enumerate()
            .map(|(i, address)| (i as NodeId + 1, address))
            .collect();
        let mut cluster = LocalCluster {
            binary: binary.to_path_buf(),
            dir,
            members,
            processes: BTreeMap::new(),
            joined: std::collections::BTreeSet::new(),
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            client_tls: None,
        };
        if tls {
            let tls_dir = cluster.dir.join("tls");
            // Up to LOCAL_NODES_MAX members, joined ones included.
            let mut names: Vec<String> = (1..=LOCAL_NODES_MAX)
                .map(|id| format!("node{id}"))
                .collect();
            names.push("client".into());
            let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
            crate::runtime::tls::write_certificates(&tls_dir, &hosts, &names)?;
            cluster.client_tls = Some(TlsFiles {
                ca: tls_dir.join(crate::runtime::tls::CA_FILE),
                cert: Some(tls_dir.join("client.pem")),
                key: Some(tls_dir.join("client-key.pem")),
            });
        }
        for id in 1..=nodes as NodeId {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// The directory holding every member's data and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Member ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// Member `id`'s address.
    pub fn address(&self, id: NodeId) -> Option<SocketAddr> {
        self.members.get(&id).copied()
    }

    /// Every member's address, comma-separated (for `--endpoints`).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.values().map(|a| a.to_string()).collect()
    }

    /// The TLS files a client of this cluster uses (`None`: the cluster is plaintext).
    pub fn client_tls(&self) -> Option<&TlsFiles> {
        self.client_tls.as_ref()
    }

    /// A client configuration for `endpoints` of this cluster (with its TLS files).
    pub fn client_config(&self, endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            tls: self.client_tls.clone(),
            ..ClientConfig::new(endpoints)
        }
    }

    /// A client of the whole cluster.
    pub fn client(&self) -> Result<Client> {
        Client::connect(self.client_config(self.endpoints()))
    }

    /// A client that talks to member `id` first.
    pub fn client_of(&self, id: NodeId) -> Result<Client> {
        let first = self.members[&id].to_string();
        let mut endpoints = vec![first.clone()];
        endpoints.extend(self.endpoints().into_iter().filter(|e| *e != first));
        Client::connect(self.client_config(endpoints))
    }

    /// Starts (or restarts) member `id`'s process.
    pub fn spawn(&mut self, id: NodeId) -> Result<()> {
        self.spawn_with(id, &[])
    }

    /// How member `id` secures its connections: its certificate, or plaintext.
    fn security_args(&self, id: NodeId) -> Vec<String> {
        let Some(tls) = &self.client_tls else {
            return vec!["--plaintext".into()];
        };
        let dir = tls.ca.parent().unwrap_or(Path::new("."));
        let file = |name: String| dir.join(name).display().to_string();
        vec![
            "--tls-ca".into(),
            tls.ca.display().to_string(),
            "--tls-cert".into(),
            file(format!("node{id}.pem")),
            "--tls-key".into(),
            file(format!("node{id}-key.pem")),
        ]
    }

    /// Member `id`'s data directory.
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node{id}"))
    }

    /// Waits up to `timeout` for member `id`'s process to exit; returns its exit status.
    pub fn wait_exit(&mut self, id: NodeId, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            let child = self.processes.get_mut(&id)?;
            if let Ok(Some(status)) = child.try_wait() {
                self.processes.remove(&id);
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Starts a new member `id` on a free port and has it join the running cluster
    /// (`accord server --join`): it is added as a learner, catches up and asks to be
    /// promoted.
    pub fn join(&mut self, id: NodeId, extra: &[&str]) -> Result<()> {
        if self.members.contains_key(&id) {
            return Err(Error::InvalidConfig(format!("member {id} exists already")));
        }
        let address = free_ports(1)?[0];
        self.members.insert(id, address);
        self.joined.insert(id);
        self.spawn_with(id, extra)
    }

    /// Forgets member `id` (removed from the membership): kills its process if it runs, and
    /// leaves it out of the endpoints from now on.
    pub fn forget(&mut self, id: NodeId) {
        self.kill(id);
        self.members.remove(&id);
        self.joined.remove(&id);
    }

    /// Starts (or restarts) member `id`'s process with extra arguments (such as `--rejoin`).
    pub fn spawn_with(&mut self, id: NodeId, extra: &[&str]) -> Result<()> {
        let address = self.members[&id];
        let others = self.members.iter().filter(|(&other, _)| other != id);
        let membership: Vec<String> = if self.joined.contains(&id) {
            let endpoints: Vec<String> = others.map(|(_, a)| a.to_string()).collect();
            vec!["--join".into(), endpoints.join(",")]
        } else {
            let peers: Vec<String> = others.map(|(other, a)| format!("{other}={a}")).collect();
            vec!["--peers".into(), peers.join(",")]
        };
        let log_path = self.dir.join(format!("node{id}.log"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(format!("opening {}", log_path.display()), &e))?;
        let child = Command::new(&self.binary)
            .arg("server")
            .args(["--id", &id.to_string(), "--listen", &address.to_string()])
            .args(&membership)
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(&self.server_args)
            .args(self.security_args(id))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", self.binary.display()), &e))?;
        self.processes.insert(id, child);
        Ok(())
    }

    /// The process id of member `id`, if running.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.processes.get(&id).map(Child::id)
    }

    /// Sends `signal` to member `id`'s process.
    pub fn signal(&self, id: NodeId, signal: i32) {
        if let Some(pid) = self.pid(id) {
            // SAFETY: a signal to our own child process; no memory is involved.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Kills member `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: NodeId) {
        self.signal(id, libc::SIGKILL);
        if let Some(mut child) = self.processes.remove(&id) {
            let _ = child.wait();
        }
    }

    /// Each member's status, as far as it answers within `timeout`.
    pub fn statuses(&self, timeout: Duration) -> BTreeMap<NodeId, Status> {
        let mut found = BTreeMap::new();
        for (&id, address) in &self.members {
            let config = ClientConfig {
                timeout,
                ..self.client_config(vec![address.to_string()])
            };
            if let Ok(status) =
                Client::connect(config).and_then(|c| c.status_of(&address.to_string()))
            {
                found.insert(id, status);
            }
        }
        found
    }

    /// Waits until a member other than `not` leads and a majority agrees on it; returns it.
    pub fn wait_for_leader(&self, not: Option<NodeId>, timeout: Duration) -> Result<(NodeId, u64)> {
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            let statuses = self.statuses(Duration::from_millis(300));
            let leader = statuses
                .values()
                .filter(|s| s.role == "leader" && Some(s.id) != not)
                .max_by_key(|s| s.term);
            if let Some(leader) = leader {
                let agreeing = statuses.values().filter(|s| s.leader == leader.id).count();
                if agreeing > self.members.len() / 2 {
                    return Ok((leader.id, leader.term));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(Error::Busy("no leader emerged in time"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.processes) {
            // SAFETY: a signal to our own child process (it may be stopped: SIGKILL works).
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
