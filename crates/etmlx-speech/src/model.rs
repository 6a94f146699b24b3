//! The three programs of an official Whisper export, run through `etmlx-runtime` + the MLX delegate:
//!
//! - `encoder.pte`: `input_features` [1, n_mels, frames] → hidden states [1, T_enc, d];
//! - `cross_kv.pte`: hidden states → L cross-attention keys then L values, each [1, H, T_enc, D];
//! - `decoder.pte`: `decoder_input_ids` [1, T] (T ≤ max), `cache_position` [1] (start position), the L keys
//!   and L values → logits [1, T, vocab]. Its self-attention KV cache lives in the program (mutable buffers),
//!   written at `cache_position`, so a new window only has to start again at position 0.
//!
//! The encoder and cross-KV programs run once per 30-s window; the decoder once per token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etmlx_mlx::MlxBackend;
use etmlx_runtime::{BackendOptions, EValue, HostTensor, HostValue, Method, Program, ScalarType};

use crate::error::{Result, SpeechError};

pub const ENCODER_PTE: &str = "encoder.pte";
pub const CROSS_KV_PTE: &str = "cross_kv.pte";
pub const DECODER_PTE: &str = "decoder.pte";

/// Layers above this are refused (large-v3 has 32).
pub const MAX_LAYERS: usize = 256;

/// Shapes the programs declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperDims {
    pub n_mels: usize,
    /// Mel frames per window (3000).
    pub n_frames: usize,
    pub features_dtype: ScalarType,
    pub decoder_layers: usize,
    /// Most decoder positions (the self-attention cache length, `max_decoder_seq_len` of the export).
    pub max_decoder_len: usize,
    /// Most tokens one decoder call takes (the official export traces one token: its shape is static [1, 1]).
    pub tokens_per_call: usize,
    pub token_dtype: ScalarType,
    pub position_dtype: ScalarType,
}

/// Time spent in each program, accumulated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelTimings {
    pub encoder: Duration,
    pub cross_kv: Duration,
    pub decoder: Duration,
    pub windows: usize,
    pub decoder_calls: usize,
    pub decoder_tokens: usize,
}

struct Loaded {
    /// Kept with its method: the method's constants come from the program's data.
    _program: Program,
    method: Method,
    path: PathBuf,
}

fn load(dir: &Path, file: &str, options: &BackendOptions) -> Result<Loaded> {
    let path = dir.join(file);
    if !path.is_file() {
        return Err(SpeechError::NotWhisper {
            dir: dir.to_path_buf(),
            reason: format!(
                "{file} is missing (an official Whisper export has {ENCODER_PTE}, {CROSS_KV_PTE} and {DECODER_PTE})"
            ),
        });
    }
    let mut program = Program::open(&path, None)?;
    program.register_backend(Arc::new(MlxBackend));
    program.set_backend_options(options.clone());
    let names: Vec<String> = program
        .method_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    if !names.iter().any(|n| n == "forward") {
        return Err(SpeechError::Signature {
            program: path.display().to_string(),
            message: format!("no `forward` method (methods: {})", names.join(", ")),
        });
    }
    let method = program.load_method("forward")?;
    Ok(Loaded {
        _program: program,
        method,
        path,
    })
}

fn signature_error(program: &Loaded, message: impl Into<String>) -> SpeechError {
    SpeechError::Signature {
        program: program.path.display().to_string(),
        message: message.into(),
    }
}

/// Input `i`'s declared tensor (dtype, upper-bound shape).
fn input_tensor(p: &Loaded, i: usize) -> Result<(ScalarType, Vec<i64>)> {
    match p.method.input_meta(i) {
        Ok(EValue::Tensor(t)) => Ok((t.dtype(), t.bound().to_vec())),
        Ok(other) => Err(signature_error(
            p,
            format!("input {i} is a {}, expected a tensor", other.kind()),
        )),
        Err(e) => Err(signature_error(p, e.to_string())),
    }
}

fn is_float(t: ScalarType) -> bool {
    matches!(
        t,
        ScalarType::Float | ScalarType::Half | ScalarType::BFloat16
    )
}

fn is_int(t: ScalarType) -> bool {
    matches!(t, ScalarType::Long | ScalarType::Int)
}

/// A loaded Whisper export.
pub struct WhisperModel {
    dir: PathBuf,
    encoder: Loaded,
    cross_kv: Loaded,
    decoder: Loaded,
    dims: WhisperDims,
    /// Cross-attention keys and values of the current window, in the decoder's input order.
    cross: Vec<HostValue>,
    timings: ModelTimings,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("dir", &self.dir)
            .field("dims", &self.dims)
            .finish()
    }
}

