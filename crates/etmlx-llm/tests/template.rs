//! Chat templates rendered by minijinja against HF transformers' jinja2 rendering of the same files
//! (tests/fixtures/tokenizers/templates/expected.json, written by render_expected.py).

mod common;

use common::{fixtures, read_json, smollm2_dir};
use etmlx_llm::{ChatTemplate, LlmError, Message, RenderOptions, SpecialToken, Tokenizer};

fn template(name: &str) -> ChatTemplate {
    ChatTemplate::from_file(fixtures().join("templates").join(format!("{name}.jinja"))).expect(name)
}

fn specials(texts: &[&str]) -> Vec<SpecialToken> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| SpecialToken {
            text: t.to_string(),
            id: 100 + i as u32,
        })
        .collect()
}

#[test]
fn renderings_match_hf_apply_chat_template() {
    let dir = fixtures().join("templates");
    let spec = read_json(dir.join("cases.json"));
    let expected = read_json(dir.join("expected.json"));
    let mut checked = 0;
    for result in expected["results"].as_array().unwrap() {
        let name = result["template"].as_str().unwrap();
        let case_name = result["case"].as_str().unwrap();
        let case = spec["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == case_name)
            .unwrap();
        let tokens = &spec["templates"][name];
        let mut options = RenderOptions {
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            bos_token: tokens["bos_token"].as_str().map(str::to_string),
            eos_token: tokens["eos_token"].as_str().map(str::to_string),
            enable_thinking: case["enable_thinking"].as_bool().unwrap(),
            ..Default::default()
        };
        if let Some(tools) = case.get("tools") {
            options.extra.insert("tools".into(), tools.clone());
        }
        let messages = case["messages"].as_array().unwrap();
        let rendered = template(name).render_json(messages, &options).unwrap();
        assert_eq!(
            rendered,
            result["rendered"].as_str().unwrap(),
            "template {name}, case {case_name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 25);
}

#[test]
fn generation_tags_do_not_change_the_rendering() {
    // Same conversation through Qwen3's template with and without {% generation %} tags around the assistant turn.
    let plain = template("qwen3");
    let tagged = template("qwen3_generation_tags");
    let messages = [
        Message::user("Hi"),
        Message::assistant("Hello"),
        Message::user("Bye"),
    ];
    let options = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    assert_eq!(
        plain.render(&messages, &options).unwrap(),
        tagged.render(&messages, &options).unwrap()
    );
}

#[test]
fn enable_thinking_is_detected_and_passed() {
    let qwen = template("qwen3");
    assert!(qwen.takes_enable_thinking());
    assert!(!template("llama3").takes_enable_thinking());
    let messages = [Message::user("2+2?")];
    let mut options = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    // Default (false): the empty reasoning block that switches thinking off, as Qwen3 documents it.
    assert!(qwen
        .render(&messages, &options)
        .unwrap()
        .ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    options.enable_thinking = true;
    assert!(qwen
        .render(&messages, &options)
        .unwrap()
        .ends_with("<|im_start|>assistant\n"));
}

#[test]
fn end_of_turn_tokens_are_found() {
    let options = RenderOptions {
        bos_token: Some("<|begin_of_text|>".into()),
        ..Default::default()
    };
    let llama = specials(&[
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]);
    assert_eq!(
        template("llama3")
            .end_of_turn_token(&llama, &options)
            .unwrap()
            .text,
        "<|eot_id|>"
    );

    let gemma = specials(&["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]);
    let options = RenderOptions {
        bos_token: Some("<bos>".into()),
        ..Default::default()
    };
    assert_eq!(
        template("gemma3")
            .end_of_turn_token(&gemma, &options)
            .unwrap()
            .text,
        "<end_of_turn>"
    );

    let qwen = specials(&[
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
    ]);
    assert_eq!(
        template("qwen3")
            .end_of_turn_token(&qwen, &RenderOptions::default())
            .unwrap()
            .text,
        "<|im_end|>"
    );

    // The real SmolLM2 folder: <|im_end|> is id 2.
    let tok = Tokenizer::from_path(smollm2_dir()).unwrap();
    let smol = ChatTemplate::from_tokenizer(&tok).unwrap();
    let found = smol
        .end_of_turn_token(
            &tok.special_tokens(),
            &RenderOptions::for_tokenizer(&tok, false),
        )
        .unwrap();
    assert_eq!((found.text.as_str(), found.id), ("<|im_end|>", 2));
}

#[test]
fn raise_exception_surfaces_as_an_error_naming_the_template() {
    // Gemma's template refuses two user turns in a row.
    let err = template("gemma3")
        .render(
            &[Message::user("a"), Message::user("b")],
            &RenderOptions::default(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LlmError::Template { .. }), "{msg}");
    assert!(
        msg.contains("gemma3.jinja") && msg.contains("Conversation roles must alternate"),
        "{msg}"
    );
}

#[test]
fn syntax_errors_name_the_origin() {
    let err = ChatTemplate::new("{% for m in messages %}", "inline-test").unwrap_err();
    assert!(err.to_string().contains("inline-test"), "{err}");
}

#[test]
fn python_methods_loop_controls_and_helpers_work() {
    let source = "{% for m in messages %}{% if loop.index0 == 2 %}{% break %}{% endif %}\
                  [{{ m.content.strip().upper() }}|{{ m.content.split(',')|length }}]{% endfor %}\
                  {{ {'a': 1, 'b': [true, none, 'x<y']}|tojson }}|{{ {'k': 1.0}|tojson(indent=2) }}|\
                  {{ strftime_now('%Y')|length }}";
    let t = ChatTemplate::new(source, "inline").unwrap();
    let messages = [
        Message::user(" a,b "),
        Message::user("c"),
        Message::user("never"),
    ];
    let out = t.render(&messages, &RenderOptions::default()).unwrap();
    // Python: json.dumps({'a': 1, 'b': [True, None, 'x<y']}) and json.dumps({'k': 1.0}, indent=2).
    assert_eq!(
        out,
        "[A,B|2][C|1]{\"a\": 1, \"b\": [true, null, \"x<y\"]}|{\n  \"k\": 1.0\n}|4"
    );
}

#[test]
fn a_folder_without_a_template_says_so() {
    let tok = Tokenizer::from_json_bytes(
        &std::fs::read(smollm2_dir().join("tokenizer.json")).unwrap(),
        "bare tokenizer.json",
    )
    .unwrap();
    let err = ChatTemplate::from_tokenizer(&tok).unwrap_err();
    assert!(matches!(err, LlmError::NoChatTemplate(_)), "{err}");
    assert!(err.to_string().contains("bare tokenizer.json"), "{err}");
}
