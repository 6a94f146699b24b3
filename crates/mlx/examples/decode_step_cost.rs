//! Host cost of a Llama-3.2-1B-shaped decode step built directly on MLX, with the node sequence etmlx's passes
//! leave (fused q/k/v and gate/up products, one rope for q and k, compiled SwiGLU, KV-cache slice updates):
//! the floor an executor that adds nothing of its own would reach, to set beside `etmlx bench --profile`.
//! Each step is built, submitted with `async_eval` and waited for; the times are medians over the steps.
//! Steps run at positions START.. (the cache holds zeros before START): from 256 cached keys on, MLX's CUDA
//! attention for one query switches from its vector kernel to cuDNN.
//!   usage: cargo run --release -p mlx --example decode_step_cost [-- gpu|cpu [LAYERS] [STEPS] [START]]

use std::time::Instant;

use mlx::fast::RopeOffset;
use mlx::ops::{self, BinaryOp};
use mlx::{Array, DeviceType, Dtype, Result, Stream};

const HIDDEN: i32 = 2048;
const HEADS: i32 = 32;
const KV_HEADS: i32 = 8;
const HEAD_DIM: i32 = 64;
const FFN: i32 = 8192;
const VOCAB: i32 = 128256;
const CONTEXT: i32 = 4096;

struct Layer {
    norm1: Array,
    qkv: Array,
    o: Array,
    norm2: Array,
    gate_up: Array,
    down: Array,
    keys: Option<Array>,
    values: Option<Array>,
}

