//! The same clip (fox.wav, 16 kHz mono int16) written by libsndfile as FLAC, OGG/Vorbis, MP3 and 44.1 kHz
//! stereo WAV (`python/whisper_reference.py clips`) decodes to the same audio: FLAC sample for sample, the lossy
//! codecs within their coding error, the stereo file after mixing and resampling to 16 kHz.

use etmlx_speech::audio::{decode_file, load_for_whisper};

mod common;

fn reference() -> Vec<f32> {
    decode_file(&common::clip("fox.wav")).unwrap().0.samples
}

/// Best normalised cross-correlation of `b` against `a` over small lags (codecs add a delay).
fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for lag in 0..=max_lag {
        let n = a.len().min(b.len().saturating_sub(lag));
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i + lag]));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        let c = ab / (aa.sqrt() * bb.sqrt()).max(1e-12);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

#[test]
fn flac_decodes_to_the_wav_samples() {
    let (audio, report) = decode_file(&common::clip("fox.flac")).unwrap();
    assert_eq!(audio.sample_rate, 16_000);
    assert_eq!(report.codec, "flac");
    assert_eq!(audio.samples, reference());
}

#[test]
fn lossy_codecs_decode_to_the_same_speech() {
    let wav = reference();
    for (file, codec) in [("fox.ogg", "vorbis"), ("fox.mp3", "mp3")] {
        let (audio, report) = load_for_whisper(&common::clip(file)).unwrap();
        assert_eq!(report.codec, codec, "{file}");
        assert_eq!(audio.sample_rate, 16_000, "{file}");
        let extra = audio.samples.len() as f64 - wav.len() as f64;
        assert!(
            (0.0..=3000.0).contains(&extra),
            "{file}: {} samples vs {}",
            audio.samples.len(),
            wav.len()
        );
        let (corr, lag) = best_correlation(&wav, &audio.samples, 2000);
        assert!(corr > 0.95, "{file}: correlation {corr:.3} at lag {lag}");
    }
}

#[test]
fn stereo_44k_is_mixed_and_resampled_to_16k() {
    let (audio, report) = load_for_whisper(&common::clip("fox_44k_stereo.wav")).unwrap();
    assert_eq!(report.channels, 2);
    assert_eq!(audio.sample_rate, 16_000);
    let wav = reference();
    // 1.5 s of the clip, upsampled by scipy and written at 16 bits; back at 16 kHz it must line up, undelayed.
    assert_eq!(audio.samples.len(), 24_000);
    let (corr, lag) = best_correlation(&wav[..24_000], &audio.samples, 4);
    assert_eq!(lag, 0, "the resampler's delay is removed");
    assert!(corr > 0.995, "correlation {corr:.4}");
    let (diff, at) = common::max_abs_diff(&wav[100..23_900], &audio.samples[100..23_900]);
    // scipy and rubato attenuate differently near 8 kHz, where espeak-ng speech still has energy.
    assert!(diff < 0.05, "max |diff| {diff} at {at}");
}
