//! Sampler behaviour on logits whose answers are known by hand.

use etmlx_llm::sampler::{apply_penalties, argmax};
use etmlx_llm::{LlmError, Sampler, SamplerConfig};

fn sampler(config: SamplerConfig) -> Sampler {
    Sampler::new(config).expect("valid config")
}

/// Logits whose softmax is exactly `probs` (up to a constant): ln p.
fn log_probs(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

fn frequencies(s: &mut Sampler, logits: &[f32], draws: usize) -> Vec<f64> {
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..draws {
        counts[s.sample(logits, &[]).unwrap() as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / draws as f64).collect()
}

#[test]
fn greedy_is_argmax_with_ties_to_the_lowest_id() {
    let mut s = sampler(SamplerConfig::greedy());
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 2.0], &[]).unwrap(), 1);
    assert_eq!(s.sample(&[-5.0, -4.0, -4.5], &[]).unwrap(), 1);
    assert_eq!(s.sample(&[f32::NEG_INFINITY, 0.0], &[]).unwrap(), 1);
    assert_eq!(s.sample(&[f32::NAN, -1.0, -2.0], &[]).unwrap(), 1);
    let mut big = vec![0.0f32; 50_000];
    big[31_337] = 0.5;
    big[40_000] = 0.5;
    assert_eq!(s.sample(&big, &[]).unwrap(), 31_337);
    assert_eq!(argmax(&[3.0, 3.0, 3.0]), Some(0));
    assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), None);
}

#[test]
fn top_k_one_is_greedy_at_any_temperature_and_seed() {
    let logits = [0.3f32, 1.2, 1.1, -0.4, 1.2];
    for (temperature, seed) in [(0.7, 1), (1.0, 2), (1.5, 3), (5.0, 4)] {
        let mut s = sampler(SamplerConfig {
            temperature,
            top_k: 1,
            seed,
            ..Default::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&logits, &[]).unwrap(), 1);
        }
    }
}

#[test]
fn the_same_seed_repeats_and_another_seed_differs() {
    let logits = vec![0.0f32; 8]; // uniform over 8 tokens
    let draw = |seed| {
        let mut s = sampler(SamplerConfig {
            temperature: 1.0,
            seed,
            ..Default::default()
        });
        (0..64)
            .map(|_| s.sample(&logits, &[]).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    // Two independent uniform sequences over 8 symbols agree with probability 8^-64.
    assert_ne!(draw(42), draw(43));
    // Reseeding restarts the stream.
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        seed: 42,
        ..Default::default()
    });
    let first: Vec<u32> = (0..64).map(|_| s.sample(&logits, &[]).unwrap()).collect();
    s.reseed(42);
    let again: Vec<u32> = (0..64).map(|_| s.sample(&logits, &[]).unwrap()).collect();
    assert_eq!(first, again);
}

#[test]
fn temperature_one_matches_softmax_frequencies() {
    let probs = [0.2, 0.3, 0.5];
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        seed: 7,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &log_probs(&probs), 40_000);
    // Standard error ≤ sqrt(0.25 / 40000) = 0.0025; 0.012 is about 5 sigma.
    for (f, p) in freq.iter().zip(probs) {
        assert!((f - p).abs() < 0.012, "frequencies {freq:?} vs {probs:?}");
    }
}

#[test]
fn temperature_sharpens_the_distribution() {
    // T = 0.5 squares the probabilities: [0.04, 0.09, 0.25] / 0.38.
    let expected = [0.04 / 0.38, 0.09 / 0.38, 0.25 / 0.38];
    let mut s = sampler(SamplerConfig {
        temperature: 0.5,
        seed: 11,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &log_probs(&[0.2, 0.3, 0.5]), 40_000);
    for (f, p) in freq.iter().zip(expected) {
        assert!(
            (f - p).abs() < 0.012,
            "frequencies {freq:?} vs {expected:?}"
        );
    }
}

#[test]
fn top_k_keeps_only_the_k_best() {
    // Probabilities 0.1, 0.4, 0.15, 0.35: the two best are ids 1 and 3 (renormalised 0.4/0.75, 0.35/0.75).
    let logits = log_probs(&[0.1, 0.4, 0.15, 0.35]);
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        top_k: 2,
        seed: 3,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &logits, 20_000);
    assert_eq!((freq[0], freq[2]), (0.0, 0.0));
    assert!((freq[1] - 0.4 / 0.75).abs() < 0.015, "{freq:?}");
}

#[test]
fn top_p_keeps_the_smallest_nucleus() {
    let logits = log_probs(&[0.05, 0.5, 0.15, 0.3]);
    // Sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 2), 0.05 (id 0).
    // top_p 0.75: 0.5 < 0.75, 0.8 ≥ 0.75 → {1, 3}.  top_p 0.9: 0.95 ≥ 0.9 → {1, 3, 2}.
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        top_p: 0.75,
        seed: 5,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &logits, 20_000);
    assert_eq!((freq[0], freq[2]), (0.0, 0.0), "{freq:?}");
    assert!((freq[1] - 0.5 / 0.8).abs() < 0.015, "{freq:?}");
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        top_p: 0.9,
        seed: 5,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &logits, 20_000);
    assert_eq!(freq[0], 0.0, "{freq:?}");
    assert!(freq[2] > 0.1, "{freq:?}");
}

