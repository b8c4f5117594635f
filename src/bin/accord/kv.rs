//! `accord kv` and `accord status`: a command-line client.

use std::process::ExitCode;
use std::time::Duration;

use accord::api::{Client, ClientConfig};

use crate::args::{Args, Security};

const HELP: &str = concat!(
    "\
usage: accord kv get KEY [--serializable]
       accord kv put KEY VALUE
       accord kv del KEY
       accord kv range PREFIX [--limit N]
       accord status

options (all commands):
  --endpoints A,B,C   member addresses (default: $ACCORD_ENDPOINTS, else 127.0.0.1:7101)
  --cluster-id N      the cluster's id (default 1)
  --timeout-ms N      how long a call may take, retries included (default 10000)
",
    client_security_help!()
);

/// The client configuration the common options describe.
pub fn client_config(args: &mut Args) -> Result<ClientConfig, String> {
    let (client, _) = client(args)?;
    Ok(client.config().clone())
}

/// A client from the common options, and the endpoints they name.
pub fn connect(args: &mut Args) -> Result<(Client, Vec<String>), String> {
    client(args)
}

fn client(args: &mut Args) -> Result<(Client, Vec<String>), String> {
    let default = std::env::var("ACCORD_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7101".into());
    let endpoints: String = args.get("endpoints", default)?;
    let cluster: u64 = args.get("cluster-id", 1)?;
    let timeout_ms: u64 = args.get("timeout-ms", 10_000)?;
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    let security = Security::from_args(args, false)?;
    let config = security.apply(ClientConfig {
        cluster,
        timeout: Duration::from_millis(timeout_ms),
        ..ClientConfig::new(endpoints.clone())
    });
    Ok((
        Client::connect(config).map_err(|e| e.to_string())?,
        endpoints,
    ))
}

pub fn kv_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help", "serializable"])?;
    if args.flag("help") || args.words.is_empty() {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let serializable = args.flag("serializable");
    let limit: u32 = args.get("limit", 1000)?;
    let (client, _) = client(&mut args)?;
    args.finish_keeping_words()?;
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    // Usage errors exit 2 (above); a failed call exits 1 with the reason.
    let run = || -> accord::Result<ExitCode> {
        match words.as_slice() {
            ["get", key] => {
                let (found, revision) = if serializable {
                    client.get_serializable(key.as_bytes())
                } else {
                    client.get(key.as_bytes())
                }?;
                match found {
                    Some(kv) => println!("{}", String::from_utf8_lossy(&kv.value)),
                    None => {
                        eprintln!("{key}: not found (revision {revision})");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            ["put", key, value] => {
                let revision = client.put(key.as_bytes(), value.as_bytes())?;
                println!("OK revision={revision}");
            }
            ["del", key] => {
                let (deleted, revision) = client.delete(key.as_bytes())?;
                println!(
                    "{} revision={revision}",
                    if deleted { "deleted" } else { "absent" }
                );
            }
            ["range", prefix] => {
                let (found, more, revision) = client.range(prefix.as_bytes(), limit)?;
                for kv in found {
                    println!(
                        "{}={}",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value)
                    );
                }
                if more {
                    println!("(more keys match than this reply holds: narrow the prefix or raise --limit)");
                }
                eprintln!("revision={revision}");
            }
            _ => {
                eprintln!("accord: unknown kv command: {}\n\n{HELP}", words.join(" "));
                return Ok(ExitCode::from(2));
            }
        }
        Ok(ExitCode::SUCCESS)
    };
    match run() {
        Ok(code) => Ok(code),
        Err(error) => {
            eprintln!("accord: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn status_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let (client, endpoints) = client(&mut args)?;
    args.finish()?;
    let mut reachable = 0;
    println!(
        "{:<22} {:>4} {:<13} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "endpoint", "id", "role", "term", "leader", "commit", "applied", "revision"
    );
    for endpoint in &endpoints {
        match client.status_of(endpoint) {
            Ok(s) => {
                reachable += 1;
                println!(
                    "{endpoint:<22} {:>4} {:<13} {:>6} {:>6} {:>8} {:>8} {:>8}",
                    s.id, s.role, s.term, s.leader, s.commit, s.applied, s.revision
                );
                let load = &s.load;
                println!(
                    "    clients: {} connections ({} paused until they read their replies), \
                     {} of {} bytes of replies unsent, {} requests waiting",
                    load.connections,
                    load.paused,
                    load.send_bytes,
                    load.send_bytes_max,
                    load.pending_requests
                );
                for m in &s.members {
                    let contact = if m.contact_ms == u64::MAX {
                        "never".to_string()
                    } else {
                        format!("{} ms ago", m.contact_ms)
                    };
                    let bytes = if m.lag_bytes == u64::MAX {
                        "needs a snapshot".to_string()
                    } else {
                        format!("{} bytes", m.lag_bytes)
                    };
                    println!(
                        "    member {} ({}): match={} lag={} entries, {bytes}; last contact {contact}{}",
                        m.id,
                        if m.voter { "voter" } else { "learner" },
                        m.matched,
                        m.lag_entries,
                        if m.suspect { "; SUSPECTED DOWN" } else { "" }
                    );
                }
            }
            Err(error) => println!("{endpoint:<22} unreachable: {error}"),
        }
    }
    Ok(if reachable > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
