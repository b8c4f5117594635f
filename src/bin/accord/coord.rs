//! `accord lock`, `elect`, `group`, `queue` and `watch`: the coordination primitives from a
//! shell.

use std::process::{Command as Process, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accord::api::{Client, ClientConfig, Event, EventKind, Session, Space, WatchItem};

use crate::args::Args;
use crate::kv::client_config;

const HELP: &str = concat!(
    "\
usage: accord lock NAME [--ttl-ms N] [--wait-ms N] -- CMD [ARGS...]
           run CMD while holding the mutex NAME; CMD gets the fencing token in
           ACCORD_FENCING_TOKEN (and the session in ACCORD_SESSION). If the lock is lost
           (the session expired) CMD is sent SIGTERM and accord exits 1; otherwise accord
           releases the lock and exits with CMD's status.
       accord elect NAME VALUE [--ttl-ms N]
           campaign for election NAME with VALUE; prints every leadership change of NAME,
           leads until interrupted (Ctrl-C resigns) or until leadership is lost (exit 1)
       accord group join GROUP MEMBER [METADATA] [--ttl-ms N]
           be MEMBER of GROUP until interrupted
       accord group list GROUP
       accord group watch GROUP
           print joins, leaves and expiries until interrupted
       accord queue push QUEUE PAYLOAD
       accord queue claim QUEUE [--ttl-ms N] [--wait-ms N]
           claim the oldest item; prints `item=I token=T` then the payload. The claim lives
           as long as the claiming session: TTL after this command exits, unless acked
       accord queue ack QUEUE ITEM TOKEN
       accord watch PREFIX [--space kv|lock|election|group|queue|barrier|counter|session]
           [--from REVISION]
           print every change under PREFIX (from REVISION, default: from now) until
           interrupted

options (all commands):
  --endpoints A,B,C   member addresses (default: $ACCORD_ENDPOINTS, else 127.0.0.1:7101)
  --cluster-id N      the cluster's id (default 1)
  --timeout-ms N      how long a call may take, retries included (default 10000)
  --ttl-ms N          session TTL (default 10000; at least 1000)
  --wait-ms N         how long to wait for a lock or an item (default: forever)
",
    client_security_help!()
);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM set a flag that the loops below check (they then resign or leave
/// cleanly instead of leaving the cluster to expire the session).
fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

struct Common {
    config: ClientConfig,
    ttl: Duration,
    wait: Duration,
}

fn common(args: &mut Args) -> Result<Common, String> {
    let config = client_config(args)?;
    let ttl_ms: u64 = args.get("ttl-ms", 10_000)?;
    let wait_ms: Option<u64> = args.get_opt("wait-ms")?;
    Ok(Common {
        config,
        ttl: Duration::from_millis(ttl_ms),
        // "Forever": a day, re-armed by nobody; long enough for a shell.
        wait: Duration::from_millis(wait_ms.unwrap_or(24 * 3600 * 1000)),
    })
}

fn fail(error: accord::Error) -> ExitCode {
    eprintln!("accord: {error}");
    ExitCode::from(1)
}

fn usage(what: &str) -> Result<ExitCode, String> {
    Err(format!("{what}\n\n{HELP}"))
}

/// `accord lock NAME -- CMD ARGS`.
pub fn lock_main(mut arguments: Vec<String>) -> Result<ExitCode, String> {
    let command = match arguments.iter().position(|a| a == "--") {
        Some(at) => arguments.split_off(at).split_off(1),
        None => Vec::new(),
    };
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let common = common(&mut args)?;
    args.finish_keeping_words()?;
    let [name] = args.words.as_slice() else {
        return usage("accord lock takes one NAME");
    };
    if command.is_empty() {
        return usage("accord lock needs a command after --");
    }
    catch_interrupts();
    let session = match Session::create(common.config, common.ttl) {
        Ok(session) => session,
        Err(error) => return Ok(fail(error)),
    };
    let lock = match session.lock(name.as_bytes(), common.wait) {
        Ok(lock) => lock,
        Err(error) => return Ok(fail(error)),
    };
    eprintln!("accord: holding {name} with token {}", lock.token());
    let mut child = Process::new(&command[0])
        .args(&command[1..])
        .env("ACCORD_FENCING_TOKEN", lock.token().to_string())
        .env("ACCORD_SESSION", session.id().to_string())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", command[0]))?;
    // Bounded by the child's life, or the lock's.
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let released = lock.release();
            let _ = session.close();
            if let Err(error) = released {
                eprintln!("accord: releasing {name}: {error}");
            }
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ));
        }
        if lock.wait_lost(Duration::from_millis(50)) {
            eprintln!(
                "accord: lost the lock {name} ({}); stopping the command",
                session.lost_reason()
            );
            stop_child(&mut child);
            return Ok(ExitCode::from(1));
        }
    }
}