#[test]
fn min_p_drops_tokens_below_a_fraction_of_the_best() {
    let logits = log_probs(&[0.05, 0.5, 0.15, 0.3]);
    // min_p 0.2 → floor 0.1: keeps 0.5, 0.3, 0.15.  min_p 0.5 → floor 0.25: keeps 0.5, 0.3.
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        min_p: 0.2,
        seed: 9,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &logits, 20_000);
    assert_eq!(freq[0], 0.0, "{freq:?}");
    assert!((freq[2] - 0.15 / 0.95).abs() < 0.015, "{freq:?}");
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        min_p: 0.5,
        seed: 9,
        ..Default::default()
    });
    let freq = frequencies(&mut s, &logits, 20_000);
    assert_eq!((freq[0], freq[2]), (0.0, 0.0), "{freq:?}");
}

#[test]
fn repetition_penalty_follows_the_hf_rule() {
    // HF RepetitionPenaltyLogitsProcessor: seen tokens' logits > 0 are divided by the penalty, others multiplied;
    // a token seen twice is penalised once.
    let config = SamplerConfig {
        repetition_penalty: 2.0,
        ..Default::default()
    };
    let mut logits = [2.0f32, -1.0, 0.5, 3.0];
    apply_penalties(&mut logits, &[0, 1, 1, 99], &config);
    assert_eq!(logits, [1.0, -2.0, 0.5, 3.0]);

    // Greedy flips away from a seen token: 2.0 → 1.0 < 1.5, and -1.0 → -2.0 < -1.5.
    let mut s = sampler(config.clone());
    assert_eq!(s.sample(&[2.0, 1.5], &[0]).unwrap(), 1);
    assert_eq!(s.sample(&[-1.0, -1.5], &[0]).unwrap(), 1);
    assert_eq!(s.sample(&[2.0, 1.5], &[]).unwrap(), 0);

    // Only the last `repetition_context` tokens count: history [0, 1] with a window of 1 penalises only id 1.
    let mut s = sampler(SamplerConfig {
        repetition_context: Some(1),
        ..config
    });
    assert_eq!(s.sample(&[2.0, 1.5], &[0, 1]).unwrap(), 0);
}

#[test]
fn presence_and_frequency_penalties_follow_the_openai_rule() {
    // logit -= presence * [count > 0] + frequency * count
    let config = SamplerConfig {
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        ..Default::default()
    };
    let mut logits = [1.0f32, 1.0, 1.0];
    apply_penalties(&mut logits, &[0, 0, 0, 2], &config);
    assert_eq!(logits, [1.0 - 0.5 - 0.75, 1.0, 1.0 - 0.5 - 0.25]);
}

#[test]
fn bad_settings_and_bad_logits_are_errors() {
    for config in [
        SamplerConfig {
            temperature: -1.0,
            ..Default::default()
        },
        SamplerConfig {
            temperature: f32::NAN,
            ..Default::default()
        },
        SamplerConfig {
            top_p: 0.0,
            ..Default::default()
        },
        SamplerConfig {
            top_p: 1.5,
            ..Default::default()
        },
        SamplerConfig {
            min_p: -0.1,
            ..Default::default()
        },
        SamplerConfig {
            repetition_penalty: 0.0,
            ..Default::default()
        },
    ] {
        let err = Sampler::new(config.clone()).unwrap_err();
        assert!(
            matches!(err, LlmError::InvalidSamplerConfig { .. }),
            "{config:?}: {err}"
        );
    }
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        ..Default::default()
    });
    assert!(matches!(s.sample(&[], &[]), Err(LlmError::Sampling(_))));
    assert!(matches!(
        s.sample(&[f32::NEG_INFINITY, f32::NAN], &[]),
        Err(LlmError::Sampling(_))
    ));
    let mut g = sampler(SamplerConfig::greedy());
    assert!(matches!(
        g.sample(&[f32::NAN; 4], &[]),
        Err(LlmError::Sampling(_))
    ));
}

#[test]
fn config_round_trips_through_json_with_defaults() {
    let config: SamplerConfig =
        serde_json::from_str(r#"{"temperature": 0.7, "top_p": 0.9, "seed": 5}"#).unwrap();
    assert_eq!(config.temperature, 0.7);
    assert_eq!(config.top_k, 0);
    assert_eq!(config.repetition_penalty, 1.0);
    assert_eq!(config.seed, 5);
}

#[test]
fn a_large_nucleus_is_found_past_the_first_selection() {
    // 1000 equal logits: the nucleus for top_p 0.5 is 500 tokens, and equal logits keep id order, so exactly
    // ids 0..500 can come out.
    let logits = vec![1.0f32; 1000];
    let mut s = sampler(SamplerConfig {
        temperature: 1.0,
        top_p: 0.5,
        seed: 21,
        ..Default::default()
    });
    let draws: Vec<u32> = (0..1000).map(|_| s.sample(&logits, &[]).unwrap()).collect();
    assert!(draws.iter().all(|&id| id < 500));
    assert!(draws.iter().any(|&id| id >= 450) && draws.iter().any(|&id| id < 50));
}

#[test]
fn a_tiny_temperature_is_greedy() {
    let mut s = sampler(SamplerConfig {
        temperature: 1e-30,
        seed: 1,
        ..Default::default()
    });
    assert_eq!(s.sample(&[0.0, 5.0, 4.999], &[]).unwrap(), 1);
}
