//! When generation stops: the stop-id set, stop strings, and the reason reported to users.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::template::{ChatTemplate, RenderOptions};
use crate::tokenizer::Tokenizer;

/// Why a generation ended. Serialized in snake_case: `"eos"`, `"length"`, `"stop_string"`, `"context_full"`,
/// `"cancelled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop id (EOS or end-of-turn) was sampled.
    Eos,
    /// The requested number of new tokens was reached.
    Length,
    /// The text reached one of the stop strings.
    StopString,
    /// The model's context (KV cache) is full.
    ContextFull,
    /// The caller cancelled (Ctrl-C, client gone).
    Cancelled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::Length => "length",
            StopReason::StopString => "stop_string",
            StopReason::ContextFull => "context_full",
            StopReason::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token ids that end a generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopIds {
    ids: BTreeSet<u32>,
}

impl StopIds {
    pub fn new(ids: impl IntoIterator<Item = u32>) -> Self {
        StopIds {
            ids: ids.into_iter().collect(),
        }
    }

    /// The model's EOS ids (e.g. the `.pte`'s `get_eos_ids` constant, tokenizer_config's `eos_token`)
    /// ∪ generation_config.json's `eos_token_id` (Qwen3 needs both `<|im_end|>` and `<|endoftext|>`)
    /// ∪ the chat template's end-of-turn token.
    pub fn build(
        model_eos_ids: &[u32],
        generation_config_eos_ids: &[u32],
        end_of_turn: Option<u32>,
    ) -> Self {
        let mut ids: BTreeSet<u32> = model_eos_ids.iter().copied().collect();
        ids.extend(generation_config_eos_ids.iter().copied());
        ids.extend(end_of_turn);
        StopIds { ids }
    }

    /// Everything a chat run should stop on: `extra_eos_ids` (from the model file) ∪ the tokenizer folder's EOS
    /// ids ∪ the template's end-of-turn token (when a template is used).
    pub fn for_tokenizer(
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
        extra_eos_ids: &[u32],
    ) -> Self {
        let end_of_turn = template.and_then(|t| {
            let options = RenderOptions::for_tokenizer(tokenizer, false);
            t.end_of_turn_token(&tokenizer.special_tokens(), &options)
        });
        let mut stop = Self::build(
            extra_eos_ids,
            &tokenizer.generation_config().eos_token_ids,
            end_of_turn.map(|t| t.id),
        );
        stop.ids.extend(tokenizer.eos_token().map(|t| t.id));
        stop
    }

    pub fn insert(&mut self, id: u32) {
        self.ids.insert(id);
    }

    pub fn contains(&self, id: u32) -> bool {
        self.ids.contains(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids in ascending order.
    pub fn ids(&self) -> Vec<u32> {
        self.ids.iter().copied().collect()
    }
}

/// What [`StopStrings::push`] lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopCheck {
    /// Text that is safe to show (it cannot be the start of a stop string).
    pub text: String,
    /// A stop string was reached; `text` ends right before it.
    pub stopped: bool,
}

/// Watches streamed text for stop strings. Text that could be the beginning of a stop string is held back until
/// it either completes the stop string or stops matching, so a stop string is never shown.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

impl StopStrings {
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        StopStrings {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    pub fn push(&mut self, text: &str) -> StopCheck {
        self.held.push_str(text);
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let text = self.held[..pos].to_string();
            self.held.clear();
            return StopCheck {
                text,
                stopped: true,
            };
        }
        let keep = self.longest_partial_suffix();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopCheck {
            text,
            stopped: false,
        }
    }

    /// Releases held-back text (generation ended for another reason).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Byte length of the longest suffix of `held` that is a proper prefix of a stop string.
    fn longest_partial_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}
