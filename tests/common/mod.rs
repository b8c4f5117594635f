//! What the test programs that build C code share: where the repository and the freshly built
//! `libaccord.so` are.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding `libaccord.so` (the test binary lives in its `deps/`).
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    assert!(
        dir.join("libaccord.so").exists(),
        "{} has no libaccord.so: run `cargo build --release` first (make test does)",
        dir.display()
    );
    dir
}
