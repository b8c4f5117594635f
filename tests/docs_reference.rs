//! The reference pages under `docs/reference` that state facts of the code: the format
//! versions. (The CLI reference has its own test; the limits are checked in `limits.rs`.)

use std::path::Path;

fn page(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/reference")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_formats_page_gives_every_current_version() {
    let text = page("formats.md");
    let versions: [(&str, u64); 6] = [
        (
            "runtime::wire::PROTOCOL_VERSION",
            accord::runtime::wire::PROTOCOL_VERSION.into(),
        ),
        (
            "runtime::storage::record::SEGMENT_VERSION",
            accord::runtime::storage::record::SEGMENT_VERSION.into(),
        ),
        (
            "runtime::storage::snapshot_file::VERSION",
            accord::runtime::storage::snapshot_file::VERSION.into(),
        ),
        (
            "core::state::machine::SNAPSHOT_VERSION",
            accord::core::state::machine::SNAPSHOT_VERSION.into(),
        ),
        (
            "core::state::REQUEST_VERSION",
            accord::core::state::command::REQUEST_VERSION.into(),
        ),
        (
            "ffi::ACCORD_ABI_VERSION",
            accord::ffi::ACCORD_ABI_VERSION.into(),
        ),
    ];
    for (name, version) in versions {
        let row = format!("| `{name}` | {version} |");
        assert!(text.contains(&row), "formats.md has no row ending {row}");
    }
}

#[test]
fn the_errors_page_explains_every_result_code() {
    let text = page("errors.md");
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/accord.h"))
            .unwrap();
    let mut codes = 0;
    for line in header.lines() {
        let Some(rest) = line.strip_prefix("#define ACCORD_ERR_") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
        let row = format!("| `ACCORD_ERR_{name}` ({value}) |");
        assert!(text.contains(&row), "errors.md has no row starting {row}");
        codes += 1;
    }
    assert!(codes >= 16);
}
