//! Audio in: decode a file (WAV, FLAC, MP3, OGG/Vorbis through `symphonia`), mix to mono, resample to the
//! model's rate (`rubato`).

use std::fs::File;
use std::path::Path;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{Result, SpeechError};

/// Whisper's sample rate.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Longest audio accepted (samples per channel at the file's rate): 24 h at 48 kHz. Guards allocations
/// against headers that claim absurd lengths.
pub const MAX_FRAMES: u64 = 24 * 3600 * 48_000;

/// Packets that fail to decode are skipped (MP3 streams often start with junk); more than this many is an
/// error rather than a transcript of a fraction of the file.
pub const MAX_BAD_PACKETS: usize = 16;

/// Mono audio at a known rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// What decoding found besides the samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeReport {
    pub channels: usize,
    pub codec: String,
    /// Packets skipped because they did not decode.
    pub bad_packets: usize,
}

/// Decodes `path`, mixes it to mono and resamples it to 16 kHz: what Whisper's feature extractor takes.
pub fn load_for_whisper(path: &Path) -> Result<(Audio, DecodeReport)> {
    let (audio, report) = decode_file(path)?;
    let audio = resample(&audio, WHISPER_SAMPLE_RATE)?;
    Ok((audio, report))
}

/// Decodes an audio file to mono f32 samples at the file's own rate.
pub fn decode_file(path: &Path) -> Result<(Audio, DecodeReport)> {
    let file = File::open(path).map_err(|e| SpeechError::io(path, e))?;
    let len = file.metadata().map_err(|e| SpeechError::io(path, e))?.len();
    if len == 0 {
        return Err(SpeechError::audio(path, "the file is empty"));
    }
    check_wav_header(path)?;
    // symphonia asserts on some malformed headers instead of returning an error; a panic there is bad input,
    // not a bug of ours, so it becomes an error naming the file.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_stream(path, file)))
        .unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "malformed data".into());
            Err(SpeechError::audio(
                path,
                format!("the decoder rejected the file: {detail}"),
            ))
        })
}

/// WAV headers whose sample rate is 0 make symphonia assert; refuse them before it reads them.
fn check_wav_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| SpeechError::io(path, e))?;
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut pos = 12;
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let size = u32::from_le_bytes([head[pos + 4], head[pos + 5], head[pos + 6], head[pos + 7]])
            as usize;
        if id == b"fmt " && pos + 16 <= head.len() {
            let rate = u32::from_le_bytes([
                head[pos + 12],
                head[pos + 13],
                head[pos + 14],
                head[pos + 15],
            ]);
            if rate == 0 {
                return Err(SpeechError::audio(
                    path,
                    "the header declares a sample rate of 0 Hz",
                ));
            }
            return Ok(());
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
    Ok(())
}

fn decode_stream(path: &Path, file: File) -> Result<(Audio, DecodeReport)> {
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            SpeechError::audio(
                path,
                format!(
                    "not a supported audio file (WAV, FLAC, MP3, OGG/Vorbis): {}",
                    describe(&e)
                ),
            )
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SpeechError::audio(path, "the file has no audio track"))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| format!("{:?}", params.codec));
    let sample_rate = match params.sample_rate {
        Some(0) => {
            return Err(SpeechError::audio(
                path,
                "the header declares a sample rate of 0 Hz",
            ))
        }
        Some(r) => r,
        None => {
            return Err(SpeechError::audio(
                path,
                "the header declares no sample rate",
            ))
        }
    };
    if let Some(n) = params.n_frames.filter(|&n| n > MAX_FRAMES) {
        return Err(SpeechError::audio(
            path,
            format!("the header declares {n} frames, more than the limit of {MAX_FRAMES}"),
        ));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| {
            SpeechError::audio(path, format!("unsupported codec {codec}: {}", describe(&e)))
        })?;

    let mut mono: Vec<f32> = Vec::new();
    let mut channels = params.channels.map_or(0, |c| c.count());
    let mut bad_packets = 0;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => {
                return Err(SpeechError::audio(
                    path,
                    format!("cannot read the stream: {}", describe(&e)),
                ))
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymphoniaError::DecodeError(msg)) => {
                bad_packets += 1;
                if bad_packets > MAX_BAD_PACKETS {
                    return Err(SpeechError::audio(
                        path,
                        format!("more than {MAX_BAD_PACKETS} packets fail to decode (last: {msg})"),
                    ));
                }
                continue;
            }
            Err(e) => {
                return Err(SpeechError::audio(
                    path,
                    format!("cannot decode: {}", describe(&e)),
                ))
            }
        };
        let spec = *decoded.spec();
        if spec.rate != sample_rate {
            return Err(SpeechError::audio(
                path,
                format!(
                    "the sample rate changes mid-stream ({sample_rate} Hz, then {} Hz)",
                    spec.rate
                ),
            ));
        }
        let ch = spec.channels.count();
        if ch == 0 {
            return Err(SpeechError::audio(path, "a packet has no channels"));
        }
        channels = ch;
        let needs_new = buffer
            .as_ref()
            .is_none_or(|b| b.capacity() < decoded.capacity() * ch);
        if needs_new {
            buffer = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
        }
        let buf = buffer.as_mut().expect("buffer was just created");
        buf.copy_interleaved_ref(decoded);
        mix_to_mono(buf.samples(), ch, &mut mono);
        if mono.len() as u64 > MAX_FRAMES {
            return Err(SpeechError::audio(
                path,
                format!("longer than the limit of {MAX_FRAMES} frames"),
            ));
        }
    }
    if mono.is_empty() {
        return Err(SpeechError::audio(
            path,
            "no audio samples could be decoded (empty or truncated stream)",
        ));
    }
    // A container that states its length lets a cut-off file be told from a short one.
    if let Some(n) = params.n_frames {
        if (mono.len() as u64) < n {
            return Err(SpeechError::audio(
                path,
                format!(
                    "truncated: the header declares {n} frames but only {} could be decoded",
                    mono.len()
                ),
            ));
        }
    }
    Ok((
        Audio {
            samples: mono,
            sample_rate,
        },
        DecodeReport {
            channels,
            codec,
            bad_packets,
        },
    ))
}

