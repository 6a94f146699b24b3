//! Whisper's log-mel spectrogram, computed as HF `WhisperFeatureExtractor` does: a centred STFT (reflect
//! padding, periodic Hann window of `n_fft`, hop `hop_length`), power spectrum, Slaney-style mel filter bank
//! from 0 Hz to Nyquist, `log10(max(x, 1e-10))`, the last frame dropped, values floored at (max − 8), then
//! `(x + 4) / 4`. Computed in f64 (HF's NumPy path; its torch path in f32 agrees to ~1e-6).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{Result, SpeechError};

/// The feature extractor's parameters (`preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct MelConfig {
    /// Mel bins: 80, or 128 for large-v3 style models.
    pub n_mels: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub sample_rate: u32,
    /// Samples in one 30-s window (`n_samples`).
    pub chunk_samples: usize,
}

impl MelConfig {
    /// Whisper's defaults for `n_mels` bins.
    pub fn whisper(n_mels: usize) -> Self {
        MelConfig {
            n_mels,
            n_fft: 400,
            hop_length: 160,
            sample_rate: 16_000,
            chunk_samples: 480_000,
        }
    }

    /// Frames in one window (`nb_max_frames`, 3000 for Whisper).
    pub fn frames_per_chunk(&self) -> usize {
        self.chunk_samples / self.hop_length
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(SpeechError::Unsupported(format!("mel config: {what}")));
        if self.n_mels == 0 || self.n_mels > 512 {
            return bad(format!("{} mel bins", self.n_mels));
        }
        if self.n_fft < 2 || self.n_fft > 1 << 16 {
            return bad(format!("n_fft {}", self.n_fft));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad(format!("hop_length {}", self.hop_length));
        }
        if self.sample_rate == 0 {
            return bad("sampling_rate 0".into());
        }
        if self.chunk_samples < self.n_fft {
            return bad(format!("n_samples {}", self.chunk_samples));
        }
        Ok(())
    }
}

/// A log-mel spectrogram, row-major [n_mels, n_frames].
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    pub n_mels: usize,
    pub n_frames: usize,
    pub data: Vec<f32>,
}

impl LogMel {
    /// Frames `start..start+len` of every bin, zero-padded past the end (HF long-form pads a window's slice
    /// with zeros to the full window).
    pub fn window(&self, start: usize, len: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels * len];
        let available = self.n_frames.saturating_sub(start).min(len);
        for m in 0..self.n_mels {
            let src = &self.data[m * self.n_frames + start..][..available];
            out[m * len..][..available].copy_from_slice(src);
        }
        out
    }
}

/// Computes log-mel spectrograms for one configuration (filters and FFT plan made once).
pub struct MelExtractor {
    config: MelConfig,
    window: Vec<f64>,
    /// [n_mels][n_fft/2 + 1]
    filters: Vec<Vec<f64>>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("config", &self.config)
            .finish()
    }
}

impl MelExtractor {
    pub fn new(config: MelConfig) -> Result<Self> {
        config.validate()?;
        let n = config.n_fft;
        // Periodic Hann (numpy `hanning(n + 1)[:-1]`, torch `hann_window(n)`).
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let filters = slaney_mel_filters(
            n / 2 + 1,
            config.n_mels,
            0.0,
            f64::from(config.sample_rate) / 2.0,
            f64::from(config.sample_rate),
        );
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        Ok(MelExtractor {
            config,
            window,
            filters,
            fft,
        })
    }

    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// Features of one window: the samples zero-padded (or cut) to `chunk_samples`, giving exactly
    /// `frames_per_chunk` frames (HF `padding="max_length"`, the short-form path).
    pub fn window_features(&self, samples: &[f32]) -> LogMel {
        let mut padded = samples[..samples.len().min(self.config.chunk_samples)].to_vec();
        padded.resize(self.config.chunk_samples, 0.0);
        self.features(&padded)
    }

    /// Features of the whole signal, unpadded (HF `padding="longest", truncation=False`: the long-form path).
    /// `len / hop_length` frames; the (max − 8) floor is taken over all of them.
    pub fn features(&self, samples: &[f32]) -> LogMel {
        let n_fft = self.config.n_fft;
        let hop = self.config.hop_length;
        let half = n_fft / 2;
        let centred = reflect_pad(samples, half);
        // A centred STFT has 1 + len/hop frames; Whisper drops the last one.
        let n_frames = samples.len() / hop;
        let n_bins = n_fft / 2 + 1;
        let mut data = vec![0.0f64; self.config.n_mels * n_frames];
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; n_bins];
        for t in 0..n_frames {
            let start = t * hop;
            for (i, slot) in frame.iter_mut().enumerate() {
                *slot = f64::from(centred[start + i]) * self.window[i];
            }
            self.fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let energy: f64 = filter.iter().zip(&power).map(|(f, p)| f * p).sum();
                data[m * n_frames + t] = energy.max(1e-10).log10();
            }
        }
        let max = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let floor = max - 8.0;
        LogMel {
            n_mels: self.config.n_mels,
            n_frames,
            data: data
                .into_iter()
                .map(|v| ((v.max(floor) + 4.0) / 4.0) as f32)
                .collect(),
        }
    }
}

/// `pad` samples on each side, mirrored without repeating the edge (numpy/torch "reflect"). Signals shorter
/// than the pad are mirrored repeatedly as numpy does; an empty one is zero-padded.
fn reflect_pad(samples: &[f32], pad: usize) -> Vec<f32> {
    let n = samples.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    if n < 2 {
        let v = samples.first().copied().unwrap_or(0.0);
        out.resize(n + 2 * pad, v);
        return out;
    }
    // Index into the infinitely reflected signal (period 2n − 2).
    let reflect = |i: isize| -> f32 {
        let period = 2 * (n as isize - 1);
        let mut j = i.rem_euclid(period);
        if j >= n as isize {
            j = period - j;
        }
        samples[j as usize]
    };
    out.extend((-(pad as isize)..0).map(reflect));
    out.extend_from_slice(samples);
    out.extend((n as isize..(n + pad) as isize).map(reflect));
    out
}

fn hz_to_mel_slaney(hz: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 27.0 / 6.4f64.ln();
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// Triangular filters on the Slaney mel scale with Slaney area normalisation (librosa's and HF's
/// `mel_filter_bank(norm="slaney", mel_scale="slaney")`), as [n_mels][n_bins].
fn slaney_mel_filters(
    n_bins: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
    sample_rate: f64,
) -> Vec<Vec<f64>> {
    let mel_min = hz_to_mel_slaney(f_min);
    let mel_max = hz_to_mel_slaney(f_max);
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz_slaney(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let nyquist = (sample_rate / 2.0).floor();
    let bin_hz: Vec<f64> = (0..n_bins)
        .map(|k| nyquist * k as f64 / (n_bins - 1) as f64)
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, centre, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (hi - lo);
            bin_hz
                .iter()
                .map(|&f| {
                    let down = (f - lo) / (centre - lo);
                    let up = (hi - f) / (hi - centre);
                    down.min(up).max(0.0) * norm
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_mirrors_without_the_edge() {
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
    }

    #[test]
    fn window_slices_and_zero_pads() {
        let mel = LogMel {
            n_mels: 2,
            n_frames: 3,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        assert_eq!(
            mel.window(1, 4),
            vec![2.0, 3.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0]
        );
    }
}
