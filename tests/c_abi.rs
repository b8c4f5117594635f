//! The C ABI: the committed header matches the one generated from `src/ffi`, compiles alone as
//! C99 and as C++17 with every warning an error, and the C test programs in
//! `bindings/c/tests` pass — natively, under AddressSanitizer + UndefinedBehaviorSanitizer
//! (leaks included), and under Valgrind memcheck with zero errors and zero leaks.
//!
//! The programs link `target/release/libaccord.so`: `make test` builds it before the tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding `libaccord.so` (this test binary lives in its `deps/`).
fn library_dir() -> PathBuf {
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

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{text}",
        output.status
    );
    text
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accord-c-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_ports() -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port().to_string())
        .collect()
}

/// Compiles a C test program against the header and the shared library.
fn compile(source: &str, output: &Path, extra: &[&str]) {
    let library = library_dir();
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-D_DEFAULT_SOURCE",
        "-g",
    ])
    .args(extra)
    .arg("-I")
    .arg(root().join("include"))
    .arg(root().join(source))
    .arg("-L")
    .arg(&library)
    .args(["-laccord", "-lpthread"])
    .arg(format!("-Wl,-rpath,{}", library.display()))
    .arg("-o")
    .arg(output);
    run(&mut cc, &format!("compiling {source}"));
}

#[test]
fn the_committed_header_is_current() {
    let generated = std::fs::read_to_string(accord::ffi::GENERATED_HEADER_PATH)
        .expect("the build generated a header");
    let committed = std::fs::read_to_string(root().join("include/accord.h")).unwrap_or_default();
    assert!(
        !generated.is_empty(),
        "cbindgen produced nothing (see the build's warnings)"
    );
    assert!(
        generated == committed,
        "include/accord.h is stale: run `make header` and commit it"
    );
}

#[test]
fn the_header_compiles_alone_as_c99_and_cpp17() {
    let dir = scratch("header");
    std::fs::write(
        dir.join("h.c"),
        "#include \"accord.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("h.cpp"),
        "#include \"accord.h\"\nint main() { return 0; }\n",
    )
    .unwrap();
    let include = root().join("include");
    run(
        Command::new("cc")
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-c",
                "-I",
            ])
            .arg(&include)
            .arg(dir.join("h.c"))
            .arg("-o")
            .arg(dir.join("h.o")),
        "the header as C99",
    );
    run(
        Command::new("c++")
            .args([
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-c",
                "-I",
            ])
            .arg(&include)
            .arg(dir.join("h.cpp"))
            .arg("-o")
            .arg(dir.join("hpp.o")),
        "the header as C++17",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_abi_test_passes_natively_under_sanitizers_and_under_valgrind() {
    let dir = scratch("abi");
    let native = dir.join("abi_test");
    let sanitized = dir.join("abi_test_asan");
    compile("bindings/c/tests/abi_test.c", &native, &[]);
    compile(
        "bindings/c/tests/abi_test.c",
        &sanitized,
        &[
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ],
    );
    let attempt = |program: &Path, runner: Option<&[&str]>, name: &str| {
        let data = dir.join(format!("data-{name}"));
        let ports = free_ports();
        let mut command = match runner {
            Some(runner) => {
                let mut command = Command::new(runner[0]);
                command.args(&runner[1..]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(&ports)
            .arg(&data)
            .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
        let output = run(&mut command, name);
        assert!(output.contains("every check passed"), "{name}:\n{output}");
        output
    };
    attempt(&native, None, "abi_test");
    attempt(&sanitized, None, "abi_test under ASan + UBSan");
    let valgrind = [
        "valgrind",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=9",
    ];
    let output = attempt(&native, Some(&valgrind), "abi_test under valgrind");
    assert!(
        output.contains("ERROR SUMMARY: 0 errors"),
        "valgrind reported errors:\n{output}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
