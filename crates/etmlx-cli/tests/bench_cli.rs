//! `etmlx bench` end to end on the tiny random Llama export (tests/fixtures/tiny_llama_custom) on the CPU: the
//! `--json` line has the documented shape, throughputs are positive and ordered, the prefill chunking follows the
//! export's `get_prefill_chunk_size`, a test longer than the context fails cleanly, and the weight-stripped copy
//! (tests/fixtures/tiny_llama_custom_stripped, written by python/strip_weights.py with the official serializer)
//! runs only with `--synthetic-weights`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

fn bench(model: &PathBuf, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etmlx"))
        .arg("bench")
        .arg(model)
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("run etmlx")
}

fn last_json_line(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "etmlx bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).expect("the last stdout line is one JSON object")
}

fn check_test(t: &serde_json::Value, name: &str, tokens: u64, calls: u64) {
    assert_eq!(t["test"], name);
    assert_eq!(t["tokens"], tokens);
    assert_eq!(t["calls"], calls, "{name}: forward calls");
    let (median, min, max) = (
        t["tok_s_median"].as_f64().expect("median"),
        t["tok_s_min"].as_f64().expect("min"),
        t["tok_s_max"].as_f64().expect("max"),
    );
    assert!(min > 0.0 && min <= median && median <= max, "{name}: {t}");
    assert!(t["ms_median"].as_f64().expect("ms") > 0.0);
    assert!(t["peak_memory_bytes"].as_u64().expect("peak") > 0);
}