/// SIGTERM, then SIGKILL if the child is still running two seconds later.
fn stop_child(child: &mut std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    // Bounded by the deadline.
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `accord elect NAME VALUE`.
pub fn elect_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let common = common(&mut args)?;
    args.finish_keeping_words()?;
    let [name, value] = args.words.as_slice() else {
        return usage("accord elect takes NAME and VALUE");
    };
    catch_interrupts();
    let client = Client::connect(common.config.clone()).map_err(|e| e.to_string())?;
    let mut observer = match client.observe(name.as_bytes()) {
        Ok(observer) => observer,
        Err(error) => return Ok(fail(error)),
    };
    // The observer prints changes on its own thread while this one campaigns.
    let printer_name = name.clone();
    std::thread::spawn(move || {
        // Bounded by the process's life.
        while !interrupted() {
            match observer.next(Duration::from_millis(200)) {
                Ok(Some(change)) => match change.leader {
                    Some(leader) => println!(
                        "{printer_name}: leader session={} token={} value={} (revision {})",
                        leader.session,
                        leader.token,
                        String::from_utf8_lossy(&leader.value),
                        change.revision
                    ),
                    None => println!("{printer_name}: no leader (revision {})", change.revision),
                },
                Ok(None) => {}
                Err(error) => {
                    eprintln!("accord: observing {printer_name}: {error}");
                    return;
                }
            }
        }
    });
    let session = match Session::create(common.config, common.ttl) {
        Ok(session) => session,
        Err(error) => return Ok(fail(error)),
    };
    let leadership = match session.campaign(name.as_bytes(), value.as_bytes(), common.wait) {
        Ok(leadership) => leadership,
        Err(error) => return Ok(fail(error)),
    };
    eprintln!(
        "accord: elected for {name} with token {}",
        leadership.token()
    );
    // Bounded by an interrupt or the loss of leadership.
    loop {
        if interrupted() {
            let resigned = leadership.resign();
            let _ = session.close();
            eprintln!("accord: resigned {name}");
            return Ok(match resigned {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(error),
            });
        }
        if leadership.wait_lost(Duration::from_millis(100)) {
            eprintln!(
                "accord: lost leadership of {name} ({})",
                session.lost_reason()
            );
            return Ok(ExitCode::from(1));
        }
    }
}

/// `accord group join|list|watch`.
pub fn group_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") || args.words.is_empty() {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let common = common(&mut args)?;
    args.finish_keeping_words()?;
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let client = Client::connect(common.config.clone()).map_err(|e| e.to_string())?;
    match words.as_slice() {
        ["join", group, member, rest @ ..] if rest.len() <= 1 => {
            catch_interrupts();
            let metadata = rest.first().copied().unwrap_or("");
            let session = match Session::create(common.config, common.ttl) {
                Ok(session) => session,
                Err(error) => return Ok(fail(error)),
            };
            let membership =
                match session.join(group.as_bytes(), member.as_bytes(), metadata.as_bytes()) {
                    Ok(membership) => membership,
                    Err(error) => return Ok(fail(error)),
                };
            eprintln!("accord: {member} joined {group} (session {})", session.id());
            // Bounded by an interrupt or the session's loss.
            while !interrupted() {
                if session.wait_lost(Duration::from_millis(100)) {
                    eprintln!("accord: left {group}: {}", session.lost_reason());
                    return Ok(ExitCode::from(1));
                }
            }
            let left = membership.leave();
            let _ = session.close();
            Ok(match left {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(error),
            })
        }
        ["list", group] => match client.members(group.as_bytes()) {
            Ok((members, revision)) => {
                for member in members {
                    println!(
                        "{} session={} metadata={}",
                        String::from_utf8_lossy(&member.id),
                        member.session,
                        String::from_utf8_lossy(&member.metadata)
                    );
                }
                eprintln!("revision={revision}");
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => Ok(fail(error)),
        },
        ["watch", group] => {
            catch_interrupts();
            let (members, revision) = match client.members(group.as_bytes()) {
                Ok(found) => found,
                Err(error) => return Ok(fail(error)),
            };
            for member in members {
                println!("present {}", String::from_utf8_lossy(&member.id));
            }
            watch_loop(&client, Space::Group, group.as_bytes(), revision + 1, true)
        }
        _ => usage(&format!("unknown group command: {}", words.join(" "))),
    }
}

