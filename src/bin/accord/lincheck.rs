//! `accord lincheck`: checks a recorded register history for linearizability with the
//! simulator's checker, so that histories of real clusters (`make torture`) are judged by
//! the same code as simulated ones (and by Porcupine beside it).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use accord::limits::SIM_HISTORY_OPERATIONS_MAX;
use accord::sim::history::{OpInput, OpOutput, Operation};
use accord::sim::linearizability::{check, Verdict};

use crate::args::Args;

const HELP: &str = "\
usage: accord lincheck --history FILE

Checks a history of register operations for linearizability (every key an independent
register; an absent register never matches a compare-and-swap). One operation per line,
times in any increasing unit (nanoseconds, say), `-` for an operation whose outcome is
unknown (it may have taken effect at any time after its call, or never):

  <client> <key> put <value> <call> <return|->
  <client> <key> get <call> <return> <value|absent>
  <client> <key> cas <expected> <new> <call> <return|-> [true|false]

Prints `lincheck: operations=N linearizable=yes|no ...`. Exit status: 0 linearizable;
1 not (or the search gave up, which never counts as a pass); 2 a malformed history.
";

/// Operations one history may hold (the simulator's bound, times ten: real runs are longer).
const OPERATIONS_MAX: usize = SIM_HISTORY_OPERATIONS_MAX * 10;

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let path: Option<PathBuf> = args.get_opt("history")?;
    args.finish()?;
    let path = path.ok_or("--history is required")?;
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut history = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if history.len() == OPERATIONS_MAX {
            return Err(format!(
                "{}: more than {OPERATIONS_MAX} operations",
                path.display()
            ));
        }
        let op = parse(&line)
            .map_err(|why| format!("{}:{}: {why}: {line}", path.display(), number + 1))?;
        history.push(op);
    }
    let verdict = check(&history);
    let (yes, detail) = match verdict {
        Verdict::Linearizable => (true, String::new()),
        Verdict::NotLinearizable { key, operations } => (
            false,
            format!(" key={key} (no linearization of its {operations} operations)"),
        ),
        Verdict::BudgetExhausted { key, steps } => (
            false,
            format!(" key={key} (the search gave up after {steps} steps)"),
        ),
    };
    println!(
        "lincheck: operations={} linearizable={}{detail}",
        history.len(),
        if yes { "yes" } else { "no" }
    );
    Ok(if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse(line: &str) -> Result<Operation, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize, what: &str| -> Result<u64, String> {
        words
            .get(i)
            .ok_or_else(|| format!("missing {what}"))?
            .parse::<u64>()
            .map_err(|_| format!("{what} is not a number"))
    };
    let returned = |i: usize| -> Result<Option<u64>, String> {
        match words.get(i) {
            Some(&"-") => Ok(None),
            Some(_) => number(i, "return time").map(Some),
            None => Err("missing return time".into()),
        }
    };
    let client = u32::try_from(number(0, "client")?).map_err(|_| "client too large")?;
    let key = u32::try_from(number(1, "key")?).map_err(|_| "key too large")?;
    let (input, invoked, returned, arity) = match words.get(2).copied() {
        Some("put") => {
            let returned = returned(5)?.map(|at| (at, OpOutput::Written));
            (
                OpInput::Put(number(3, "value")?),
                number(4, "call time")?,
                returned,
                6,
            )
        }
        Some("get") => {
            let at = number(4, "return time")?;
            let value = match words.get(5) {
                Some(&"absent") => None,
                Some(_) => Some(number(5, "value")?),
                None => return Err("missing value".into()),
            };
            (
                OpInput::Get,
                number(3, "call time")?,
                Some((at, OpOutput::Value(value))),
                6,
            )
        }
        Some("cas") => {
            let input = OpInput::Cas {
                expected: number(3, "expected value")?,
                new: number(4, "new value")?,
            };
            let invoked = number(5, "call time")?;
            match returned(6)? {
                None => (input, invoked, None, 7),
                Some(at) => {
                    let swapped = match words.get(7) {
                        Some(&"true") => true,
                        Some(&"false") => false,
                        _ => return Err("a swap that returned needs true or false".into()),
                    };
                    (input, invoked, Some((at, OpOutput::Swapped(swapped))), 8)
                }
            }
        }
        _ => return Err("the operation must be put, get or cas".into()),
    };
    if words.len() != arity {
        return Err(format!("expected {arity} fields, found {}", words.len()));
    }
    if let Some((at, _)) = returned {
        if at < invoked {
            return Err("returned before it was called".into());
        }
    }
    Ok(Operation {
        client,
        key,
        input,
        invoked,
        returned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(text: &str) -> Result<Vec<Operation>, String> {
        text.lines().map(parse).collect()
    }

    #[test]
    fn a_read_of_a_completed_write_is_linearizable_and_a_stale_one_is_not() {
        let fine =
            history("0 0 put 1 10 20\n1 0 get 15 25 1\n0 0 cas 1 2 30 -\n1 0 get 40 50 2").unwrap();
        assert_eq!(check(&fine), Verdict::Linearizable);
        let stale = history("0 0 put 1 10 20\n1 0 get 25 30 absent").unwrap();
        assert!(matches!(
            check(&stale),
            Verdict::NotLinearizable { key: 0, .. }
        ));
    }

    #[test]
    fn malformed_lines_are_refused_with_a_reason() {
        for (line, why) in [
            ("0 0 put x 10 20", "value is not a number"),
            ("0 0 get 10 20", "missing value"),
            ("0 0 cas 1 2 10 20", "needs true or false"),
            ("0 0 put 1 20 10", "returned before it was called"),
            ("0 0 del 1 10 20", "must be put, get or cas"),
            ("0 0 put 1 10 20 extra", "expected 6 fields"),
        ] {
            let error = parse(line).unwrap_err();
            assert!(error.contains(why), "{line}: {error}");
        }
    }
}
