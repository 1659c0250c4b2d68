//! Finds libmhc and tells cargo how to link it. No dependencies: `pkg-config` is run as a
//! command.
//!
//! Order:
//!  1. `MHC_LIB_DIR=<dir>`: link `<dir>/libmhc.so` (no pkg-config needed);
//!  2. `pkg-config --libs mhc` (the binary is `$PKG_CONFIG` if set), which honours
//!     `PKG_CONFIG_PATH`, e.g. `<prefix>/lib/pkgconfig` of `cmake --install`.
//!
//! Emits `cargo:root`, `cargo:include` and `cargo:lib_dir` metadata (seen by dependents'
//! build scripts as `DEP_MHC_ROOT`, `DEP_MHC_INCLUDE`, `DEP_MHC_LIB_DIR`).
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for var in [
        "MHC_LIB_DIR",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    if let Some(dir) = env::var_os("MHC_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !has_libmhc(&dir) {
            panic!(
                "\n\nmhc-sys: MHC_LIB_DIR={} contains no libmhc.so (or libmhc.a).\n\
                 Point it at the lib/ directory of an mhc install, e.g. <prefix>/lib.\n\n",
                dir.display()
            );
        }
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=mhc");
        println!("cargo:lib_dir={}", dir.display());
        if let Some(root) = dir.parent() {
            println!("cargo:root={}", root.display());
            let include = root.join("include");
            if include.join("mhc").join("mhc.h").is_file() {
                println!("cargo:include={}", include.display());
            }
        }
        return;
    }

    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let libs = match run(&pkg_config, &["--libs", "mhc"]) {
        Ok(out) => out,
        Err(why) => panic!(
            "\n\nmhc-sys: could not find libmhc: `{pkg_config} --libs mhc` {why}\n\
             Build and install the C library, then point pkg-config at it:\n\
             \x20   cmake -S . -B build -G Ninja && ninja -C build && cmake --install build --prefix $PWD/build/prefix\n\
             \x20   export PKG_CONFIG_PATH=$PWD/build/prefix/lib/pkgconfig LD_LIBRARY_PATH=$PWD/build/prefix/lib\n\
             or set MHC_LIB_DIR to the directory that holds libmhc.so.\n\n"
        ),
    };

    let mut linked = false;
    for flag in libs.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:lib_dir={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
            linked |= lib == "mhc";
        }
        // Anything else (e.g. -pthread, -Wl,...) is not needed to link a shared libmhc.
    }
    if !linked {
        println!("cargo:rustc-link-lib=mhc");
    }
    if let Ok(cflags) = run(&pkg_config, &["--cflags-only-I", "mhc"]) {
        if let Some(dir) = cflags.split_whitespace().find_map(|f| f.strip_prefix("-I")) {
            println!("cargo:include={dir}");
        }
    }
    if let Ok(prefix) = run(&pkg_config, &["--variable=prefix", "mhc"]) {
        println!("cargo:root={}", prefix.trim());
    }
    if let Ok(version) = run(&pkg_config, &["--modversion", "mhc"]) {
        let version = version.trim();
        println!("cargo:version={version}");
        warn_on_version_mismatch(version);
    }
}

/// The loaded library is checked at run time (Context creation); this only warns early when
/// pkg-config's libmhc has another major.minor than the header the bindings came from.
fn warn_on_version_mismatch(lib_version: &str) {
    println!("cargo:rerun-if-changed=src/bindings.rs");
    let Ok(bindings) = std::fs::read_to_string("src/bindings.rs") else {
        return;
    };
    let constant = |name: &str| {
        let pat = format!("pub const {name}: i32 = ");
        let line = bindings.lines().find(|l| l.starts_with(&pat))?;
        line[pat.len()..].trim_end_matches(';').parse::<u32>().ok()
    };
    let (Some(major), Some(minor)) = (constant("MHC_VERSION_MAJOR"), constant("MHC_VERSION_MINOR"))
    else {
        return;
    };
    let mut lib = lib_version.split('.').map(|p| p.parse::<u32>().ok());
    if (lib.next().flatten(), lib.next().flatten()) != (Some(major), Some(minor)) {
        println!(
            "cargo:warning=pkg-config's libmhc is {lib_version}, but the bindings were generated \
             from the {major}.{minor} header (regenerate with mhc-sys/generate.sh)"
        );
    }
}

fn has_libmhc(dir: &Path) -> bool {
    ["libmhc.so", "libmhc.a", "libmhc.dylib", "mhc.lib"]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// Runs `cmd args`, returning stdout, or a description of the failure.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("could not be run ({e}); is pkg-config installed?"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "failed ({}): {}(PKG_CONFIG_PATH={})",
            out.status,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("{} ", stderr.trim())
            },
            env::var("PKG_CONFIG_PATH").unwrap_or_default()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "printed non-UTF-8 output".to_string())
}
