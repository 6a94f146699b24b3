//! Array plumbing: construction, queries, read-back, errors, streams, random, runtime info.
mod common;

use common::*;
use half::{bf16, f16};
use mlx::ops::{self, BinaryOp};
use mlx::{random, Array, DeviceType, Dtype, MlxError, Stream};

#[test]
fn from_bytes_rejects_wrong_length() {
    let _g = lock();
    let err = Array::from_bytes(&[0u8; 7], &[2], Dtype::Float32).unwrap_err();
    assert!(
        matches!(
            err,
            MlxError::InvalidArgument {
                op: "from_bytes",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("7 bytes"), "{err}");
    let err = Array::from_bytes(&[], &[-1], Dtype::Uint8).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    let err = Array::from_slice(&[1.0f32, 2.0], &[3]).unwrap_err();
    assert!(matches!(err, MlxError::InvalidArgument { .. }), "{err}");
}

#[test]
fn from_bytes_round_trips_every_plain_dtype() {
    let _g = lock();
    // 1.5f32 = 0x3FC00000, stored little-endian.
    let a = Array::from_bytes(&[0x00, 0x00, 0xC0, 0x3F], &[1], Dtype::Float32).unwrap();
    assert_eq!(read_f32(&a), vec![1.5]);
    for dtype in Dtype::ALL {
        let bytes: Vec<u8> = (0..(6 * dtype.size()) as u8).collect();
        let a = Array::from_bytes(&bytes, &[2, 3], dtype).unwrap();
        assert_eq!(a.dtype(), dtype);
        assert_eq!(a.to_bytes().unwrap(), bytes, "{dtype}");
        assert_eq!(a.nbytes(), bytes.len());
        assert_eq!(a.itemsize(), dtype.size());
    }
}

#[test]
fn queries_report_shape_dtype_and_sizes() {
    let _g = lock();
    let a = f32s(&[0.0; 24], &[2, 3, 4]);
    assert_eq!(a.shape(), vec![2, 3, 4]);
    assert_eq!(a.ndim(), 3);
    assert_eq!(a.size(), 24);
    assert_eq!(a.itemsize(), 4);
    assert_eq!(a.nbytes(), 96);
    assert_eq!(a.dim(-1), Some(4));
    assert_eq!(a.dim(3), None);
    let s = Array::scalar_f32(2.5).unwrap();
    assert_eq!(s.ndim(), 0);
    assert_eq!(s.size(), 1);
    assert_eq!(s.item_f64().unwrap(), 2.5);
}

#[test]
fn typed_from_slice_and_to_vec() {
    let _g = lock();
    let a = Array::from_slice(&[1i64 << 40, -3], &[2]).unwrap();
    assert_eq!(a.dtype(), Dtype::Int64);
    assert_eq!(a.to_vec::<i64>().unwrap(), vec![1i64 << 40, -3]);
    let b = Array::from_slice(&[true, false, true], &[3]).unwrap();
    assert_eq!(read_bool(&b), vec![true, false, true]);
    let c = Array::from_slice(&[u32::MAX, 7], &[2]).unwrap();
    assert_eq!(c.to_vec::<u32>().unwrap(), vec![u32::MAX, 7]);
    let d = Array::from_slice(&[200u8], &[1]).unwrap();
    assert_eq!(d.to_vec::<u8>().unwrap(), vec![200]);
    let h = Array::from_slice(&[f16::from_f32(0.5), f16::from_f32(-2.0)], &[2]).unwrap();
    assert_eq!(h.dtype(), Dtype::Float16);
    let err = h.to_vec::<f32>().unwrap_err();
    assert!(err.to_string().contains("float16"), "{err}");
}

#[test]
fn item_handles_integer_bool_and_half_types() {
    let _g = lock();
    assert_eq!(Array::scalar_i32(-7).unwrap().item_i64().unwrap(), -7);
    let big = Array::scalar_i64_as(5_000_000_000, Dtype::Int64).unwrap();
    assert_eq!(big.item_i64().unwrap(), 5_000_000_000);
    let unsigned = Array::from_slice(&[4_000_000_000u32], &[1]).unwrap();
    assert_eq!(unsigned.item_i64().unwrap(), 4_000_000_000);
    assert_eq!(Array::scalar_bool(true).unwrap().item_i64().unwrap(), 1);
    let err = Array::scalar_f32(1.0).unwrap().item_i64().unwrap_err();
    assert!(matches!(err, MlxError::Mlx { op: "item_i64", .. }), "{err}");
    let err = f32s(&[1.0, 2.0], &[2]).item_f64().unwrap_err();
    assert!(err.to_string().contains("exactly one element"), "{err}");
    let b = Array::from_slice(&[bf16::from_f32(-0.75)], &[]).unwrap();
    assert_eq!(b.item_f64().unwrap(), -0.75);
    let h = Array::scalar_f64_as(3.0, Dtype::Float16).unwrap();
    assert_eq!(h.dtype(), Dtype::Float16);
    assert_eq!(h.item_f64().unwrap(), 3.0);
}

#[test]
fn read_back_of_strided_view_is_row_major() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let t = ops::transpose(&a, &[1, 0], s).unwrap();
    assert_eq!(t.shape(), vec![3, 2]);
    assert_eq!(read_f32(&t), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let row = f32s(&[7.0, 8.0], &[1, 2]);
    let b = ops::broadcast_to(&row, &[3, 2], s).unwrap();
    assert_eq!(read_f32(&b), vec![7.0, 8.0, 7.0, 8.0, 7.0, 8.0]);
    let mut small = [0u8; 4];
    let err = b.read_into(&mut small).unwrap_err();
    assert!(
        err.to_string().contains("destination holds 4 bytes"),
        "{err}"
    );
}

#[test]
fn mlx_exceptions_come_back_as_errors() {
    let _g = lock();
    let a = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let err = ops::reshape(&a, &[4, 2], cpu()).unwrap_err();
    match &err {
        MlxError::Mlx { op, message } => {
            assert_eq!(*op, "reshape");
            assert!(message.contains("reshape"), "{message}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    let b = f32s(&[1.0, 2.0], &[2]);
    let err = ops::binary(BinaryOp::Add, &a, &b, cpu()).unwrap_err();
    assert!(err.to_string().contains("Add"), "{err}");
    // The failure left no stale state: the next call works.
    let ok = ops::reshape(&a, &[3, 2], cpu()).unwrap();
    assert_eq!(ok.shape(), vec![3, 2]);
}

#[test]
fn clone_shares_the_buffer() {
    let _g = lock();
    let a = f32s(&[1.0, 2.0], &[2]);
    let b = a.clone();
    assert_eq!(a.id(), b.id());
    drop(a);
    assert_eq!(read_f32(&b), vec![1.0, 2.0]);
}

#[test]
fn eval_async_eval_and_wait() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0], &[2]);
    let b = ops::binary(BinaryOp::Multiply, &a, &a, s).unwrap();
    let c = ops::binary(BinaryOp::Add, &a, &a, s).unwrap();
    mlx::eval(&[&b, &c]).unwrap();
    assert_eq!(read_f32(&b), vec![1.0, 4.0]);
    let d = ops::binary(BinaryOp::Subtract, &b, &a, s).unwrap();
    mlx::async_eval(&[&d]).unwrap();
    d.wait().unwrap();
    assert_eq!(read_f32(&d), vec![0.0, 2.0]);
    c.eval().unwrap();
    assert_eq!(read_f32(&c), vec![2.0, 4.0]);
    mlx::synchronize(s).unwrap();
}

#[test]
fn graph_primitive_counts_cover_only_pending_nodes() {
    let _g = lock();
    let s = cpu();
    let a = f32s(&[1.0, 2.0, 3.0, 4.0], &[4]);
    let b = ops::binary(BinaryOp::Add, &a, &a, s).unwrap();
    let c = ops::binary(BinaryOp::Multiply, &b, &b, s).unwrap();
    let d = ops::binary(BinaryOp::Add, &c, &b, s).unwrap();
    // `b` is reached twice (from `c` and `d`) but is one node; the leaf `a` has no primitive.
    let counts = mlx::graph_primitive_counts(&[&d]).unwrap();
    assert_eq!(
        counts,
        vec![("Add".to_string(), 2), ("Multiply".to_string(), 1)]
    );
    // The two halves of a split are outputs of one node.
    let halves = ops::split_equal(&d, 2, 0, s).unwrap();
    let counts = mlx::graph_primitive_counts(&[&halves[0], &halves[1]]).unwrap();
    let split = counts
        .iter()
        .find(|(name, _)| name == "Split")
        .map(|&(_, n)| n);
    assert_eq!(split, Some(1), "{counts:?}");
    // Once evaluated, nothing is pending.
    mlx::eval(&[&d]).unwrap();
    assert!(mlx::graph_primitive_counts(&[&d]).unwrap().is_empty());
}

#[test]
fn streams_and_devices() {
    let _g = lock();
    assert!(mlx::is_available(DeviceType::Cpu));
    let s = Stream::new(DeviceType::Cpu).unwrap();
    assert_eq!(s.device().device_type, DeviceType::Cpu);
    assert_ne!(s, cpu());
    let a = f32s(&[1.0], &[1]);
    let b = ops::binary(BinaryOp::Add, &a, &a, s).unwrap();
    assert_eq!(read_f32(&b), vec![2.0]);
    mlx::synchronize(s).unwrap();
    let _device = mlx::default_device().unwrap();
}

#[test]
fn thread_bound_and_any_thread_streams() {
    let _g = lock();
    // A plain new_stream belongs to its thread: using it elsewhere is an error, not a crash.
    let bound = Stream::new(DeviceType::Cpu).unwrap();
    let a = f32s(&[3.0], &[1]);
    let result = std::thread::spawn(move || {
        let b = ops::binary(BinaryOp::Multiply, &a, &a, bound)?;
        b.to_vec::<f32>()
    })
    .join()
    .expect("thread");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("current thread"), "{err}");

    let shared = Stream::new_any_thread(DeviceType::Cpu).unwrap();
    let a = f32s(&[3.0], &[1]);
    let b = ops::binary(BinaryOp::Multiply, &a, &a, shared).unwrap();
    let result = std::thread::spawn(move || {
        let c = ops::binary(BinaryOp::Add, &b, &a, shared)?;
        c.to_vec::<f32>()
    })
    .join()
    .expect("thread");
    assert_eq!(result.unwrap(), vec![12.0]);
}

#[test]
fn random_bits_have_width_dtype_and_follow_the_key() {
    let _g = lock();
    let s = cpu();
    let key = random::key(7).unwrap();
    for (width, dtype) in [(1, Dtype::Uint8), (2, Dtype::Uint16), (4, Dtype::Uint32)] {
        let bits = random::bits(&[4, 8], width, Some(&key), s).unwrap();
        assert_eq!(bits.dtype(), dtype);
        assert_eq!(bits.shape(), vec![4, 8]);
    }
    let a = random::bits(&[64], 4, Some(&key), s).unwrap();
    let b = random::bits(&[64], 4, Some(&random::key(7).unwrap()), s).unwrap();
    let c = random::bits(&[64], 4, Some(&random::key(8).unwrap()), s).unwrap();
    let (a, b, c) = (
        a.to_vec::<u32>().unwrap(),
        b.to_vec::<u32>().unwrap(),
        c.to_vec::<u32>().unwrap(),
    );
    assert_eq!(a, b, "same seed, same bits");
    assert_ne!(a, c, "different seeds, different bits");
    assert!(random::bits(&[2], 3, None, s).is_err());
    let unkeyed = random::bits(&[3], 4, None, s).unwrap();
    assert_eq!(unkeyed.shape(), vec![3]);
}

#[test]
fn runtime_info_reports_the_loaded_library() {
    let _g = lock();
    let info = mlx::runtime_info().unwrap();
    assert_eq!(info.header_version, (0, 32, 4));
    assert!(info.versions_match(), "{info:?}");
    assert!(info.version.starts_with("0.32.4"), "{}", info.version);
    let path = info.library_path.expect("dladdr finds libmlx");
    assert!(
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libmlx")),
        "{path:?}"
    );
    assert!(!info.build_lib_dir.is_empty());
}
