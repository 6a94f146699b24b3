//! Embedding the speech runner: `cargo run --release -p etmlx-speech --example transcribe -- WHISPER_DIR clip.wav`
//! prints each segment as it is final, then the statistics.

use etmlx_speech::{DecodeOptions, Event, Transcriber};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(clip)) = (args.next(), args.next()) else {
        eprintln!("usage: transcribe WHISPER_DIR AUDIO_FILE");
        std::process::exit(2);
    };
    let (audio, _) = etmlx_speech::audio::load_for_whisper(clip.as_ref())?;
    let mut transcriber = Transcriber::open(&dir)?;
    let options = DecodeOptions {
        timestamps: true,
        ..DecodeOptions::default()
    };
    let transcript = transcriber.transcribe_with(&audio.samples, &options, &mut |event| {
        if let Event::Segment(s) = event {
            println!("[{:7.2} -> {:7.2}] {}", s.start, s.end, s.text.trim());
        }
    })?;
    let stats = transcript.stats;
    eprintln!(
        "{:.1} s of audio, real-time factor {:.2}, decoder {:.1} tok/s",
        stats.audio_seconds,
        stats.real_time_factor(),
        stats.decoder_tokens_per_second()
    );
    Ok(())
}