#[test]
fn json_report_shape_and_chunking() {
    let meta = read_json(fixture("tiny_llama_custom/meta.json"));
    let chunk = meta["prefill_chunk_size"].as_u64().expect("chunk");
    let ctx = meta["max_ctx_len"].as_u64().expect("ctx");
    let model = fixture("tiny_llama_custom/model.pte");
    // One prompt inside one chunk, one spanning two chunks.
    let long = chunk + 4;
    let p = format!("4,{long}");
    let out = bench(
        &model,
        &["-p", &p, "-n", "4", "-r", "2", "--json", "--profile"],
    );
    let r = last_json_line(&out);
    assert_eq!(r["device"], "cpu");
    assert_eq!(r["synthetic_weights"], false);
    assert_eq!(r["prefill_chunk_size"], chunk);
    assert_eq!(r["max_ctx_len"], ctx);
    assert!(r["load_ms"].as_f64().expect("load_ms") > 0.0);
    assert_eq!(r["repetitions"], 2);
    let prefill = r["prefill"].as_array().expect("prefill");
    assert_eq!(prefill.len(), 2);
    check_test(&prefill[0], "pp4", 4, 1);
    check_test(&prefill[1], &format!("pp{long}"), long, 2);
    let decode = r["decode"].as_array().expect("decode");
    assert_eq!(decode.len(), 1);
    check_test(&decode[0], "tg4", 4, 4);
    let profile = &decode[0]["profile"];
    for key in [
        "step_ms",
        "graph_build_ms",
        "submit_ms",
        "wait_ms",
        "argmax_ms",
    ] {
        assert!(profile[key].as_f64().expect(key) >= 0.0, "{key}: {profile}");
    }
    assert!(
        profile["graph_build_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "building the graph takes time"
    );
    // Every decode step submits a graph: at least the model's matmuls, listed by primitive kind.
    let per_step = profile["primitives_per_step"]
        .as_f64()
        .expect("primitives_per_step");
    assert!(per_step >= 1.0, "{profile}");
    let top = profile["top_primitives"]
        .as_array()
        .expect("top_primitives");
    assert!(!top.is_empty(), "{profile}");
    let listed: f64 = top
        .iter()
        .map(|c| c["per_step"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        listed <= per_step + 1e-9,
        "the top kinds are part of the total: {profile}"
    );
    // Prefill is profiled per forward call: a prompt of two chunks takes two calls, and their mean
    // time × calls is the mean repetition, within [min, max].
    for t in prefill {
        let p = &t["profile"];
        let calls = t["calls"].as_f64().expect("calls");
        let per_rep = p["step_ms"].as_f64().expect("step_ms") * calls;
        let (lo, hi) = (t["ms_min"].as_f64().unwrap(), t["ms_max"].as_f64().unwrap());
        assert!(per_rep >= lo * 0.999 && per_rep <= hi * 1.001, "{t}");
        assert!(
            p["primitives_per_step"].as_f64().expect("primitives") >= 1.0,
            "{t}"
        );
        assert_eq!(p["argmax_ms"].as_f64(), Some(0.0), "{t}");
    }
    // A decode step runs every linear layer: per Llama layer q/k/v as one fused product, o, gate/up as one fused
    // product and down (the `fuse_projections` pass), plus the LM head.
    let layers = meta["hf_config"]["num_hidden_layers"]
        .as_f64()
        .expect("layers");
    let matmuls: f64 = top
        .iter()
        .filter(|c| matches!(c["name"].as_str(), Some("Matmul" | "AddMM")))
        .map(|c| c["per_step"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(matmuls >= 4.0 * layers + 1.0, "{profile}");
    assert!(r["peak_memory_bytes"].as_u64().expect("peak") > 0);
    assert!(!r["versions"]["mlx"]
        .as_str()
        .expect("mlx version")
        .is_empty());
    // The declared weight bytes are every named-data blob of the unstripped file (the strip report's sum).
    let strip = read_json(fixture("tiny_llama_custom_stripped/model.pte.strip.json"));
    let named = strip["kept_bytes"].as_u64().expect("kept")
        + strip["removed_bytes"].as_u64().expect("removed");
    assert_eq!(r["weight_bytes"], named);
}

#[test]
fn csv_and_table_outputs() {
    let model = fixture("tiny_llama_custom/model.pte");
    let out = bench(&model, &["-p", "4", "-n", "2", "-r", "1", "--csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "header + pp4 + tg2:\n{stdout}");
    assert!(lines[0].starts_with("model,device,weights,test,tokens"));
    assert!(
        lines[1].contains(",pp4,4,1,") && lines[2].contains(",tg2,2,2,"),
        "{stdout}"
    );
    let table = bench(&model, &["-p", "4", "-n", "2", "-r", "1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success() && text.contains("| pp4 ") && text.contains("| tg2 "),
        "{text}"
    );
}

/// `--mlx-option submit_every=2`: the report records the option, a 16-token prefill call (the fixture's chunk) is
/// submitted in stages (two layers: five products each, plus the LM head → five stages), a one-token decode step
/// is not, and the profile still counts every primitive of the prefill (the staged ones included).
#[test]
fn staged_submission_is_recorded_and_profiled() {
    let model = fixture("tiny_llama_custom/model.pte");
    let run = |extra: &[&str]| {
        let mut args = vec!["-p", "16", "-n", "2", "-r", "2", "--json", "--profile"];
        args.extend_from_slice(extra);
        last_json_line(&bench(&model, &args))
    };
    let staged = run(&["--mlx-option", "submit_every=2"]);
    let plain = run(&[]);
    assert_eq!(
        staged["mlx_options"],
        serde_json::json!([["submit_every", 2]])
    );
    let profile = |r: &serde_json::Value, list: &str| r[list][0]["profile"].clone();
    assert_eq!(
        profile(&staged, "prefill")["stages_per_call"],
        5.0,
        "{staged}"
    );
    assert_eq!(
        profile(&staged, "decode")["stages_per_call"],
        0.0,
        "{staged}"
    );
    assert_eq!(
        profile(&plain, "prefill")["stages_per_call"],
        0.0,
        "{plain}"
    );
    for list in ["prefill", "decode"] {
        assert_eq!(
            profile(&staged, list)["primitives_per_step"],
            profile(&plain, list)["primitives_per_step"],
            "{list}"
        );
    }
}

#[test]
fn tests_longer_than_the_context_fail_cleanly() {
    let ctx = read_json(fixture("tiny_llama_custom/meta.json"))["max_ctx_len"]
        .as_u64()
        .expect("ctx");
    let model = fixture("tiny_llama_custom/model.pte");
    let p = (ctx + 1).to_string();
    let out = bench(&model, &["-p", &p, "-n", "1", "-r", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("prompt length {p}")) && err.contains(&ctx.to_string()),
        "{err}"
    );
    // n generated tokens after the 1-token prompt use positions 0..=n.
    let n = ctx.to_string();
    let out = bench(&model, &["-p", "1", "-n", &n, "-r", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{} positions", ctx + 1)), "{err}");
}

#[test]
fn stripped_export_needs_synthetic_weights() {
    let model = fixture("tiny_llama_custom_stripped/model.pte");
    let strip = read_json(fixture("tiny_llama_custom_stripped/model.pte.strip.json"));
    let removed: Vec<&String> = strip["removed"]
        .as_object()
        .expect("removed")
        .keys()
        .collect();
    assert!(!removed.is_empty());

    let out = bench(&model, &["-p", "4", "-n", "2", "-r", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("missing from the program's named data"),
        "{err}"
    );
    assert!(
        removed.iter().any(|k| err.contains(k.as_str())),
        "names a removed key: {err}"
    );

    let out = bench(
        &model,
        &[
            "-p",
            "4",
            "-n",
            "2",
            "-r",
            "2",
            "--synthetic-weights",
            "--json",
        ],
    );
    let r = last_json_line(&out);
    assert_eq!(r["synthetic_weights"], true);
    assert_eq!(r["weights"], "SYNTHETIC WEIGHTS");
    check_test(&r["prefill"][0], "pp4", 4, 1);
    check_test(&r["decode"][0], "tg2", 2, 2);
    // Shapes come from the payload, so the stripped file declares the same weight bytes as the original.
    let named = strip["kept_bytes"].as_u64().expect("kept")
        + strip["removed_bytes"].as_u64().expect("removed");
    assert_eq!(r["weight_bytes"], named);

    let table = bench(
        &model,
        &["-p", "4", "-n", "2", "-r", "1", "--synthetic-weights"],
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains("SYNTHETIC WEIGHTS"));
}

/// tgN runs the device-resident pipelined loop where the export allows it, says so, and `--host-decode` runs the
/// host loop instead; with no -p/-n, a default test longer than the 64-position context is skipped with a note.
#[test]
fn decode_loop_is_reported_and_defaults_that_do_not_fit_are_skipped() {
    let model = fixture("tiny_llama_custom/model.pte");
    let pipelined = last_json_line(&bench(&model, &["-p", "4", "-n", "8", "-r", "1", "--json"]));
    assert_eq!(pipelined["decode_path"], "device-pipelined", "{pipelined}");
    assert_eq!(pipelined["sampling"], "device argmax");
    let host = last_json_line(&bench(
        &model,
        &["-p", "4", "-n", "8", "-r", "1", "--json", "--host-decode"],
    ));
    assert_eq!(host["decode_path"], "host", "{host}");
    assert_eq!(host["sampling"], "host argmax");

    // The fixture's context is 64: neither pp512 nor tg128 fits, so with no -p/-n there is nothing to run.
    let out = bench(&model, &["-r", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pp512 skipped") && err.contains("tg128 skipped"),
        "{err}"
    );
    // Given -n, the default pp512 is skipped with a note and the run goes on.
    let report = last_json_line(&bench(&model, &["-n", "4", "-r", "1", "--json"]));
    assert_eq!(
        report["prefill"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let skipped = report["skipped"].as_array().expect("skipped notes");
    assert!(
        skipped[0].as_str().unwrap_or("").contains("pp512"),
        "{report}"
    );
}