impl WhisperModel {
    /// Loads the three programs from `dir` and checks their signatures against each other.
    /// `max_decoder_len` is the decoder's KV-cache length (`metadata.json`'s `max_decoder_seq_len`); the
    /// program's input shape does not carry it.
    pub fn open(dir: &Path, options: &BackendOptions, max_decoder_len: usize) -> Result<Self> {
        if !dir.is_dir() {
            return Err(SpeechError::NotFound {
                what: "model directory",
                path: dir.to_path_buf(),
            });
        }
        let encoder = load(dir, ENCODER_PTE, options)?;
        let cross_kv = load(dir, CROSS_KV_PTE, options)?;
        let decoder = load(dir, DECODER_PTE, options)?;

        if encoder.method.num_inputs() != 1 || encoder.method.num_outputs() != 1 {
            return Err(signature_error(
                &encoder,
                format!(
                    "{} inputs and {} outputs; a Whisper encoder takes input_features and returns hidden states",
                    encoder.method.num_inputs(),
                    encoder.method.num_outputs()
                ),
            ));
        }
        let (features_dtype, features_shape) = input_tensor(&encoder, 0)?;
        let (n_mels, n_frames) = match features_shape.as_slice() {
            [1, m, f] if is_float(features_dtype) && *m > 0 && *f > 0 => (*m as usize, *f as usize),
            other => {
                return Err(signature_error(
                    &encoder,
                    format!(
                        "input 0 is {features_dtype:?} {other:?}; expected float input_features [1, n_mels, frames]"
                    ),
                ))
            }
        };
        if cross_kv.method.num_inputs() != 1 {
            return Err(signature_error(
                &cross_kv,
                format!("{} inputs; expected 1", cross_kv.method.num_inputs()),
            ));
        }
        let kv_outputs = cross_kv.method.num_outputs();
        if kv_outputs == 0 || kv_outputs % 2 != 0 || kv_outputs / 2 > MAX_LAYERS {
            return Err(signature_error(
                &cross_kv,
                format!("{kv_outputs} outputs; expected L keys then L values"),
            ));
        }
        let layers = kv_outputs / 2;
        if decoder.method.num_inputs() != 2 + 2 * layers || decoder.method.num_outputs() != 1 {
            return Err(signature_error(
                &decoder,
                format!(
                    "{} inputs and {} outputs; with {layers} layers in {CROSS_KV_PTE} the decoder takes \
                     ids, cache_position and {} cross-attention tensors and returns logits",
                    decoder.method.num_inputs(),
                    decoder.method.num_outputs(),
                    2 * layers
                ),
            ));
        }
        let (token_dtype, token_shape) = input_tensor(&decoder, 0)?;
        let tokens_per_call = match token_shape.as_slice() {
            [1, t] if is_int(token_dtype) && *t > 0 => *t as usize,
            other => {
                return Err(signature_error(
                    &decoder,
                    format!("input 0 is {token_dtype:?} {other:?}; expected integer decoder_input_ids [1, T]"),
                ))
            }
        };
        let (position_dtype, position_shape) = input_tensor(&decoder, 1)?;
        if !is_int(position_dtype) || position_shape != [1] {
            return Err(signature_error(
                &decoder,
                format!("input 1 is {position_dtype:?} {position_shape:?}; expected integer cache_position [1]"),
            ));
        }
        Ok(WhisperModel {
            dir: dir.to_path_buf(),
            encoder,
            cross_kv,
            decoder,
            dims: WhisperDims {
                n_mels,
                n_frames,
                features_dtype,
                decoder_layers: layers,
                max_decoder_len,
                tokens_per_call,
                token_dtype,
                position_dtype,
            },
            cross: Vec::new(),
            timings: ModelTimings::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dims(&self) -> &WhisperDims {
        &self.dims
    }

    pub fn timings(&self) -> ModelTimings {
        self.timings
    }

    pub fn reset_timings(&mut self) {
        self.timings = ModelTimings::default();
    }

    /// Runs the encoder and the cross-KV projection on one window of features ([n_mels, n_frames], row-major)
    /// and keeps the keys and values for the decoder. Returns the encoder's hidden states.
    pub fn encode(&mut self, features: &[f32]) -> Result<HostTensor> {
        let d = &self.dims;
        if features.len() != d.n_mels * d.n_frames {
            return Err(SpeechError::Unsupported(format!(
                "{} feature values for a window of {} mel bins x {} frames",
                features.len(),
                d.n_mels,
                d.n_frames
            )));
        }
        let input = float_tensor(
            d.features_dtype,
            vec![1, d.n_mels as i64, d.n_frames as i64],
            features,
        )?;
        let start = Instant::now();
        self.encoder
            .method
            .set_input(0, &HostValue::Tensor(input))?;
        self.encoder.method.execute()?;
        let hidden = match self.encoder.method.output(0)? {
            HostValue::Tensor(t) => t,
            other => {
                return Err(signature_error(
                    &self.encoder,
                    format!("output 0 is {other:?}, expected a tensor"),
                ))
            }
        };
        self.timings.encoder += start.elapsed();

        let start = Instant::now();
        self.cross_kv
            .method
            .set_input(0, &HostValue::Tensor(hidden.clone()))?;
        self.cross_kv.method.execute()?;
        let cross = self.cross_kv.method.outputs()?;
        self.timings.cross_kv += start.elapsed();
        if let Some(bad) = cross
            .iter()
            .position(|v| !matches!(v, HostValue::Tensor(t) if t.sizes.len() == 4))
        {
            return Err(signature_error(
                &self.cross_kv,
                format!("output {bad} is not a [1, H, T, D] tensor"),
            ));
        }
        self.cross = cross;
        self.timings.windows += 1;
        Ok(hidden)
    }

    /// Runs the decoder on `tokens` at positions `start..start+len` (with the window [`encode`](Self::encode)
    /// last prepared), in calls of at most [`WhisperDims::tokens_per_call`] tokens, and returns the logits of
    /// the last token as f32.
    pub fn decode(&mut self, tokens: &[u32], start: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(SpeechError::Unsupported(
                "decode needs at least one token".into(),
            ));
        }
        let per_call = self.dims.tokens_per_call;
        let mut last = (Vec::new(), 1);
        for (i, chunk) in tokens.chunks(per_call).enumerate() {
            last = (self.decode_call(chunk, start + i * per_call)?, chunk.len());
        }
        let (mut logits, rows) = last;
        let vocab = logits.len() / rows;
        Ok(logits.split_off(logits.len() - vocab))
    }

    /// One decoder call on at most [`WhisperDims::tokens_per_call`] tokens: every position's logits,
    /// [len × vocab].
    pub fn decode_call(&mut self, tokens: &[u32], start: usize) -> Result<Vec<f32>> {
        let d = &self.dims;
        if self.cross.is_empty() {
            return Err(SpeechError::Unsupported(
                "decode before encode: no cross-attention keys".into(),
            ));
        }
        if tokens.is_empty() || tokens.len() > d.tokens_per_call {
            return Err(SpeechError::Unsupported(format!(
                "{} tokens in one decoder call; this export takes 1 to {}",
                tokens.len(),
                d.tokens_per_call
            )));
        }
        if start + tokens.len() > d.max_decoder_len {
            return Err(SpeechError::Unsupported(format!(
                "decoder positions {start}..{} exceed the export's {} (max_decoder_seq_len)",
                start + tokens.len(),
                d.max_decoder_len
            )));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let ids = int_tensor(d.token_dtype, vec![1, ids.len() as i64], &ids)?;
        let position = int_tensor(d.position_dtype, vec![1], &[start as i64])?;
        let began = Instant::now();
        let method = &mut self.decoder.method;
        method.set_input(0, &ids)?;
        method.set_input(1, &position)?;
        for (i, kv) in self.cross.iter().enumerate() {
            method.set_input(2 + i, kv)?;
        }
        method.execute()?;
        let view = self.decoder.method.output_view(0)?;
        let vocab = match view.sizes {
            [1, t, v] if *t as usize == tokens.len() && *v > 0 => *v as usize,
            other => {
                return Err(SpeechError::Signature {
                    program: self.decoder.path.display().to_string(),
                    message: format!(
                        "logits of shape {other:?} for {} tokens; expected [1, T, vocab]",
                        tokens.len()
                    ),
                })
            }
        };
        let logits = etmlx_llm::model::logits_to_f32(view.dtype, view.bytes)?;
        debug_assert_eq!(logits.len(), vocab * tokens.len());
        self.timings.decoder += began.elapsed();
        self.timings.decoder_calls += 1;
        self.timings.decoder_tokens += tokens.len();
        Ok(logits)
    }
}

fn float_tensor(dtype: ScalarType, sizes: Vec<i64>, values: &[f32]) -> Result<HostTensor> {
    let bytes: Vec<u8> = match dtype {
        ScalarType::Float => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ScalarType::Half => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        ScalarType::BFloat16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        other => {
            return Err(SpeechError::Unsupported(format!(
                "float inputs of dtype {other:?}"
            )))
        }
    };
    Ok(HostTensor::new(dtype, sizes, bytes)?)
}

fn int_tensor(dtype: ScalarType, sizes: Vec<i64>, values: &[i64]) -> Result<HostValue> {
    let bytes: Vec<u8> = match dtype {
        ScalarType::Long => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ScalarType::Int => values
            .iter()
            .flat_map(|&v| (v as i32).to_le_bytes())
            .collect(),
        other => {
            return Err(SpeechError::Unsupported(format!(
                "integer inputs of dtype {other:?}"
            )))
        }
    };
    Ok(HostValue::Tensor(HostTensor::new(dtype, sizes, bytes)?))
}
