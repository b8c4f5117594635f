//! `docs/reference/cli.md` is every command's `--help`, exactly: this test rebuilds the page
//! from the binary and fails when the committed one differs. `make docs` (which sets
//! `ACCORD_UPDATE_DOCS=1`) writes the rebuilt page instead.

use std::path::Path;
use std::process::Command;

const PAGE: &str = "docs/reference/cli.md";

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .output()
        .expect("running accord");
    assert!(output.status.success(), "accord {args:?} failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// The commands `accord help` lists (two spaces, then the name).
fn commands(overview: &str) -> Vec<String> {
    overview
        .lines()
        .skip_while(|line| !line.starts_with("commands:"))
        .skip(1)
        .filter_map(|line| {
            let name = line.strip_prefix("  ")?.split_whitespace().next()?;
            (!line.starts_with("   ") && name != "help").then(|| name.to_string())
        })
        .collect()
}

fn page() -> String {
    let overview = help(&["help"]);
    let mut text = String::from(
        "# Command-line reference\n\n\
         Every `accord` command with exactly what its `--help` prints. The test suite rebuilds \
         this page from\nthe binary and fails if it differs; `make docs` rewrites it.\n\n\
         ## accord\n\n```text\n",
    );
    text.push_str(&overview);
    text.push_str("```\n");
    // Commands that share one help text (kv and status, say) are shown together.
    let mut groups: Vec<(Vec<String>, String)> = Vec::new();
    for command in commands(&overview) {
        let body = help(&[&command, "--help"]);
        match groups.iter_mut().find(|(_, text)| *text == body) {
            Some((names, _)) => names.push(command),
            None => groups.push((vec![command], body)),
        }
    }
    for (names, body) in groups {
        let title: Vec<String> = names.iter().map(|n| format!("accord {n}")).collect();
        text.push_str(&format!(
            "\n## {}\n\n```text\n{body}```\n",
            title.join(", ")
        ));
    }
    text
}

#[test]
fn the_cli_reference_is_every_commands_help() {
    let expected = page();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    if std::env::var_os("ACCORD_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("writing the CLI reference");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != expected {
        let first = committed
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(expected.lines().count()));
        panic!(
            "{PAGE} is not what the commands print (first difference at line {}); run `make docs`",
            first + 1
        );
    }
    // Every command appears.
    for command in commands(&help(&["help"])) {
        assert!(
            committed.contains(&format!("accord {command}")),
            "{command} is missing"
        );
    }
}
