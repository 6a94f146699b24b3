//! Official exports of BERT-style encoders run through `Program` + `MlxBackend` and match
//! PyTorch eager (`python/export_encoders.py`; every expected value comes from PyTorch).
//!
//! - `tiny_bert` (committed fixture): a tiny random HF `BertModel`, fp32, one MLX delegate.
//! - all-MiniLM-L6-v2 with its real weights, fp32 and bf16 (~90 / ~45 MB, not committed): runs
//!   when the export exists at `$ETMLX_MINILM_DIR/{fp32,bf16}` or
//!   `~/.cache/etmlx/models/minilm/{fp32,bf16}`, and otherwise prints a NOTICE and passes
//!   (listed in `tests/conditional_tests.txt`).

mod delegate_common;

use std::path::{Path, PathBuf};

use delegate_common::*;
use etmlx_runtime::{BackendOptions, HostTensor, ScalarType};

/// The MiniLM embedding must point where PyTorch's does (fp32 export, fp32 reference).
const MINILM_FP32_MIN_COSINE: f64 = 0.99999;
/// The bf16 export against the fp32 model: bf16 keeps ~3 significant digits through 6 layers.
const MINILM_BF16_MIN_COSINE_VS_FP32: f64 = 0.99;

/// Float elements of a float32 or bfloat16 tensor, widened to f32 exactly.
fn floats(t: &HostTensor) -> Vec<f32> {
    match t.dtype {
        ScalarType::Float => f32s(t),
        ScalarType::BFloat16 => t
            .bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        other => panic!("expected a float tensor, got {other:?}"),
    }
}

/// torch.allclose(got, want, rtol, atol) with equal shapes and dtypes; returns the max abs error.
fn check_close(what: &str, got: &HostTensor, want: &HostTensor, rtol: f32, atol: f32) -> f32 {
    assert_eq!(got.dtype, want.dtype, "{what}: dtype");
    assert_eq!(got.sizes, want.sizes, "{what}: shape");
    let (g, w) = (floats(got), floats(want));
    let mut worst = 0.0f32;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs();
        assert!(
            err <= atol + rtol * b.abs(),
            "{what}: element {i}: got {a}, want {b} (rtol {rtol}, atol {atol})"
        );
        worst = worst.max(err);
    }
    eprintln!("{what}: max abs error {worst:e} over {} elements", g.len());
    worst
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine: lengths");
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// sentence-transformers mean pooling, computed here from the runtime's last_hidden_state
/// [1, seq, hidden] and the int64 attention mask [1, seq]: an independent check of the in-graph
/// pooling output (cosine is scale-free, so the L2 normalisation does not matter).
fn mean_pool(hidden: &HostTensor, mask: &HostTensor) -> Vec<f32> {
    assert_eq!(mask.dtype, ScalarType::Long, "attention_mask dtype");
    let (seq, dim) = (hidden.sizes[1] as usize, hidden.sizes[2] as usize);
    let keep: Vec<bool> = mask
        .bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) != 0)
        .collect();
    assert_eq!(keep.len(), seq, "attention_mask length");
    let h = floats(hidden);
    let mut sum = vec![0.0f64; dim];
    for (row, _) in h.chunks_exact(dim).zip(&keep).filter(|(_, k)| **k) {
        for (s, x) in sum.iter_mut().zip(row) {
            *s += f64::from(*x);
        }
    }
    let n = keep.iter().filter(|k| **k).count().max(1) as f64;
    sum.iter().map(|s| (s / n) as f32).collect()
}

#[test]
fn tiny_bert_matches_pytorch_eager() {
    let dir = fixture("tiny_bert");
    let (rtol, atol) = tolerance(&dir);
    let program = open(&dir, BackendOptions::default());
    let mut method = program.load_method("forward").expect("load forward");
    let inputs = read_bin(&dir.join("input.bin"));
    let want = read_bin(&dir.join("expected_output.bin"));
    let got = run(&mut method, &inputs);
    assert_eq!(got.len(), 2, "last_hidden_state and pooler_output");
    assert_eq!(got[0].sizes, vec![1, 16, 64]);
    assert_eq!(got[1].sizes, vec![1, 64]);
    check_close("last_hidden_state", &got[0], &want[0], rtol, atol);
    check_close("pooler_output", &got[1], &want[1], rtol, atol);

    // Same method, second call: nothing carried over from the first.
    let again = run(&mut method, &inputs);
    check_close(
        "last_hidden_state (call 2)",
        &again[0],
        &want[0],
        rtol,
        atol,
    );
}

#[test]
fn tiny_bert_two_inputs_runs_the_gather_between_delegates() {
    // BERT called without token_type_ids: the exporter leaves `aten::gather.out` outside the MLX
    // partition (2 delegates + 1 portable kernel call); the whole program must match PyTorch.
    let dir = fixture("tiny_bert_2in");
    let (rtol, atol) = tolerance(&dir);
    let program = open(&dir, BackendOptions::default());
    assert!(program.missing_kernels("forward").expect("plan").is_empty());
    let mut method = program.load_method("forward").expect("load forward");
    let got = run(&mut method, &read_bin(&dir.join("input.bin")));
    let want = read_bin(&dir.join("expected_output.bin"));
    check_close("last_hidden_state", &got[0], &want[0], rtol, atol);
}

