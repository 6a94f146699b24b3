//! Stop ids, stop reasons, stop strings and the stats JSON shape.

mod common;

use std::time::Duration;

use common::smollm2_dir;
use etmlx_llm::{
    ChatTemplate, GenerationOutput, GenerationStats, StopIds, StopReason, StopStrings, Tokenizer,
};

#[test]
fn stop_ids_are_the_union_of_every_source() {
    // Qwen3-like: model EOS <|im_end|> 151645, generation_config [151645, 151643], template end-of-turn 151645.
    let stop = StopIds::build(&[151_645], &[151_645, 151_643], Some(151_645));
    assert_eq!(stop.ids(), vec![151_643, 151_645]);
    assert!(stop.contains(151_643) && !stop.contains(0));
    // Llama-3-like: EOS <|end_of_text|> 128001, end of turn <|eot_id|> 128009.
    assert_eq!(
        StopIds::build(&[128_001], &[], Some(128_009)).ids(),
        vec![128_001, 128_009]
    );
}

#[test]
fn smollm2_stops_on_im_end() {
    let tok = Tokenizer::from_path(smollm2_dir()).unwrap();
    let template = ChatTemplate::from_tokenizer(&tok).unwrap();
    let stop = StopIds::for_tokenizer(&tok, Some(&template), &[]);
    // greedy_reference.json: HF stopped on [2].
    assert_eq!(stop.ids(), vec![2]);
    let with_model = StopIds::for_tokenizer(&tok, None, &[0]);
    assert_eq!(with_model.ids(), vec![0, 2]);
}

#[test]
fn stop_reasons_serialize_in_snake_case() {
    let names: Vec<String> = [
        StopReason::Eos,
        StopReason::Length,
        StopReason::StopString,
        StopReason::ContextFull,
        StopReason::Cancelled,
    ]
    .iter()
    .map(|r| serde_json::to_string(r).unwrap())
    .collect();
    assert_eq!(
        names,
        [
            "\"eos\"",
            "\"length\"",
            "\"stop_string\"",
            "\"context_full\"",
            "\"cancelled\""
        ]
    );
    assert_eq!(StopReason::ContextFull.to_string(), "context_full");
    assert_eq!(
        serde_json::from_str::<StopReason>("\"length\"").unwrap(),
        StopReason::Length
    );
}

#[test]
fn stats_follow_the_documented_definitions() {
    // 37 prompt tokens in a 20 ms prefill; 9 tokens generated, the 8 after the first in 160 ms.
    let stats = GenerationStats::from_spans(
        37,
        9,
        Duration::from_millis(20),
        Duration::from_millis(160),
        Some(268_400_000),
    );
    assert!((stats.ttft_ms - 20.0).abs() < 1e-9);
    assert!((stats.prefill_tok_s - 1850.0).abs() < 1e-6);
    assert!((stats.decode_tok_s - 50.0).abs() < 1e-6);
    assert_eq!(
        stats.summary(),
        "prompt: 37 tokens, 1850.0 tok/s | TTFT: 20.0 ms | generated: 9 tokens, 50.0 tok/s | peak memory: 268.4 MB"
    );
    // One token (or none) means no decode span: rate 0, not infinity.
    let one = GenerationStats::from_spans(5, 1, Duration::from_millis(10), Duration::ZERO, None);
    assert_eq!(one.decode_tok_s, 0.0);
    assert!(!one.summary().contains("peak memory"));
}

#[test]
fn output_json_has_the_documented_field_names() {
    let out = GenerationOutput {
        text: "The capital of France is Paris.".into(),
        token_ids: vec![504, 3575],
        stop_reason: StopReason::Eos,
        stats: GenerationStats::from_spans(
            37,
            2,
            Duration::from_millis(20),
            Duration::from_millis(10),
            None,
        ),
    };
    let json = serde_json::to_value(&out).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["text", "token_ids", "stop_reason", "stats"]);
    let stat_keys: Vec<&str> = json["stats"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        stat_keys,
        [
            "prompt_tokens",
            "generated_tokens",
            "ttft_ms",
            "prefill_tok_s",
            "decode_tok_s",
            "peak_memory_bytes",
            "decode_path"
        ]
    );
    assert_eq!(json["stop_reason"], "eos");
    assert_eq!(json["stats"]["peak_memory_bytes"], serde_json::Value::Null);
    assert_eq!(json["stats"]["decode_path"], "host");
    // Records written before the field existed read as the host loop.
    let mut older = json.clone();
    older["stats"]
        .as_object_mut()
        .unwrap()
        .remove("decode_path");
    let older: GenerationOutput = serde_json::from_value(older).unwrap();
    assert_eq!(older.stats.decode_path, etmlx_llm::DecodePath::Host);
    let back: GenerationOutput = serde_json::from_value(json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn timer_orders_its_spans() {
    let mut timer = etmlx_llm::GenerationTimer::start();
    std::thread::sleep(Duration::from_millis(5));
    timer.first_token();
    let ttft = timer.ttft().unwrap();
    timer.first_token(); // ignored
    assert_eq!(timer.ttft(), Some(ttft));
    std::thread::sleep(Duration::from_millis(5));
    let stats = timer.finish(10, 3, None);
    assert!(stats.ttft_ms >= 5.0);
    assert!(stats.decode_tok_s > 0.0 && stats.decode_tok_s <= 2.0 / 0.005);
}

#[test]
fn stop_strings_hold_back_partial_matches_and_cut_before_the_stop() {
    let mut stops = StopStrings::new(["\nUser:".to_string(), "STOP".to_string()]);
    let a = stops.push("Hello\nUs");
    assert_eq!((a.text.as_str(), a.stopped), ("Hello", false)); // "\nUs" could start "\nUser:"
    let b = stops.push("ually fine. ST");
    assert_eq!((b.text.as_str(), b.stopped), ("\nUsually fine. ", false));
    let c = stops.push("OP and more");
    assert_eq!((c.text.as_str(), c.stopped), ("", true));

    let mut stops = StopStrings::new(["STOP".to_string()]);
    assert_eq!(stops.push("abc ST").text, "abc ");
    assert_eq!(stops.flush(), "ST");
    // Multi-byte text next to a partial match is cut on a character boundary.
    let mut stops = StopStrings::new(["é!".to_string()]);
    assert_eq!(stops.push("café").text, "caf");
    let done = stops.push("!");
    assert!(done.stopped && done.text.is_empty());
}
