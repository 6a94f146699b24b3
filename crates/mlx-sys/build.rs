//! Finds a prebuilt MLX (headers + `libmlx`), compiles the C++ shim against it and links it.
//!
//! Discovery order (the first that yields `include/mlx/mlx.h` and `lib/libmlx.{so,dylib}` wins):
//! 1. `MLX_DIR`: a prefix with `include/` and `lib/`, e.g. a wheel's `site-packages/mlx` folder.
//! 2. `MLX_INCLUDE_DIR` + `MLX_LIB_DIR`, set separately.
//! 3. Python: `$MLX_PYTHON`, else `$PYTHON`, else `python3`, asked where the `mlx` package lives via
//!    `importlib.util.find_spec` — never importing `mlx.core`, because the backend-only wheels
//!    (`mlx-cpu`, `mlx-cuda-13`) install `mlx` as a namespace package holding only include/lib/share.
//!
//! Run-time: the produced binaries get a RUNPATH (new dtags, so `LD_LIBRARY_PATH` still wins and can
//! swap in the CUDA build of `libmlx.so`) pointing at the discovered lib dir. `rustc-link-arg` only
//! reaches this package's own targets, so the lib dir is also exported as `DEP_MLX_LIB_DIR` (and the
//! headers as `DEP_MLX_INCLUDE`) for dependents whose binaries need the same RUNPATH.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const ENV_VARS: &[&str] = &[
    "MLX_DIR",
    "MLX_INCLUDE_DIR",
    "MLX_LIB_DIR",
    "MLX_PYTHON",
    "PYTHON",
];

const SHIM_SOURCES: &[&str] = &[
    "core.cpp",
    "ops_elementwise.cpp",
    "ops_shape.cpp",
    "ops_reduce.cpp",
    "ops_linalg.cpp",
    "ops_nn.cpp",
    "ops_fast.cpp",
    "ops_compiled.cpp",
    "ops_decode_attention.cpp",
    "ops_residual_norm.cpp",
];

struct MlxLocation {
    include_dir: PathBuf,
    lib_dir: PathBuf,
    found_by: String,
}

fn main() {
    for var in ENV_VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-changed=build.rs");

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let location = match discover(&target_os) {
        Ok(location) => location,
        Err(tried) => fail(&target_os, &tried),
    };
    // Plain output (not a cargo:warning): visible with `cargo build -vv`.
    println!(
        "mlx-sys: using MLX from {} (found via {})",
        location.lib_dir.display(),
        location.found_by
    );

    compile_shim(&location.include_dir);

    println!(
        "cargo:rustc-link-search=native={}",
        location.lib_dir.display()
    );
    println!("cargo:rustc-link-lib=dylib=mlx");
    if target_os == "macos" {
        println!("cargo:rustc-link-lib=dylib=c++");
    } else {
        println!("cargo:rustc-link-lib=dylib=stdc++");
        // dladdr (runtime_info's library path) lives in libdl on older glibc.
        println!("cargo:rustc-link-lib=dylib=dl");
    }
    for arg in rpath_link_args(&target_os, &location.lib_dir) {
        println!("cargo:rustc-link-arg={arg}");
    }

    // `links = "mlx"` metadata: DEP_MLX_INCLUDE, DEP_MLX_LIB_DIR for dependents.
    println!("cargo:include={}", location.include_dir.display());
    println!("cargo:lib_dir={}", location.lib_dir.display());
    println!(
        "cargo:rustc-env=ETMLX_MLX_LIB_DIR={}",
        location.lib_dir.display()
    );
}

fn rpath_link_args(target_os: &str, lib_dir: &Path) -> Vec<String> {
    if target_os == "macos" {
        vec![format!("-Wl,-rpath,{}", lib_dir.display())]
    } else {
        vec![
            "-Wl,--enable-new-dtags".to_string(),
            format!("-Wl,-rpath,{}", lib_dir.display()),
        ]
    }
}

