//! Gives the package's binaries, tests and examples a RUNPATH to the libmlx that mlx-sys found
//! (`rustc-link-arg` from mlx-sys does not reach dependents' binaries). Shared: any package with a
//! direct `mlx-sys` dependency (which provides `DEP_MLX_LIB_DIR`) can use it as `build = "../mlx/build.rs"`.

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
