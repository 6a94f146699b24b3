//! Streaming detokenisation: never emits half a character, keeps SentencePiece leading spaces, and the streamed
//! chunks add up to what a one-shot decode gives.

mod common;

use common::{ids, read_json, smollm2_dir};
use etmlx_llm::{IncrementalDecoder, Tokenizer};

/// Streams `ids` and returns the chunks (one entry per push: `None` = held back), plus the flushed rest.
fn stream(tok: &Tokenizer, ids: &[u32]) -> (Vec<Option<String>>, Option<String>) {
    let mut dec = IncrementalDecoder::new(tok, false);
    let chunks = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    let rest = dec.flush().unwrap();
    (chunks, rest)
}

fn joined(chunks: &[Option<String>], rest: &Option<String>) -> String {
    chunks
        .iter()
        .flatten()
        .chain(rest.iter())
        .cloned()
        .collect()
}

#[test]
fn byte_level_bpe_splits_of_emoji_and_cjk_are_held_until_complete() {
    let tok = Tokenizer::from_path(smollm2_dir()).unwrap();
    let cases = read_json(smollm2_dir().join("tokenizer_cases.json"));
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"] == "emoji 🌍🚀 and 日本語")
        .unwrap();
    let ids = ids(&case["ids_without_special_tokens"]);
    // The test only means something if some token alone is an incomplete character.
    assert!(ids
        .iter()
        .any(|&id| tok.decode(&[id], false).unwrap().contains('\u{FFFD}')));

    let (chunks, rest) = stream(&tok, &ids);
    assert!(
        chunks.iter().any(Option::is_none),
        "some pushes must be held back"
    );
    for chunk in chunks.iter().flatten() {
        assert!(
            !chunk.contains('\u{FFFD}'),
            "chunk {chunk:?} holds a broken character"
        );
    }
    assert_eq!(rest, None);
    assert_eq!(joined(&chunks, &rest), "emoji 🌍🚀 and 日本語");
}

#[test]
fn streaming_the_hf_greedy_generations_reproduces_hf_decode() {
    let tok = Tokenizer::from_path(smollm2_dir()).unwrap();
    let reference = read_json(smollm2_dir().join("greedy_reference.json"));
    for case in reference["cases"].as_array().unwrap() {
        let (chunks, rest) = stream(&tok, &ids(&case["generated_ids"]));
        assert_eq!(
            joined(&chunks, &rest),
            case["generated_text"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

/// A Llama-2-style SentencePiece tokenizer: `▁` marks spaces, `<0xNN>` byte-fallback tokens, and a decoder that
/// strips the leading space of the decoded text.
fn sentencepiece_tokenizer() -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert(t.to_string(), (i as u32).into());
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), (3 + b).into());
    }
    for (i, t) in ["▁Hello", "▁world", "▁", "!", "▁日本"].iter().enumerate() {
        vocab.insert(t.to_string(), (259 + i as u32).into());
    }
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": []
        }
    });
    Tokenizer::from_json_bytes(json.to_string().as_bytes(), "sentencepiece test tokenizer").unwrap()
}

const HELLO: u32 = 259;
const WORLD: u32 = 260;
const SPACE: u32 = 261;
const BANG: u32 = 262;
const NIHON: u32 = 263;
fn byte(b: u8) -> u32 {
    3 + u32::from(b)
}

#[test]
fn sentencepiece_leading_spaces_survive_streaming() {
    let tok = sentencepiece_tokenizer();
    // Decoding token by token would lose every leading space ("Hello" "world" ...); the stream must not.
    assert_eq!(tok.decode(&[WORLD], false).unwrap(), "world");
    let earth = "🌍".as_bytes(); // F0 9F 8C 8D
    let ids = [
        HELLO,
        WORLD,
        SPACE,
        byte(earth[0]),
        byte(earth[1]),
        byte(earth[2]),
        byte(earth[3]),
        BANG,
        NIHON,
    ];
    let (chunks, rest) = stream(&tok, &ids);
    let expected: Vec<Option<String>> = vec![
        Some("Hello".into()),
        Some(" world".into()),
        Some(" ".into()),
        None,
        None,
        None,
        Some("🌍".into()),
        Some("!".into()),
        Some(" 日本".into()),
    ];
    assert_eq!(chunks, expected);
    assert_eq!(rest, None);
    assert_eq!(joined(&chunks, &rest), tok.decode(&ids, false).unwrap());
    assert_eq!(joined(&chunks, &rest), "Hello world 🌍! 日本");
}

#[test]
fn flush_releases_an_incomplete_character() {
    let tok = sentencepiece_tokenizer();
    let mut dec = IncrementalDecoder::new(&tok, false);
    assert_eq!(dec.push(HELLO).unwrap().as_deref(), Some("Hello"));
    assert_eq!(dec.push(byte(0xF0)).unwrap(), None);
    assert_eq!(dec.push(byte(0x9F)).unwrap(), None);
    let rest = dec.flush().unwrap().expect("held bytes are released");
    assert!(
        !rest.is_empty() && rest.chars().all(|c| c == '\u{FFFD}'),
        "{rest:?}"
    );
    assert_eq!(dec.flush().unwrap(), None);
    assert_eq!(dec.tokens(), &[HELLO, byte(0xF0), byte(0x9F)]);
}

#[test]
fn invalid_byte_runs_are_emitted_after_the_pending_limit() {
    let tok = sentencepiece_tokenizer();
    let mut dec = IncrementalDecoder::new(&tok, false);
    dec.push(HELLO).unwrap();
    let outs: Vec<Option<String>> = (0..etmlx_llm::detok::MAX_PENDING_TOKENS)
        .map(|_| dec.push(byte(0xFF)).unwrap())
        .collect();
    assert!(outs[..outs.len() - 1].iter().all(Option::is_none));
    let last = outs
        .last()
        .unwrap()
        .as_deref()
        .expect("emitted at the limit");
    assert!(last.chars().all(|c| c == '\u{FFFD}'));
}

#[test]
fn special_tokens_can_be_skipped() {
    let tok = Tokenizer::from_path(smollm2_dir()).unwrap();
    // "Paris." then <|im_end|> (id 2).
    let ids = [7042, 30, 2];
    let (kept, rest) = stream(&tok, &ids);
    assert_eq!(joined(&kept, &rest), " Paris.<|im_end|>");
    let mut dec = IncrementalDecoder::new(&tok, true);
    let skipped: String = ids.iter().filter_map(|&id| dec.push(id).unwrap()).collect();
    assert_eq!(skipped, " Paris.");
}
