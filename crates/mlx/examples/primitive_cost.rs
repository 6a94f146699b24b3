//! Host cost of one MLX primitive, by kind: builds a chain of `N` copies of one op at Llama-3.2-1B
//! decode shapes, then times building the chain, `async_eval` of it (MLX's encoding: on CUDA the graph
//! nodes and commits) and the wait. A batch-1 decode step is a few hundred such nodes, so these figures
//! say which node kinds are worth removing (docs/benchmarks.md, "Host cost per primitive").
//!   usage: cargo run --release -p mlx --example primitive_cost [-- gpu|cpu [N] [REPS]]

use std::time::Instant;

use mlx::fast::RopeOffset;
use mlx::ops::{self, BinaryOp, Quantization, UnaryOp};
use mlx::{Array, DeviceType, Dtype, Result, Stream};

const HIDDEN: i32 = 2048;

struct Inputs {
    x: Array,
    y: Array,
    norm_weight: Array,
    heads: Array,
    w: Array,
    w_t: Array,
    w_t3: Array,
    quantized: ops::Quantized,
    cache: Array,
    update: Array,
    keys: Array,
    short_keys: Array,
}

type Step = dyn Fn(&Inputs, &Array, usize, Stream) -> Result<Array>;

fn cases() -> Vec<(&'static str, &'static str, Box<Step>)> {
    vec![
        (
            "transpose",
            "heads",
            Box::new(|_, x, _, s| ops::transpose(x, &[0, 2, 1, 3], s)),
        ),
        (
            "slice (view)",
            "cache",
            Box::new(|_, x, i, s| {
                let stop = x.shape()[2] - (i % 2) as i32;
                ops::slice(x, &[0, 0, 0, 0], &[1, 8, stop, 64], &[1, 1, 1, 1], s)
            }),
        ),
        (
            "add",
            "x",
            Box::new(|c, x, _, s| ops::binary(BinaryOp::Add, x, &c.y, s)),
        ),
        (
            "sigmoid",
            "x",
            Box::new(|_, x, _, s| ops::unary(UnaryOp::Sigmoid, x, s)),
        ),
        (
            "compiled silu",
            "x",
            Box::new(|_, x, _, s| ops::compiled_silu(x, s)),
        ),
        (
            "compiled swiglu",
            "x",
            Box::new(|c, x, _, s| ops::compiled_swiglu(x, &c.y, s)),
        ),
        (
            "rms_norm",
            "x",
            Box::new(|c, x, _, s| mlx::fast::rms_norm(x, Some(&c.norm_weight), 1e-5, s)),
        ),
        (
            "rope",
            "heads1",
            Box::new(|_, x, _, s| {
                mlx::fast::rope(
                    x,
                    64,
                    false,
                    Some(500000.0),
                    1.0,
                    RopeOffset::Int(100),
                    None,
                    s,
                )
            }),
        ),
        (
            "matmul x@W^T (gemv)",
            "x",
            Box::new(|c, x, _, s| ops::matmul(x, &c.w_t, s)),
        ),
        (
            "matmul x@[1,K,N] view",
            "x",
            Box::new(|c, x, _, s| ops::matmul(x, &c.w_t3, s)),
        ),
        (
            "matmul x@W (cuBLAS)",
            "x",
            Box::new(|c, x, _, s| ops::matmul(x, &c.w, s)),
        ),
        (
            "quantized_matmul 4-bit",
            "x",
            Box::new(|c, x, _, s| {
                let q = &c.quantized;
                ops::quantized_matmul(x, &q.weights, &q.scales, q.biases.as_ref(), true, &QUANT, s)
            }),
        ),
        (
            "slice_update (KV write)",
            "cache",
            Box::new(|c, x, i, s| {
                let p = (i % 4000) as i32;
                ops::slice_update(
                    x,
                    &c.update,
                    &[0, 0, p, 0],
                    &[1, 8, p + 1, 64],
                    &[1, 1, 1, 1],
                    s,
                )
            }),
        ),
        (
            "sdpa (200 keys: sdpa_vector)",
            "heads1",
            Box::new(|c, x, _, s| {
                let k = &c.short_keys;
                mlx::fast::scaled_dot_product_attention(x, k, k, 0.125, "", None, None, s)
            }),
        ),
        (
            "sdpa (512 keys: cuDNN on CUDA)",
            "heads1",
            Box::new(|c, x, _, s| {
                mlx::fast::scaled_dot_product_attention(
                    x, &c.keys, &c.keys, 0.125, "", None, None, s,
                )
            }),
        ),
    ]
}

