//! Prints what MLX this binary runs against: `cargo run -p mlx --example runtime_info`.
//! Set `LD_LIBRARY_PATH` to another wheel's `mlx/lib` to check that it takes over at run time.

fn main() -> Result<(), mlx::MlxError> {
    let info = mlx::runtime_info()?;
    println!("version:        {}", info.version);
    println!("headers:        {:?}", info.header_version);
    println!("versions match: {}", info.versions_match());
    println!("library:        {:?}", info.library_path);
    println!("build lib dir:  {}", info.build_lib_dir);
    println!("gpu available:  {}", info.gpu_available);
    println!("default device: {:?}", info.default_device);
    Ok(())
}