#[test]
fn tiny_bert_attention_mask_reaches_attention() {
    // With the 4 padded positions unmasked, token 0 attends to 4 more keys, so its hidden state
    // must move well beyond the tolerance: the mask input is really consumed by the SDPA.
    let dir = fixture("tiny_bert");
    let (_, atol) = tolerance(&dir);
    let program = open(&dir, BackendOptions::default());
    let mut method = program.load_method("forward").expect("load forward");
    let mut inputs = read_bin(&dir.join("input.bin"));
    let want = read_bin(&dir.join("expected_output.bin"));
    let mask = &mut inputs[1];
    assert_eq!(mask.dtype, ScalarType::Long);
    let ones: Vec<u8> = (0..mask.bytes.len() / 8)
        .flat_map(|_| 1i64.to_le_bytes())
        .collect();
    assert_ne!(mask.bytes, ones, "the fixture's mask must pad something");
    mask.bytes = ones;
    let got = run(&mut method, &inputs);
    let token0 = |t: &HostTensor| floats(t)[..64].to_vec();
    let moved = token0(&got[0])
        .iter()
        .zip(token0(&want[0]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 100.0 * atol,
        "token 0 moved only {moved} when unmasking padding"
    );
}

/// `$ETMLX_MINILM_DIR/<variant>` or `~/.cache/etmlx/models/minilm/<variant>` if it holds an export.
fn minilm_dir(variant: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("ETMLX_MINILM_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/etmlx/models/minilm"),
    };
    let dir = root.join(variant);
    if dir.join("model.pte").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "NOTICE: skipping MiniLM {variant}: no export at {} (run python/export_encoders.py \
             in the export venv, or set ETMLX_MINILM_DIR)",
            dir.display()
        );
        None
    }
}

/// Runs a MiniLM export; returns (inputs, outputs, expected outputs).
fn run_minilm(dir: &Path) -> (Vec<HostTensor>, Vec<HostTensor>, Vec<HostTensor>) {
    let program = open(dir, BackendOptions::default());
    let mut method = program.load_method("forward").expect("load forward");
    let inputs = read_bin(&dir.join("input.bin"));
    let got = run(&mut method, &inputs);
    let want = read_bin(&dir.join("expected_output.bin"));
    assert_eq!(got.len(), 2, "last_hidden_state and sentence embedding");
    assert_eq!(got[0].sizes, vec![1, 128, 384]);
    assert_eq!(got[1].sizes, vec![1, 384]);
    (inputs, got, want)
}

#[test]
fn minilm_fp32_matches_pytorch_eager() {
    let Some(dir) = minilm_dir("fp32") else {
        return;
    };
    let (rtol, atol) = tolerance(&dir);
    let (inputs, got, want) = run_minilm(&dir);
    check_close(
        "minilm fp32 last_hidden_state",
        &got[0],
        &want[0],
        rtol,
        atol,
    );
    check_close("minilm fp32 embedding", &got[1], &want[1], rtol, atol);
    let cos = cosine(&floats(&got[1]), &floats(&want[1]));
    let pooled_here = mean_pool(&got[0], &inputs[1]);
    let cos_pooled = cosine(&pooled_here, &floats(&want[1]));
    eprintln!(
        "minilm fp32: embedding cosine vs PyTorch {cos:.9} (1 - cos = {:e}); mean-pooled here vs \
         PyTorch {cos_pooled:.9} (1 - cos = {:e})",
        1.0 - cos,
        1.0 - cos_pooled
    );
    assert!(cos >= MINILM_FP32_MIN_COSINE, "embedding cosine {cos}");
    assert!(
        cos_pooled >= MINILM_FP32_MIN_COSINE,
        "pooled cosine {cos_pooled}"
    );
}

#[test]
fn minilm_bf16_matches_pytorch_eager() {
    let Some(dir) = minilm_dir("bf16") else {
        return;
    };
    let (rtol, atol) = tolerance(&dir);
    let (_, got, want) = run_minilm(&dir);
    assert_eq!(got[0].dtype, ScalarType::BFloat16);
    check_close(
        "minilm bf16 last_hidden_state",
        &got[0],
        &want[0],
        rtol,
        atol,
    );
    check_close("minilm bf16 embedding", &got[1], &want[1], rtol, atol);
    let cos = cosine(&floats(&got[1]), &floats(&want[1]));
    let fp32 = read_bin(&dir.join("expected_output_fp32.bin"));
    let cos_fp32 = cosine(&floats(&got[1]), &floats(&fp32[1]));
    let cos_eager_fp32 = cosine(&floats(&want[1]), &floats(&fp32[1]));
    eprintln!(
        "minilm bf16: embedding cosine vs PyTorch bf16 {cos:.6}; vs PyTorch fp32 {cos_fp32:.6} \
         (PyTorch bf16 vs fp32: {cos_eager_fp32:.6})"
    );
    assert!(
        cos_fp32 >= MINILM_BF16_MIN_COSINE_VS_FP32,
        "cosine vs fp32 {cos_fp32}"
    );
}