const QUANT: Quantization<'static> = Quantization {
    group_size: 64,
    bits: 4,
    mode: "affine",
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = match args.first().map(String::as_str) {
        Some("cpu") => DeviceType::Cpu,
        _ => DeviceType::Gpu,
    };
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let reps: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(15);
    let s = Stream::new(device)?;
    let bf16 = |shape: &[i32], v: f64| ops::full_f64(shape, v, Dtype::Bfloat16, s);
    let w = bf16(&[HIDDEN, HIDDEN], 0.0005)?;
    let w_t = ops::transpose(&w, &[1, 0], s)?;
    let w_t3 = ops::expand_dims(&w_t, 0, s)?;
    let quantized = ops::quantize(&w, &QUANT, s)?;
    let cache = bf16(&[1, 8, 4096, 64], 0.01)?;
    let keys = ops::slice(&cache, &[0, 0, 0, 0], &[1, 8, 512, 64], &[1, 1, 1, 1], s)?;
    let short_keys = ops::slice(&cache, &[0, 0, 0, 0], &[1, 8, 200, 64], &[1, 1, 1, 1], s)?;
    let c = Inputs {
        x: bf16(&[1, 1, HIDDEN], 0.01)?,
        y: bf16(&[1, 1, HIDDEN], 0.02)?,
        norm_weight: bf16(&[HIDDEN], 1.0)?,
        heads: bf16(&[1, 4, 32, 64], 0.01)?,
        update: bf16(&[1, 8, 1, 64], 0.5)?,
        w,
        w_t,
        w_t3,
        quantized,
        cache,
        keys,
        short_keys,
    };
    let heads1 = bf16(&[1, 32, 1, 64], 0.01)?;
    let q = &c.quantized;
    let mut ready = vec![
        &c.x,
        &c.y,
        &c.norm_weight,
        &c.heads,
        &c.w,
        &c.w_t,
        &c.w_t3,
        &c.cache,
    ];
    ready.extend([
        &c.update,
        &c.keys,
        &c.short_keys,
        &q.weights,
        &q.scales,
        &heads1,
    ]);
    ready.extend(q.biases.as_ref());
    mlx::eval(&ready)?;

    println!(
        "device {device:?}, chains of {n} ops, median of {reps} (after 3 warm-ups); µs per op"
    );
    println!("| op | MLX nodes | build | submit (async_eval) | wait | build+submit |");
    println!("|---|---|---|---|---|---|");
    for (name, input, step) in cases() {
        let start = match input {
            "x" => &c.x,
            "heads" => &c.heads,
            "heads1" => &heads1,
            _ => &c.cache,
        };
        let mut samples = Vec::new();
        let mut nodes = 0;
        for rep in 0..reps + 3 {
            // A fresh copy of the start, so a chain that updates in place does not write the shared one.
            let mut x = ops::binary(
                BinaryOp::Add,
                start,
                &Array::scalar_f64_as(0.0, start.dtype())?,
                s,
            )?;
            mlx::eval(&[&x])?;
            let t0 = Instant::now();
            for i in 0..n {
                x = step(&c, &x, i, s)?;
            }
            let t1 = Instant::now();
            nodes = mlx::graph_primitive_counts(&[&x])?
                .iter()
                .map(|(_, k)| k)
                .sum();
            let t2 = Instant::now();
            mlx::async_eval(&[&x])?;
            let t3 = Instant::now();
            x.wait()?;
            let t4 = Instant::now();
            if rep >= 3 {
                samples.push([t1 - t0, t3 - t2, t4 - t3].map(|d| d.as_secs_f64() * 1e6 / n as f64));
            }
        }
        let median = |k: usize| {
            let mut v: Vec<f64> = samples.iter().map(|s| s[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (b, sub, w) = (median(0), median(1), median(2));
        println!(
            "| {name} | {nodes} | {b:.2} | {sub:.2} | {w:.2} | {:.2} |",
            b + sub
        );
    }
    Ok(())
}