/// Averages interleaved channels (what ffmpeg's `-ac 1` and librosa's `mono=True` do).
fn mix_to_mono(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

fn describe(e: &SymphoniaError) -> String {
    match e {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "unexpected end of file (truncated?)".into()
        }
        other => other.to_string(),
    }
}

/// Frames `rubato` takes per call.
const RESAMPLE_CHUNK: usize = 1024;

/// Resamples mono audio to `target_rate` with `rubato`'s FFT resampler (band-limited; delay removed, so the
/// output is aligned with the input and has `len * target / source` samples).
pub fn resample(audio: &Audio, target_rate: u32) -> Result<Audio> {
    if audio.sample_rate == 0 || target_rate == 0 {
        return Err(SpeechError::InvalidAudio(format!(
            "cannot resample from {} Hz to {} Hz",
            audio.sample_rate, target_rate
        )));
    }
    if audio.sample_rate == target_rate {
        return Ok(audio.clone());
    }
    let mut resampler = FftFixedIn::<f32>::new(
        audio.sample_rate as usize,
        target_rate as usize,
        RESAMPLE_CHUNK,
        2,
        1,
    )
    .map_err(|e| SpeechError::Resample(e.to_string()))?;
    let delay = resampler.output_delay();
    let expected = (audio.samples.len() as u128 * u128::from(target_rate)
        / u128::from(audio.sample_rate)) as usize;
    let mut out = Vec::with_capacity(expected + delay + RESAMPLE_CHUNK * 4);
    let input = &audio.samples;
    let mut pos = 0;
    let err = |e: rubato::ResampleError| SpeechError::Resample(e.to_string());
    while input.len() - pos >= resampler.input_frames_next() {
        let n = resampler.input_frames_next();
        let chunk = resampler
            .process(&[&input[pos..pos + n]], None)
            .map_err(err)?;
        out.extend_from_slice(&chunk[0]);
        pos += n;
    }
    if pos < input.len() {
        let chunk = resampler
            .process_partial(Some(&[&input[pos..]]), None)
            .map_err(err)?;
        out.extend_from_slice(&chunk[0]);
    }
    // Flush the filter's delay with silence.
    while out.len() < delay + expected {
        let chunk = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(err)?;
        out.extend_from_slice(&chunk[0]);
    }
    out.drain(..delay);
    out.truncate(expected);
    Ok(Audio {
        samples: out,
        sample_rate: target_rate,
    })
}

/// Checks samples handed to the library directly.
pub fn validate_samples(samples: &[f32], sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        return Err(SpeechError::InvalidAudio("sample rate is 0 Hz".into()));
    }
    if samples.is_empty() {
        return Err(SpeechError::InvalidAudio("no samples".into()));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(SpeechError::InvalidAudio(format!(
            "sample {i} is not a finite number ({})",
            samples[i]
        )));
    }
    Ok(())
}
