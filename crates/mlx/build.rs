//! Gives this crate's own test/example binaries a RUNPATH to the libmlx that mlx-sys found
//! (`rustc-link-arg` from mlx-sys does not reach dependents' binaries). Other crates that build
//! binaries against MLX do the same with `DEP_MLX_LIB_DIR`, which needs a direct mlx-sys dependency.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MLX_LIB_DIR");
    let Ok(lib_dir) = std::env::var("DEP_MLX_LIB_DIR") else {
        return;
    };
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    } else {
        // New dtags (RUNPATH): LD_LIBRARY_PATH can still swap in another libmlx.so (e.g. CUDA).
        println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
