//! Generates the C header from the ABI in `src/ffi` (cbindgen, settings in `cbindgen.toml`)
//! into the build directory, and tells the crate where (`ACCORD_GENERATED_HEADER`), so that
//! `tests/c_abi.rs` can fail when the committed `include/accord.h` is stale. `make header`
//! (ACCORD_WRITE_HEADER=1) writes it to `include/accord.h`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=ACCORD_WRITE_HEADER");
    // The shared library's SONAME carries the ABI's major version: a program linked today
    // refuses a future libaccord that breaks the ABI instead of misbehaving.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libaccord.so.0");
        // Programs linked against target/<profile>/libaccord.so ask for libaccord.so.0 at run
        // time: give that name to the build's library (OUT_DIR is target/<profile>/build/…).
        #[cfg(unix)]
        {
            let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
            if let Some(profile_dir) = out_dir.ancestors().nth(3) {
                let link = profile_dir.join("libaccord.so.0");
                if std::fs::symlink_metadata(&link).is_err() {
                    let _ = std::os::unix::fs::symlink("libaccord.so", &link);
                }
            }
        }
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let generated = out_dir.join("accord.h");
    println!(
        "cargo:rustc-env=ACCORD_GENERATED_HEADER={}",
        generated.display()
    );
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    // Only the ABI's files (mod.rs and the submodules it declares): the rest of the crate's
    // public items are not C's business.
    let result = cbindgen::Builder::new()
        .with_src(crate_dir.join("src").join("ffi").join("mod.rs"))
        .with_config(config)
        .generate();
    let header = match result {
        Ok(bindings) => {
            let mut text = Vec::new();
            bindings.write(&mut text);
            text
        }
        Err(error) => {
            // The header test reports it; the library itself still builds.
            println!("cargo:warning=cbindgen could not generate the header: {error}");
            Vec::new()
        }
    };
    std::fs::write(&generated, &header).expect("OUT_DIR is writable");
    if std::env::var_os("ACCORD_WRITE_HEADER").is_some() {
        let path = crate_dir.join("include").join("accord.h");
        std::fs::create_dir_all(crate_dir.join("include")).expect("include/ can be created");
        std::fs::write(path, header).expect("include/accord.h is writable");
    }
}