/// `accord queue push|claim|ack`.
pub fn queue_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") || args.words.is_empty() {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let common = common(&mut args)?;
    args.finish_keeping_words()?;
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let client = Client::connect(common.config.clone()).map_err(|e| e.to_string())?;
    let run = || -> accord::Result<ExitCode> {
        match words.as_slice() {
            ["push", queue, payload] => {
                let item = client.enqueue(queue.as_bytes(), payload.as_bytes())?;
                println!("item={item}");
            }
            ["claim", queue] => {
                let session = Session::create(common.config.clone(), common.ttl)?;
                let claim = session.claim(queue.as_bytes(), common.wait)?;
                println!("item={} token={}", claim.item, claim.token);
                println!("{}", String::from_utf8_lossy(&claim.payload));
                // The session is not closed (its keepalives stop with this process): the
                // claim can be acked until the TTL runs out, then the item is redelivered.
            }
            ["ack", queue, item, token] => {
                let (Ok(item), Ok(token)) = (item.parse::<u64>(), token.parse::<u64>()) else {
                    eprintln!("accord: ITEM and TOKEN are numbers\n\n{HELP}");
                    return Ok(ExitCode::from(2));
                };
                client.ack(queue.as_bytes(), item, token)?;
                println!("acked item={item}");
            }
            _ => {
                eprintln!(
                    "accord: unknown queue command: {}\n\n{HELP}",
                    words.join(" ")
                );
                return Ok(ExitCode::from(2));
            }
        }
        Ok(ExitCode::SUCCESS)
    };
    Ok(run().unwrap_or_else(fail))
}

/// `accord watch PREFIX`.
pub fn watch_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let common = common(&mut args)?;
    let space: String = args.get("space", "kv".to_string())?;
    let from: Option<u64> = args.get_opt("from")?;
    args.finish_keeping_words()?;
    let [prefix] = args.words.as_slice() else {
        return usage("accord watch takes one PREFIX");
    };
    let space = Space::from_name(&space)
        .ok_or_else(|| format!("--space {space}: not a space\n\n{HELP}"))?;
    catch_interrupts();
    let client = Client::connect(common.config).map_err(|e| e.to_string())?;
    let from = match from {
        Some(from) => from,
        None => match client.status() {
            Ok(status) => status.revision + 1,
            Err(error) => return Ok(fail(error)),
        },
    };
    watch_loop(&client, space, prefix.as_bytes(), from, false)
}

fn watch_loop(
    client: &Client,
    space: Space,
    prefix: &[u8],
    from: u64,
    exact: bool,
) -> Result<ExitCode, String> {
    let (mut stream, _) = match client.watch(space, prefix, from) {
        Ok(stream) => stream,
        Err(error) => return Ok(fail(error)),
    };
    // Bounded by an interrupt.
    while !interrupted() {
        match stream.next(Duration::from_millis(200)) {
            Ok(Some((_, WatchItem::Events(events)))) => {
                for event in events.iter().filter(|e| !exact || e.key == prefix) {
                    println!("{}", describe(event));
                }
            }
            Ok(Some((_, WatchItem::Compacted { revision }))) => {
                eprintln!("accord: the watch fell behind the history; now at revision {revision}");
                return Ok(ExitCode::from(1));
            }
            Ok(Some((_, WatchItem::Cancelled(why)))) => {
                eprintln!("accord: the watch was cancelled: {why}");
                return Ok(ExitCode::from(1));
            }
            Ok(None) => {}
            Err(error) => return Ok(fail(error)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per event: revision, space, key, what happened and its details.
fn describe(event: &Event) -> String {
    let key = String::from_utf8_lossy(&event.key);
    let value = String::from_utf8_lossy(&event.value);
    let what = match &event.kind {
        EventKind::Put => format!("put {value}"),
        EventKind::Delete => "delete".to_string(),
        EventKind::Granted => format!("granted session={} token={}", event.session, event.token),
        EventKind::Waiting => format!("waiting session={}", event.session),
        EventKind::Ended(why) => format!("ended session={} ({why:?})", event.session),
        EventKind::Proclaimed => format!("proclaimed token={} value={value}", event.token),
        EventKind::Joined => format!(
            "joined {} session={} metadata={value}",
            String::from_utf8_lossy(&event.member),
            event.session
        ),
        EventKind::Left(why) => format!(
            "left {} session={} ({why:?})",
            String::from_utf8_lossy(&event.member),
            event.session
        ),
        EventKind::Enqueued => format!("enqueued item={} {value}", event.item),
        EventKind::Acked => format!("acked item={}", event.item),
        EventKind::Requeued => format!("requeued item={}", event.item),
        EventKind::Arrived => format!("arrived session={} count={}", event.session, event.item),
        EventKind::Opened => "opened".to_string(),
        EventKind::Counted => format!("value={}", event.item as i64),
        EventKind::SessionCreated => format!("session created ttl_ms={}", event.item),
        EventKind::SessionEnded(why) => format!("session ended ({why:?})"),
    };
    format!("{} {} {key} {what}", event.revision, event.space.name())
}
