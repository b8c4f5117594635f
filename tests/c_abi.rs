//! The C ABI: the committed header matches the one generated from `src/ffi`, compiles alone as
//! C99 and as C++17 with every warning an error, and the C test programs in
//! `bindings/c/tests` pass — natively, under AddressSanitizer + UndefinedBehaviorSanitizer
//! (leaks included), and under Valgrind memcheck with zero errors and zero leaks.
//!
//! The programs link `target/release/libaccord.so`: `make test` builds it before the tests.

mod common;
use common::{library_dir, root};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A directory holding the freshly built library under the names a program linked to it
/// asks for (`libaccord.so`, and `libaccord.so.0`, its SONAME).
fn linkable_library(dir: &Path) -> PathBuf {
    let built = library_dir().join("libaccord.so");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for name in ["libaccord.so", "libaccord.so.0"] {
        let _ = std::fs::remove_file(lib.join(name));
        std::os::unix::fs::symlink(&built, lib.join(name)).unwrap();
    }
    lib
}

/// Compiles a C (or, for a `.cpp` source, C++17) test program against the headers and the
/// shared library.
fn compile(source: &str, output: &Path, extra: &[&str]) {
    let library = linkable_library(output.parent().expect("an output directory"));
    let cpp = source.ends_with(".cpp");
    let mut cc = Command::new(if cpp { "c++" } else { "cc" });
    cc.args([
        if cpp { "-std=c++17" } else { "-std=c99" },
        "-pedantic",
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
    std::fs::write(
        dir.join("w.cpp"),
        "#include \"accord.hpp\"\nint main() { return 0; }\n",
    )
    .unwrap();
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
            .arg(dir.join("w.cpp"))
            .arg("-o")
            .arg(dir.join("w.o")),
        "the C++ wrapper as C++17",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_abi_test_passes_natively_under_sanitizers_and_under_valgrind() {
    sanitized_and_valgrind("bindings/c/tests/abi_test.c", "abi_test");
}

/// The C++17 wrapper (`include/accord.hpp`): RAII handles, exceptions, `accord::mutex` with
/// `std::lock_guard`, under the same checks.
#[test]
fn the_cpp_wrapper_test_passes_natively_under_sanitizers_and_under_valgrind() {
    sanitized_and_valgrind("bindings/c/tests/cpp_test.cpp", "cpp_test");
}

fn sanitized_and_valgrind(source: &str, name: &str) {
    let dir = scratch(name);
    let native = dir.join(name);
    let sanitized = dir.join(format!("{name}_asan"));
    compile(source, &native, &[]);
    compile(
        source,
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
    attempt(&native, None, name);
    attempt(&sanitized, None, &format!("{name} under ASan + UBSan"));
    let valgrind = [
        "valgrind",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=9",
    ];
    let output = attempt(&native, Some(&valgrind), &format!("{name} under valgrind"));
    assert!(
        output.contains("ERROR SUMMARY: 0 errors"),
        "valgrind reported errors:\n{output}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `make install-files PREFIX=…` (what `make install` does after building) gives a prefix
/// from which `cc prog.c $(pkg-config --cflags --libs accord)` builds a working program, and
/// the library carries its ABI's SONAME.
#[test]
fn an_installed_library_builds_programs_through_pkg_config() {
    let dir = scratch("install");
    let prefix = dir.join("prefix");
    library_dir(); // the artifacts exist
    run(
        Command::new("make")
            .current_dir(root())
            .arg("install-files")
            .arg(format!("PREFIX={}", prefix.display())),
        "make install-files",
    );
    for file in [
        "lib/libaccord.so.0",
        "lib/libaccord.a",
        "include/accord.h",
        "lib/pkgconfig/accord.pc",
    ] {
        assert!(prefix.join(file).exists(), "{file} was not installed");
    }
    let soname = run(
        Command::new("readelf")
            .arg("-d")
            .arg(prefix.join("lib/libaccord.so")),
        "readelf",
    );
    assert!(
        soname.contains("libaccord.so.0"),
        "no versioned SONAME:\n{soname}"
    );
    let pkg_config = |args: &[&str]| {
        run(
            Command::new("pkg-config")
                .args(args)
                .arg("accord")
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
            "pkg-config",
        )
    };
    let flags: Vec<String> = pkg_config(&["--cflags", "--libs"])
        .split_whitespace()
        .map(String::from)
        .collect();
    let programs: Vec<(&str, &str, &str)> = {
        let mut list = vec![("cc", "bindings/c/tests/install_check.c", "-std=c99")];
        if root().join("bindings/c/tests/install_check.cpp").exists() {
            list.push(("c++", "bindings/c/tests/install_check.cpp", "-std=c++17"));
        }
        list
    };
    for (compiler, source, standard) in programs {
        let program = dir.join(Path::new(source).file_stem().unwrap());
        run(
            Command::new(compiler)
                .args([standard, "-Wall", "-Wextra", "-Werror"])
                .arg(root().join(source))
                .args(&flags)
                .arg("-o")
                .arg(&program),
            &format!("building {source} through pkg-config"),
        );
        let port = free_ports().remove(0);
        let output = run(
            Command::new(&program)
                .arg(port)
                .arg(dir.join(format!("data-{compiler}")))
                .env("LD_LIBRARY_PATH", prefix.join("lib")),
            source,
        );
        assert!(output.contains(": ok"), "{source}:\n{output}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every function the header declares is called by the C test program (a new export must
/// come with its test).
#[test]
fn the_c_test_calls_every_exported_function() {
    let header = std::fs::read_to_string(root().join("include/accord.h")).unwrap();
    let wrapper = std::fs::read_to_string(root().join("include/accord.hpp")).unwrap();
    assert!(
        wrapper.contains("accord_kv_put("),
        "the C++ wrapper wraps the C ABI"
    );
    let test = std::fs::read_to_string(root().join("bindings/c/tests/abi_test.c")).unwrap();
    let declared: std::collections::BTreeSet<&str> = header
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with('#'))
        .filter_map(|line| {
            let end = line.find('(')?;
            let name = line[..end].rsplit([' ', '*']).next()?;
            name.starts_with("accord_").then_some(name)
        })
        .collect();
    assert!(
        declared.len() > 50,
        "only {} functions found in the header",
        declared.len()
    );
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|name| !test.contains(&format!("{name}(")))
        .collect();
    assert!(missing.is_empty(), "abi_test.c never calls {missing:?}");
}

/// The C examples (workers sharing a queue and a fenced file; an elected singleton that hands
/// over when killed) build with every warning an error and do what their README says, against
/// a cluster of `accord server` processes.
#[test]
fn the_c_examples_work() {
    let output = run(
        Command::new("bash")
            .arg(root().join("bindings/c/examples/run_examples.sh"))
            .arg(env!("CARGO_BIN_EXE_accord"))
            .arg(library_dir())
            .arg(root().join("include")),
        "bindings/c/examples/run_examples.sh",
    );
    assert!(output.contains("examples: ok"), "{output}");
}

/// The fenced blocks of one language in a guide under `docs/guides`.
fn guide_examples(guide: &str, language: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs/guides").join(guide)).unwrap();
    let fence = format!("```{language}\n");
    let mut examples = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```\n").expect("a closed code block");
        examples.push(body[..end].to_string());
        rest = &body[end..];
    }
    examples
}

#[test]
fn the_c_and_cpp_guides_examples_compile_and_run() {
    let dir = scratch("guides");
    let mut ran = 0;
    for (guide, language, extension) in [("c.md", "c", "c"), ("cpp.md", "cpp", "cpp")] {
        let examples = guide_examples(guide, language);
        assert!(!examples.is_empty(), "{guide} has no {language} example");
        for (index, example) in examples.iter().enumerate() {
            let source = dir.join(format!("{language}_example_{index}.{extension}"));
            std::fs::write(&source, example).unwrap();
            let program = dir.join(format!("{language}_example_{index}"));
            compile(source.to_str().unwrap(), &program, &[]);
            run(
                &mut Command::new(&program),
                &format!("example {} of docs/guides/{guide}", index + 1),
            );
            ran += 1;
        }
    }
    assert!(ran >= 4);
}
