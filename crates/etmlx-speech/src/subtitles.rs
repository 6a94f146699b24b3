//! Output formats of a transcript: plain text, JSON, SubRip (SRT) and WebVTT.

use serde::Serialize;

use crate::transcribe::{Segment, Transcript};

/// The formats `etmlx transcribe --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Json,
    Srt,
    Vtt,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "txt" => Ok(Format::Txt),
            "json" => Ok(Format::Json),
            "srt" => Ok(Format::Srt),
            "vtt" => Ok(Format::Vtt),
            other => Err(format!("unknown format {other:?} (txt, json, srt, vtt)")),
        }
    }
}

/// `HH:MM:SS<sep>mmm`, rounded to the millisecond.
pub fn timestamp(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// One segment of the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonSegment<'a> {
    pub start: f64,
    pub end: f64,
    pub text: &'a str,
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// The JSON object of a transcript: text, segments (start, end, text), language, stats.
pub fn to_json(t: &Transcript) -> serde_json::Value {
    let segments: Vec<JsonSegment<'_>> = t
        .segments
        .iter()
        .map(|s| JsonSegment {
            start: round_ms(s.start),
            end: round_ms(s.end),
            text: &s.text,
        })
        .collect();
    serde_json::json!({
        "text": t.text,
        "segments": segments,
        "language": t.language,
        "stats": {
            "audio_seconds": t.stats.audio_seconds,
            "real_time_factor": t.stats.real_time_factor(),
            "total_ms": t.stats.total_ms,
            "features_ms": t.stats.features_ms,
            "encoder_ms": t.stats.encoder_ms,
            "decoder_ms": t.stats.decoder_ms,
            "decoder_tokens": t.stats.decoder_tokens,
            "decoder_tokens_per_second": t.stats.decoder_tokens_per_second(),
            "windows": t.stats.windows,
        },
    })
}

/// SRT cue `index` (1-based) for a segment.
pub fn srt_cue(index: usize, s: &Segment) -> String {
    format!(
        "{index}\n{} --> {}\n{}\n\n",
        timestamp(s.start, ','),
        timestamp(s.end, ','),
        s.text.trim()
    )
}

/// WebVTT cue for a segment (the file starts with [`VTT_HEADER`]).
pub fn vtt_cue(s: &Segment) -> String {
    format!(
        "{} --> {}\n{}\n\n",
        timestamp(s.start, '.'),
        timestamp(s.end, '.'),
        s.text.trim()
    )
}

pub const VTT_HEADER: &str = "WEBVTT\n\n";

/// A whole transcript in one format.
pub fn render(t: &Transcript, format: Format) -> String {
    match format {
        Format::Txt => format!("{}\n", t.text.trim()),
        Format::Json => format!("{}\n", to_json(t)),
        Format::Srt => t
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| srt_cue(i + 1, s))
            .collect(),
        Format::Vtt => {
            let mut out = String::from(VTT_HEADER);
            out.extend(t.segments.iter().map(vtt_cue));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_srt_and_vtt_shaped() {
        assert_eq!(timestamp(3723.4567, ','), "01:02:03,457");
        assert_eq!(timestamp(0.0, '.'), "00:00:00.000");
    }
}