fn discover(target_os: &str) -> Result<MlxLocation, Vec<String>> {
    let mut tried = Vec::new();

    if let Some(dir) = env::var_os("MLX_DIR") {
        let dir = PathBuf::from(dir);
        let candidate = MlxLocation {
            include_dir: dir.join("include"),
            lib_dir: dir.join("lib"),
            found_by: format!("MLX_DIR={}", dir.display()),
        };
        match check(&candidate, target_os) {
            Ok(()) => return Ok(candidate),
            Err(why) => {
                // An explicit setting that is wrong must not be silently replaced by another MLX.
                fail_explicit(&format!("MLX_DIR={}: {why}", dir.display()));
            }
        }
    }

    match (env::var_os("MLX_INCLUDE_DIR"), env::var_os("MLX_LIB_DIR")) {
        (Some(include), Some(lib)) => {
            let candidate = MlxLocation {
                include_dir: PathBuf::from(include),
                lib_dir: PathBuf::from(lib),
                found_by: "MLX_INCLUDE_DIR + MLX_LIB_DIR".to_string(),
            };
            match check(&candidate, target_os) {
                Ok(()) => return Ok(candidate),
                Err(why) => fail_explicit(&format!("MLX_INCLUDE_DIR/MLX_LIB_DIR: {why}")),
            }
        }
        (Some(_), None) | (None, Some(_)) => fail_explicit(
            "MLX_INCLUDE_DIR and MLX_LIB_DIR must be set together (or set MLX_DIR instead)",
        ),
        (None, None) => tried.push("MLX_DIR / MLX_INCLUDE_DIR+MLX_LIB_DIR: not set".to_string()),
    }

    let python = env::var("MLX_PYTHON")
        .or_else(|_| env::var("PYTHON"))
        .unwrap_or_else(|_| "python3".to_string());
    match python_mlx_dirs(&python) {
        Ok(dirs) if dirs.is_empty() => {
            tried.push(format!("{python}: no `mlx` package installed"));
        }
        Ok(dirs) => {
            for dir in dirs {
                let candidate = MlxLocation {
                    include_dir: dir.join("include"),
                    lib_dir: dir.join("lib"),
                    found_by: format!("{python} (mlx package at {})", dir.display()),
                };
                match check(&candidate, target_os) {
                    Ok(()) => return Ok(candidate),
                    Err(why) => tried.push(format!("{python}: {}: {why}", dir.display())),
                }
            }
        }
        Err(why) => tried.push(format!("{python}: {why}")),
    }
    Err(tried)
}

/// Asks the interpreter where the `mlx` package's folders are, without importing `mlx.core`.
fn python_mlx_dirs(python: &str) -> Result<Vec<PathBuf>, String> {
    const SCRIPT: &str = "import importlib.util as u\n\
        s = u.find_spec('mlx')\n\
        print('\\n'.join(list(s.submodule_search_locations or []) if s else []))\n";
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .output()
        .map_err(|e| format!("could not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "find_spec('mlx') failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(PathBuf::from)
        .collect())
}

fn check(candidate: &MlxLocation, target_os: &str) -> Result<(), String> {
    let header = candidate.include_dir.join("mlx").join("mlx.h");
    if !header.is_file() {
        return Err(format!("{} not found", header.display()));
    }
    let lib_name = if target_os == "macos" {
        "libmlx.dylib"
    } else {
        "libmlx.so"
    };
    let lib = candidate.lib_dir.join(lib_name);
    if !lib.is_file() {
        return Err(format!("{} not found", lib.display()));
    }
    Ok(())
}

fn compile_shim(include_dir: &Path) {
    let shim_dir = Path::new("shim");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .pic(true)
        .include(include_dir)
        .include(shim_dir)
        .warnings(false)
        .flag_if_supported("-Wno-deprecated-declarations");
    for source in SHIM_SOURCES {
        build.file(shim_dir.join(source));
    }
    build.compile("etmlx_mlx_shim");
}

fn install_hint(target_os: &str) -> &'static str {
    if target_os == "macos" {
        "  pip install mlx                 (macOS, Apple silicon)"
    } else {
        "  pip install mlx-cpu             (Linux without an NVIDIA GPU)\n  \
         pip install \"mlx[cuda13]\"       (Linux with an NVIDIA GPU, CUDA 13)"
    }
}

fn fail(target_os: &str, tried: &[String]) -> ! {
    let mut message = String::from("mlx-sys: could not find MLX (headers + libmlx).\nTried:\n");
    for line in tried {
        message.push_str("  - ");
        message.push_str(line);
        message.push('\n');
    }
    message.push_str("Install a wheel that ships the C++ library and headers:\n");
    message.push_str(install_hint(target_os));
    message.push_str(
        "\nthen point MLX_PYTHON at that interpreter (default: python3), or set\n  \
         MLX_DIR=<site-packages>/mlx   (a folder with include/mlx/mlx.h and lib/libmlx.*)\n",
    );
    eprintln!("{message}");
    std::process::exit(1);
}

fn fail_explicit(why: &str) -> ! {
    let message = format!(
        "mlx-sys: {why}\nThe folder must contain include/mlx/mlx.h and lib/libmlx.so (libmlx.dylib on macOS)."
    );
    eprintln!("{message}");
    std::process::exit(1);
}
