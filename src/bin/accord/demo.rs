//! `accord demo`: a three-member cluster as three processes on loopback, a leader killed with
//! SIGKILL, and proof that no acknowledged write was lost.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use accord::local_cluster::LocalCluster;

use crate::args::Args;

const HELP: &str = "\
usage: accord demo [--keys N]

Starts three accord servers on loopback (data in a temporary directory), shows the leader,
writes N keys (default 100) and reads them back, kills the leader with SIGKILL, shows the new
leader taking over, checks every acknowledged write is still there, restarts the killed
member and waits for it to catch up, then stops everything and removes the directory.
Exits 0 when all of that went well.
";

fn step(text: impl std::fmt::Display) {
    println!("==> {text}");
}

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let keys: u64 = args.get("keys", 100)?;
    args.finish()?;
    if !(1..=100_000).contains(&keys) {
        return Err("--keys must be between 1 and 100000".into());
    }
    let binary = std::env::current_exe().map_err(|e| format!("finding the accord binary: {e}"))?;
    let fail = |e: accord::Error| e.to_string();
    let started = Instant::now();
    step("starting 3 accord servers on loopback, with mutual TLS from a throwaway CA");
    let mut cluster = LocalCluster::start_with(&binary, 3, "demo", &[], true).map_err(fail)?;
    for id in cluster.ids() {
        println!(
            "    node {id}: {} (pid {})",
            cluster
                .address(id)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            cluster.pid(id).unwrap_or(0)
        );
    }
    println!("    data and logs in {}", cluster.dir().display());
    println!(
        "    certificates in {} (made like `accord certs` does)",
        cluster.dir().join("tls").display()
    );
    let (leader, term) = cluster
        .wait_for_leader(None, Duration::from_secs(10))
        .map_err(fail)?;
    step(format!(
        "node {leader} was elected leader (term {term}) after {} ms",
        started.elapsed().as_millis()
    ));
    let client = cluster.client().map_err(fail)?;
    step(format!(
        "writing {keys} keys through any member; each is acknowledged once durable on a majority"
    ));
    let write_started = Instant::now();
    for i in 0..keys {
        client
            .put(
                format!("demo/key-{i:05}").as_bytes(),
                format!("value {i}").as_bytes(),
            )
            .map_err(fail)?;
    }
    println!(
        "    {keys} writes in {} ms",
        write_started.elapsed().as_millis()
    );
    let (value, revision) = client.get(b"demo/key-00000").map_err(fail)?;
    println!(
        "    demo/key-00000 = {:?} (linearizable read at revision {revision})",
        value.map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    );
    step(format!("killing the leader, node {leader}, with SIGKILL"));
    let killed_at = Instant::now();
    cluster.kill(leader);
    client
        .put(b"demo/after-failover", b"written")
        .map_err(fail)?;
    let failover_ms = killed_at.elapsed().as_millis();
    let (new_leader, new_term) = cluster
        .wait_for_leader(Some(leader), Duration::from_secs(10))
        .map_err(fail)?;
    step(format!(
        "node {new_leader} took over (term {new_term}); the first write after the kill succeeded {failover_ms} ms after it"
    ));
    step("reading every acknowledged key back from the surviving members");
    let (found, more, _) = client.range(b"demo/key-", keys as u32).map_err(fail)?;
    let intact = found
        .iter()
        .enumerate()
        .all(|(i, kv)| kv.value == format!("value {i}").into_bytes());
    if found.len() as u64 != keys || more || !intact {
        println!(
            "    FAILED: found {} of {keys} keys (intact: {intact})",
            found.len()
        );
        return Ok(ExitCode::from(1));
    }
    println!("    all {keys} acknowledged writes are there, intact");
    step(format!(
        "restarting node {leader}; it catches up from the others"
    ));
    cluster.spawn(leader).map_err(fail)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let caught_up = loop {
        let statuses = cluster.statuses(Duration::from_millis(300));
        let target = statuses
            .get(&new_leader)
            .map(|s| s.applied)
            .unwrap_or(u64::MAX);
        if statuses.get(&leader).is_some_and(|s| s.applied >= target) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !caught_up {
        println!("    FAILED: node {leader} did not catch up within 10 s");
        return Ok(ExitCode::from(1));
    }
    println!("    node {leader} is back and up to date");
    step(format!(
        "done in {} ms; stopping the servers and removing {}",
        started.elapsed().as_millis(),
        cluster.dir().display()
    ));
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}