/// A weight `[n, k]` viewed as the `[1, k, n]` right operand of a batched product (how etmlx runs linears).
fn weight(n: i32, k: i32, s: Stream) -> Result<Array> {
    let w = ops::full_f64(&[n, k], 0.0005, Dtype::Bfloat16, s)?;
    ops::expand_dims(&ops::transpose(&w, &[1, 0], s)?, 0, s)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = match args.first().map(String::as_str) {
        Some("cpu") => DeviceType::Cpu,
        _ => DeviceType::Gpu,
    };
    let layers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let steps: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let first: i32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let s = Stream::new(device)?;
    let bf16 = |shape: &[i32], v: f64| ops::full_f64(shape, v, Dtype::Bfloat16, s);
    let qkv_rows = (HEADS + 2 * KV_HEADS) * HEAD_DIM;
    let mut model: Vec<Layer> = (0..layers)
        .map(|_| {
            Ok(Layer {
                norm1: bf16(&[HIDDEN], 1.0)?,
                qkv: weight(qkv_rows, HIDDEN, s)?,
                o: weight(HIDDEN, HIDDEN, s)?,
                norm2: bf16(&[HIDDEN], 1.0)?,
                gate_up: weight(2 * FFN, HIDDEN, s)?,
                down: weight(HIDDEN, FFN, s)?,
                keys: Some(bf16(&[1, KV_HEADS, CONTEXT, HEAD_DIM], 0.0)?),
                values: Some(bf16(&[1, KV_HEADS, CONTEXT, HEAD_DIM], 0.0)?),
            })
        })
        .collect::<Result<_>>()?;
    let embedding = bf16(&[VOCAB, HIDDEN], 0.001)?;
    let lm_head = ops::expand_dims(&ops::transpose(&embedding, &[1, 0], s)?, 0, s)?;
    let final_norm = bf16(&[HIDDEN], 1.0)?;
    let freqs = ops::arange(
        1.0,
        1.0 + f64::from(HEAD_DIM / 2),
        1.0,
        Some(Dtype::Float32),
        s,
    )?;
    {
        let mut ready = vec![&embedding, &lm_head, &final_norm, &freqs];
        for l in &model {
            ready.extend([&l.norm1, &l.qkv, &l.o, &l.norm2, &l.gate_up, &l.down]);
            ready.extend(l.keys.iter().chain(l.values.iter()));
        }
        mlx::eval(&ready)?;
    }
    let mut token = Array::from_slice(&[1i32], &[1, 1])?;
    let (mut build, mut submit, mut wait, mut nodes) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for pos in first..first + steps {
        let t0 = Instant::now();
        let mut h = ops::take(&embedding, &token, 0, s)?; // [1, 1, HIDDEN]
        let offset = Array::from_slice(&[pos], &[])?;
        for l in &mut model {
            let x = mlx::fast::rms_norm(&h, Some(&l.norm1), 1e-5, s)?;
            let qkv = ops::matmul(&x, &l.qkv, s)?;
            let heads = ops::reshape(&qkv, &[1, 1, HEADS + 2 * KV_HEADS, HEAD_DIM], s)?;
            let heads = ops::transpose(&heads, &[0, 2, 1, 3], s)?;
            let qk_v = ops::split_at_indices(&heads, &[HEADS + KV_HEADS], 1, s)?;
            let qk = mlx::fast::rope(
                &qk_v[0],
                HEAD_DIM,
                false,
                Some(500000.0),
                1.0,
                RopeOffset::Array(&offset),
                None,
                s,
            )?;
            let q_k = ops::split_at_indices(&qk, &[HEADS], 1, s)?;
            let (start, stop) = ([0, 0, pos, 0], [1, KV_HEADS, pos + 1, HEAD_DIM]);
            let keys = l.keys.take().expect("keys");
            let keys = ops::slice_update(&keys, &q_k[1], &start, &stop, &[1, 1, 1, 1], s)?;
            let values = l.values.take().expect("values");
            let values = ops::slice_update(&values, &qk_v[1], &start, &stop, &[1, 1, 1, 1], s)?;
            let window = [1, KV_HEADS, pos + 1, HEAD_DIM];
            let k = ops::slice(&keys, &[0, 0, 0, 0], &window, &[1, 1, 1, 1], s)?;
            let v = ops::slice(&values, &[0, 0, 0, 0], &window, &[1, 1, 1, 1], s)?;
            (l.keys, l.values) = (Some(keys), Some(values));
            let a =
                mlx::fast::scaled_dot_product_attention(&q_k[0], &k, &v, 0.125, "", None, None, s)?;
            let a = ops::reshape(&ops::transpose(&a, &[0, 2, 1, 3], s)?, &[1, 1, HIDDEN], s)?;
            h = ops::binary(BinaryOp::Add, &h, &ops::matmul(&a, &l.o, s)?, s)?;
            let x = mlx::fast::rms_norm(&h, Some(&l.norm2), 1e-5, s)?;
            let gu = ops::split_equal(&ops::matmul(&x, &l.gate_up, s)?, 2, -1, s)?;
            let m = ops::compiled_swiglu(&gu[0], &gu[1], s)?;
            h = ops::binary(BinaryOp::Add, &h, &ops::matmul(&m, &l.down, s)?, s)?;
        }
        let logits = ops::matmul(
            &mlx::fast::rms_norm(&h, Some(&final_norm), 1e-5, s)?,
            &lm_head,
            s,
        )?;
        let next = ops::argmax(&logits, -1, false, s)?;
        let t1 = Instant::now();
        let mut pending: Vec<&Array> = vec![&next];
        for l in &model {
            pending.extend(l.keys.iter().chain(l.values.iter()));
        }
        if pos == first {
            nodes = mlx::graph_primitive_counts(&pending)?
                .iter()
                .map(|(_, k)| k)
                .sum();
        }
        let t2 = Instant::now();
        mlx::async_eval(&pending)?;
        let t3 = Instant::now();
        next.wait()?;
        let t4 = Instant::now();
        token = ops::astype(&next, Dtype::Int32, s)?;
        if pos >= first + 8 {
            build.push((t1 - t0).as_secs_f64() * 1e3);
            submit.push((t3 - t2).as_secs_f64() * 1e3);
            wait.push((t4 - t3).as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, sub, w) = (median(&mut build), median(&mut submit), median(&mut wait));
    println!(
        "device {device:?}, {layers} layers, positions {first}.., {nodes} MLX nodes per step, median of {} steps: \
         build {b:.3} ms + submit {sub:.3} ms (host {:.3} ms, {:.2} µs per node) + wait {w:.3} ms",
        build.len(),
        b + sub,
        (b + sub) * 1e3 / nodes.max(1) as f64
    );
    Ok(())
}
