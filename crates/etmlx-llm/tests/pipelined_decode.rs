//! The device-resident pipelined decode loop (logits and sampled tokens stay in MLX; step t+1 is submitted before
//! step t's token is read) against HF transformers' greedy ids recorded in the official tiny-Llama fixtures, and
//! against the host loop; the device sampler against hand-worked filter sets on a hand-made logits row.

mod common;

use std::ops::ControlFlow;

use common::{fixture, ids, read_json};

use etmlx_llm::device_sampler::DeviceSampler;
use etmlx_llm::{
    DecodePath, GenerateOptions, Generator, LlmModel, ModelOptions, SamplerConfig, StopIds,
    StopReason,
};
use mlx::{Array, DeviceType, Stream};

/// (prompt, HF greedy ids) of a fixture.
fn reference(name: &str) -> (Vec<u32>, Vec<u32>) {
    let greedy = read_json(fixture(name).join("greedy.json"));
    (ids(&greedy["prompt_ids"]), ids(&greedy["new_token_ids"]))
}

fn generator(name: &str, host_decode: bool) -> Generator {
    let model =
        LlmModel::open(fixture(name).join("model.pte"), ModelOptions::default()).expect("open");
    let mut g = Generator::new(model, None).expect("generator");
    g.set_stop_ids(StopIds::default());
    g.set_host_decode(host_decode);
    g
}

fn options(n: usize, sampler: SamplerConfig) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        sampler,
        ..GenerateOptions::default()
    }
}

/// Runs `generate` and returns (ids, streamed ids, path).
fn run(g: &mut Generator, prompt: &[u32], o: &GenerateOptions) -> (Vec<u32>, Vec<u32>, DecodePath) {
    let mut streamed = Vec::new();
    let out = g
        .generate(prompt, o, |ev| {
            assert_eq!(ev.index, streamed.len(), "tokens arrive in order");
            streamed.push(ev.id);
            ControlFlow::Continue(())
        })
        .expect("generate");
    (out.token_ids, streamed, out.stats.decode_path)
}

#[test]
fn every_export_mode_takes_the_pipelined_loop_and_matches_hf_greedy() {
    // fp32 exports: HF transformers' fp32 greedy ids. bf16 / 4-bit: the host loop over the same export (their
    // greedy ids may legitimately differ from fp32 HF).
    for (name, hf_exact) in [
        ("tiny_llama_custom", true),
        ("tiny_llama_default", true),
        ("tiny_llama_offgraph", true),
        ("tiny_llama_custom_bf16", false),
        ("tiny_llama_custom_4w", false),
    ] {
        let (prompt, hf) = reference(name);
        let o = options(hf.len(), SamplerConfig::greedy());
        let (pipelined, streamed, path) = run(&mut generator(name, false), &prompt, &o);
        assert_eq!(path, DecodePath::DevicePipelined, "{name}");
        assert_eq!(streamed, pipelined, "{name}: the callback saw every token");
        let (host, _, host_path) = run(&mut generator(name, true), &prompt, &o);
        assert_eq!(host_path, DecodePath::Host, "{name}");
        assert_eq!(pipelined, host, "{name}: pipelined vs host loop");
        if hf_exact {
            assert_eq!(pipelined, hf, "{name}: pipelined vs HF generate()");
        }
    }
}

/// A stop id ends generation while the speculative next step is already submitted; that step's cache write must
/// not leak into the next turn (the off-graph cache counts entries, so it is rewound).
#[test]
fn a_stop_with_a_step_in_flight_leaves_the_cache_consistent() {
    for name in [
        "tiny_llama_offgraph",
        "tiny_llama_custom",
        "tiny_llama_default",
    ] {
        let (prompt, hf) = reference(name);
        let mut g = generator(name, false);
        g.set_stop_ids(StopIds::new([hf[2]]));
        let (first, _, path) = run(&mut g, &prompt, &options(12, SamplerConfig::greedy()));
        assert_eq!(path, DecodePath::DevicePipelined);
        assert_eq!(first, hf[..3], "{name}: ends with the stop id");
        assert_eq!(
            g.cached_tokens(),
            &[&prompt[..], &hf[..2]].concat()[..],
            "{name}"
        );
        // Continue the conversation: prompt + 6 greedy ids must be followed by HF's next 6.
        g.set_stop_ids(StopIds::default());
        let mut prefix = prompt.clone();
        prefix.extend_from_slice(&hf[..6]);
        let out = g
            .generate(&prefix, &options(6, SamplerConfig::greedy()), |_| {
                ControlFlow::Continue(())
            })
            .expect("continue");
        assert_eq!(
            out.token_ids,
            hf[6..],
            "{name}: continuation after the stop"
        );
        assert_eq!(
            out.stats.prompt_tokens, 4,
            "{name}: the cached prefix was reused"
        );
    }
}

