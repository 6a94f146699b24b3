use mlx_sys::{etm_stream, DEVICE_CPU, DEVICE_GPU};

use crate::error::{check, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceType {
    Cpu,
    Gpu,
}

impl DeviceType {
    pub(crate) fn code(self) -> i32 {
        match self {
            DeviceType::Cpu => DEVICE_CPU,
            DeviceType::Gpu => DEVICE_GPU,
        }
    }

    fn from_code(code: i32) -> DeviceType {
        if code == DEVICE_GPU {
            DeviceType::Gpu
        } else {
            DeviceType::Cpu
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Device {
    pub device_type: DeviceType,
    pub index: i32,
}

/// An MLX stream: a queue of work on one device. A plain value (MLX identifies streams by index);
/// every op takes one explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    raw: etm_stream,
}

impl Stream {
    /// A fresh stream on the device for the calling thread (`mlx::core::new_stream`); see
    /// [`Stream::new_any_thread`] for work that moves between threads.
    pub fn new(device_type: DeviceType) -> Result<Stream> {
        let mut raw = etm_stream {
            index: 0,
            device_type: 0,
            device_index: 0,
        };
        // SAFETY: out-pointer to a live local.
        check("new_stream", unsafe {
            mlx_sys::etm_new_stream(device_type.code(), &mut raw)
        })?;
        Ok(Stream { raw })
    }

    /// A fresh stream usable from any thread (`mlx::core::new_thread_unsafe_stream`).
    ///
    /// Streams from [`Stream::new`] and [`Stream::default_for`] belong to the thread that made
    /// them: in MLX 0.32, evaluating their work on another thread fails with "There is no
    /// Stream(..) in current thread". A delegate whose `execute` may run on different threads
    /// (serialised by its mutex) must use this constructor.
    pub fn new_any_thread(device_type: DeviceType) -> Result<Stream> {
        let mut raw = etm_stream {
            index: 0,
            device_type: 0,
            device_index: 0,
        };
        // SAFETY: out-pointer to a live local.
        check("new_thread_unsafe_stream", unsafe {
            mlx_sys::etm_new_thread_unsafe_stream(device_type.code(), &mut raw)
        })?;
        Ok(Stream { raw })
    }

    /// The calling thread's default stream for the device (`mlx::core::default_stream`).
    pub fn default_for(device_type: DeviceType) -> Result<Stream> {
        let mut raw = etm_stream {
            index: 0,
            device_type: 0,
            device_index: 0,
        };
        // SAFETY: out-pointer to a live local.
        check("default_stream", unsafe {
            mlx_sys::etm_default_stream(device_type.code(), &mut raw)
        })?;
        Ok(Stream { raw })
    }

    pub fn index(self) -> i32 {
        self.raw.index
    }

    pub fn device(self) -> Device {
        Device {
            device_type: DeviceType::from_code(self.raw.device_type),
            index: self.raw.device_index,
        }
    }

    pub(crate) fn raw(self) -> etm_stream {
        self.raw
    }
}

/// Whether MLX can run on this device type (GPU = Metal or CUDA build with a usable GPU).
pub fn is_available(device_type: DeviceType) -> bool {
    let mut available = false;
    // SAFETY: out-pointer to a live local.
    let status = unsafe { mlx_sys::etm_is_available(device_type.code(), &mut available) };
    status == 0 && available
}

/// MLX's default device (GPU when available, else CPU).
pub fn default_device() -> Result<Device> {
    let (mut device_type, mut index) = (0, 0);
    // SAFETY: out-pointers to live locals.
    check("default_device", unsafe {
        mlx_sys::etm_default_device(&mut device_type, &mut index)
    })?;
    Ok(Device {
        device_type: DeviceType::from_code(device_type),
        index,
    })
}

/// Waits until all work queued on `stream` has finished.
pub fn synchronize(stream: Stream) -> Result<()> {
    // SAFETY: plain value argument.
    check("synchronize", unsafe {
        mlx_sys::etm_synchronize(stream.raw)
    })
}
