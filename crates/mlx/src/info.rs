use std::ffi::CStr;
use std::path::PathBuf;

use crate::device::{default_device, is_available, Device, DeviceType};
use crate::error::{check, Result};

/// Version string of the loaded libmlx (`mlx::core::version()`), e.g. `"0.32.4"`.
pub fn version() -> Result<String> {
    let mut raw = std::ptr::null();
    // SAFETY: out-pointer to a live local; MLX returns a static NUL-terminated string.
    check("version", unsafe { mlx_sys::etm_version(&mut raw) })?;
    if raw.is_null() {
        return Ok(String::new());
    }
    // SAFETY: non-null, NUL-terminated, static.
    Ok(unsafe { CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned())
}

/// What `etmlx doctor` reports about MLX.
#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    /// Version of the libmlx loaded at run time.
    pub version: String,
    /// Version of the headers the shim was compiled against (major, minor, patch).
    pub header_version: (i32, i32, i32),
    /// File the running process loaded libmlx from, when the loader can tell.
    pub library_path: Option<PathBuf>,
    /// Lib dir found at build time (the binaries' RUNPATH).
    pub build_lib_dir: &'static str,
    pub gpu_available: bool,
    pub default_device: Device,
}

impl RuntimeInfo {
    /// True when the loaded library's `major.minor.patch` equals the headers' (a mismatch means
    /// the C++ ABI the shim was compiled for may not be the one running).
    pub fn versions_match(&self) -> bool {
        let (major, minor, patch) = self.header_version;
        let expected = format!("{major}.{minor}.{patch}");
        self.version == expected || self.version.starts_with(&format!("{expected}."))
    }
}

pub fn runtime_info() -> Result<RuntimeInfo> {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: out-pointers to live locals.
    check("header_version", unsafe {
        mlx_sys::etm_header_version(&mut major, &mut minor, &mut patch)
    })?;
    let mut raw_path = std::ptr::null();
    // SAFETY: out-pointer to a live local; the string is owned by the dynamic loader.
    check("library_path", unsafe {
        mlx_sys::etm_library_path(&mut raw_path)
    })?;
    let library_path = if raw_path.is_null() {
        None
    } else {
        // SAFETY: non-null NUL-terminated string from dladdr.
        let path = unsafe { CStr::from_ptr(raw_path) }
            .to_string_lossy()
            .into_owned();
        (!path.is_empty()).then(|| PathBuf::from(path))
    };
    Ok(RuntimeInfo {
        version: version()?,
        header_version: (major, minor, patch),
        library_path,
        build_lib_dir: mlx_sys::MLX_LIB_DIR,
        gpu_available: is_available(DeviceType::Gpu),
        default_device: default_device()?,
    })
}