#[test]
fn cancel_and_length_limits_on_the_pipelined_loop() {
    let name = "tiny_llama_custom";
    let (prompt, hf) = reference(name);
    let mut g = generator(name, false);
    let out = g
        .generate(&prompt, &options(12, SamplerConfig::greedy()), |ev| {
            if ev.index == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("generate");
    assert_eq!(out.token_ids, hf[..5]);
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    // 60 prompt tokens in a 64-position context: 5 tokens, then the context is full (as on the host loop).
    let long: Vec<u32> = (0..60).map(|i| (i * 7 + 3) % 500).collect();
    let pipelined = g
        .generate(&long, &options(100, SamplerConfig::greedy()), |_| {
            ControlFlow::Continue(())
        })
        .expect("fits");
    assert_eq!(pipelined.stop_reason, StopReason::ContextFull);
    assert_eq!(pipelined.token_ids.len(), 5);
    let host = generator(name, true)
        .generate(&long, &options(100, SamplerConfig::greedy()), |_| {
            ControlFlow::Continue(())
        })
        .expect("fits");
    assert_eq!(pipelined.token_ids, host.token_ids);
}

/// Penalties are deterministic: greedy decoding with them must pick the same ids on the device (counts kept on
/// the device) as on the host (counts from the history).
#[test]
fn penalised_greedy_agrees_between_loops() {
    let name = "tiny_llama_custom";
    let (prompt, _) = reference(name);
    let sampler = SamplerConfig {
        repetition_penalty: 1.8,
        presence_penalty: 0.4,
        frequency_penalty: 0.3,
        ..SamplerConfig::greedy()
    };
    let o = options(24, sampler);
    let (device, _, path) = run(&mut generator(name, false), &prompt, &o);
    assert_eq!(path, DecodePath::DevicePipelined);
    let (host, _, _) = run(&mut generator(name, true), &prompt, &o);
    assert_eq!(device, host);
    let (plain, _, _) = run(
        &mut generator(name, false),
        &prompt,
        &options(24, SamplerConfig::greedy()),
    );
    assert_ne!(device, plain, "the penalties changed the continuation");
    // A bounded penalty window is a host-only feature: the generator falls back.
    let windowed = SamplerConfig {
        repetition_penalty: 1.3,
        repetition_context: Some(8),
        ..SamplerConfig::greedy()
    };
    let (_, _, path) = run(&mut generator(name, false), &prompt, &options(4, windowed));
    assert_eq!(path, DecodePath::Host);
}

#[test]
fn seeded_sampling_is_reproducible_on_the_pipelined_loop() {
    let name = "tiny_llama_custom";
    let (prompt, hf) = reference(name);
    let sampler = |seed| SamplerConfig {
        temperature: 1.5,
        top_k: 50,
        top_p: 0.95,
        seed,
        ..SamplerConfig::default()
    };
    let mut g = generator(name, false);
    let (a, _, path) = run(&mut g, &prompt, &options(12, sampler(7)));
    assert_eq!(path, DecodePath::DevicePipelined);
    let (b, _, _) = run(&mut g, &prompt, &options(12, sampler(7)));
    assert_eq!(a, b, "same seed, same tokens");
    let (c, _, _) = run(&mut g, &prompt, &options(12, sampler(8)));
    assert_ne!(a, c, "another seed, other tokens");
    assert_ne!(a, hf, "temperature 1.5 is not greedy");
    assert!(a.iter().all(|&t| t < 512));
}

// ---------------------------------------------------------------------------------------------------------
// The device sampler on a hand-made row: probabilities p = [0.4, 0.3, 0.15, 0.1, 0.05, 0, 0, 0] (logits ln p).

const P: [f32; 8] = [0.4, 0.3, 0.15, 0.1, 0.05, 0.0, 0.0, 0.0];

fn row() -> Array {
    let logits: Vec<f32> = P.iter().map(|p| p.ln()).collect();
    Array::from_slice(&logits, &[1, 1, 8]).expect("row")
}

/// A CPU stream made under the MLX graph lock: MLX's registry of thread-unsafe streams is not safe to grow from two
/// threads at once (the other tests load models concurrently).
fn cpu() -> Stream {
    let _lock = etmlx_mlx::lock_graph();
    Stream::new_any_thread(DeviceType::Cpu).expect("stream")
}

/// Draws `n` tokens (one sampler, so one RNG key per step) and returns how often each id came up.
fn draw(config: SamplerConfig, n: usize) -> [usize; 8] {
    let mut sampler = DeviceSampler::new(&config, 8, &[], cpu()).expect("sampler");
    let logits = row();
    let mut counts = [0usize; 8];
    for _ in 0..n {
        let _lock = etmlx_mlx::lock_graph();
        let token = sampler.sample(&logits).expect("sample");
        counts[token.item_i64().expect("token") as usize] += 1;
    }
    counts
}

fn support(counts: &[usize; 8]) -> Vec<usize> {
    (0..8).filter(|&i| counts[i] > 0).collect()
}

fn sampling(f: impl FnOnce(&mut SamplerConfig)) -> SamplerConfig {
    let mut c = SamplerConfig {
        temperature: 1.0,
        seed: 3,
        ..SamplerConfig::default()
    };
    f(&mut c);
    c
}

#[test]
fn device_sampler_keeps_exactly_the_filtered_tokens() {
    // Greedy: id 0 every time.
    assert_eq!(support(&draw(SamplerConfig::greedy(), 20)), vec![0]);
    // top-k 2: {0, 1}.
    assert_eq!(support(&draw(sampling(|c| c.top_k = 2), 400)), vec![0, 1]);
    // top-p 0.6 (HF: keep a token while the mass before it is < 0.6): 0 (0), 1 (0.4); 2 has 0.7 before it.
    assert_eq!(support(&draw(sampling(|c| c.top_p = 0.6), 400)), vec![0, 1]);
    // top-p 0.75: mass before id 2 is 0.7 < 0.75, before id 3 is 0.85.
    assert_eq!(
        support(&draw(sampling(|c| c.top_p = 0.75), 600)),
        vec![0, 1, 2]
    );
    // min-p 0.3: p ≥ 0.3 × 0.4 = 0.12 → {0, 1, 2}.
    assert_eq!(
        support(&draw(sampling(|c| c.min_p = 0.3), 600)),
        vec![0, 1, 2]
    );
    // No filter: every token of non-zero probability can come, zero-probability ones never.
    assert_eq!(support(&draw(sampling(|_| ()), 1500)), vec![0, 1, 2, 3, 4]);
}

#[test]
fn device_sampler_draws_with_the_softmax_probabilities() {
    let n = 4000;
    let counts = draw(sampling(|_| ()), n);
    for (id, &p) in P.iter().enumerate() {
        let freq = counts[id] as f64 / n as f64;
        // 4 standard deviations of a binomial frequency at n = 4000 is at most 0.032.
        let sd = (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
        assert!(
            (freq - f64::from(p)).abs() <= 4.0 * sd + 1e-9,
            "id {id}: frequency {freq} vs probability {p}"
        );
    }
    // Temperature 0.25 sharpens: p ∝ p^4 gives id 0 a share of 0.4^4 / Σ p^4 ≈ 0.72.
    let sharp = draw(sampling(|c| c.temperature = 0.25), 2000);
    let share = sharp[0] as f64 / 2000.0;
    let expected = 0.4f64.powi(4) / P.iter().map(|&p| f64::from(p).powi(4)).sum::<f64>();
    assert!((share - expected).abs() < 0.05, "{share} vs {expected}");
}

#[test]
fn device_sampler_penalises_seen_tokens() {
    // Id 0 seen 3 times: repetition 2.0 turns its logit ln 0.4 < 0 into 2 ln 0.4 (p ∝ 0.16), frequency 0.5 × 3
    // lowers it by 1.5 more; greedy then picks id 1.
    let config = SamplerConfig {
        repetition_penalty: 2.0,
        frequency_penalty: 0.5,
        ..SamplerConfig::greedy()
    };
    let mut sampler = DeviceSampler::new(&config, 8, &[0, 0, 0], cpu()).expect("sampler");
    let _lock = etmlx_mlx::lock_graph();
    let token = sampler.sample(&row()).expect("sample");
    assert_eq!(token.item_i64().expect("token"), 1);
    // Id 1 is now counted too (once): ln 0.3 × 2 − 0.5 ≈ −2.91 against id 2's ln 0.15 ≈ −1.90.
    let token = sampler.sample(&row()).expect("sample");
    assert_eq!(token.item_i64().expect("token"), 2);
}

#[test]
fn device_sampler_refuses_a_row_of_the_wrong_size() {
    let mut sampler =
        DeviceSampler::new(&SamplerConfig::greedy(), 16, &[], cpu()).expect("sampler");
    let _lock = etmlx_mlx::lock_graph();
    let err = sampler
        .sample(&row())
        .expect_err("8 values for a 16-token vocabulary");
    assert!(err.to_string().contains("16"), "{err}");
}
