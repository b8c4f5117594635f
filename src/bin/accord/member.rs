//! `accord member`: list the cluster's members, add, promote and remove them.

use std::process::ExitCode;

use accord::api::MembershipView;

use crate::args::Args;
use crate::kv::connect;

const HELP: &str = concat!(
    "\
usage: accord member list
       accord member add ID ADDRESS      add a learner (it replicates, does not vote yet)
       accord member promote ID          make a learner that has caught up a voter
       accord member remove ID           remove a voter (the leader too) or a learner
       accord transfer-leader --to ID    hand leadership to a voter (before maintenance)
       accord leave --id ID              remove member ID for a graceful exit; then stop it

A new member joins as a learner and becomes a voter once it has caught up: start it with
`accord server --join ADDRESS-OF-A-MEMBER` and it asks for both steps itself. Changes go
through the leader, one at a time; voter changes use a joint membership, so the cluster
stays available while a majority of both the old and the new voters is up.

options:
  --endpoints A,B,C   member addresses (default: $ACCORD_ENDPOINTS, else 127.0.0.1:7101)
  --cluster-id N      the cluster's id (default 1)
  --timeout-ms N      how long a call may take, retries included (default 10000)
",
    client_security_help!()
);

/// `accord transfer-leader --to ID`.
pub fn transfer_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let to: u64 = args.get_opt("to")?.ok_or("--to ID is required")?;
    let (client, _) = connect(&mut args)?;
    args.finish()?;
    let view = client.transfer_leader(to).map_err(|e| e.to_string())?;
    print_view(&view);
    Ok(ExitCode::SUCCESS)
}

/// `accord leave --id ID`: member ID leaves the cluster (a leader hands over first); its
/// process can be stopped once this returns.
pub fn leave_main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let id: u64 = args.get_opt("id")?.ok_or("--id ID is required")?;
    let (client, _) = connect(&mut args)?;
    args.finish()?;
    let view = client.member_remove(id).map_err(|e| e.to_string())?;
    print_view(&view);
    println!("member {id} left the cluster; stop its process");
    Ok(ExitCode::SUCCESS)
}

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") || args.words.is_empty() {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let (client, _) = connect(&mut args)?;
    args.finish_keeping_words()?;
    let words = args.words.clone();
    let id = |position: usize| -> Result<u64, String> {
        let text = words
            .get(position)
            .ok_or_else(|| format!("a member id is missing\n\n{HELP}"))?;
        match text.parse::<u64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err(format!("member id {text:?} is not a positive number")),
        }
    };
    let view = match (words[0].as_str(), words.len()) {
        ("list", 1) => client.member_list(),
        ("add", 3) => client.member_add_learner(id(1)?, &words[2]),
        ("promote", 2) => client.member_promote(id(1)?),
        ("remove", 2) => client.member_remove(id(1)?),
        _ => return Err(format!("unknown or incomplete member command\n\n{HELP}")),
    }
    .map_err(|e| e.to_string())?;
    print_view(&view);
    Ok(ExitCode::SUCCESS)
}

fn print_view(view: &MembershipView) {
    let address = |id: u64| {
        view.addresses
            .iter()
            .find(|(member, _)| *member == id)
            .map_or("?".to_string(), |(_, a)| a.clone())
    };
    println!("{:>4}  {:<8} {:<22} notes", "id", "role", "address");
    for id in view.conf.members() {
        let role = if view.conf.voters.contains(&id) {
            "voter"
        } else if view.conf.voters_outgoing.contains(&id) {
            "leaving"
        } else {
            "learner"
        };
        let mut notes = Vec::new();
        if id == view.leader {
            notes.push("leader");
        }
        if id == view.id {
            notes.push("answered");
        }
        println!(
            "{id:>4}  {role:<8} {:<22} {}",
            address(id),
            notes.join(", ")
        );
    }
    if view.pending {
        println!("a membership change is in progress");
    }
}
