//! Incremental detokenisation for streaming.
//!
//! Decoding token by token goes wrong in two ways: a character split over several byte tokens (byte-level BPE,
//! SentencePiece `<0xF0>` byte fallback) decodes to U+FFFD until its last byte arrives, and SentencePiece-style
//! decoders drop the leading space of the *first* token of every decode call. So we decode a short window that
//! starts one emitted chunk back, and emit only the new text past the window's already-emitted prefix, and only
//! when it does not end in an incomplete character.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// After this many tokens without a complete character we emit anyway: a UTF-8 character is at most 4 bytes, so
/// a longer run ending in U+FFFD is invalid output from the model, not a character still in flight.
pub const MAX_PENDING_TOKENS: usize = 8;

const REPLACEMENT: char = '\u{FFFD}';

pub struct IncrementalDecoder<'t> {
    tokenizer: &'t Tokenizer,
    skip_special_tokens: bool,
    tokens: Vec<u32>,
    /// Start of the decode window: the first token of the chunk emitted last.
    prefix_start: usize,
    /// End of what has been emitted.
    read_end: usize,
}

impl<'t> IncrementalDecoder<'t> {
    pub fn new(tokenizer: &'t Tokenizer, skip_special_tokens: bool) -> Self {
        IncrementalDecoder {
            tokenizer,
            skip_special_tokens,
            tokens: Vec::new(),
            prefix_start: 0,
            read_end: 0,
        }
    }

    /// Adds one token; returns the text it completes, if any. The text is always whole characters.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.tokens.push(id);
        let prefix = self.decode(self.prefix_start, self.read_end)?;
        let full = self.decode(self.prefix_start, self.tokens.len())?;
        let pending = self.tokens.len() - self.read_end;
        if full.len() <= prefix.len()
            || (full.ends_with(REPLACEMENT) && pending < MAX_PENDING_TOKENS)
        {
            return Ok(None);
        }
        let Some(new_text) = suffix_after(&full, &prefix) else {
            return Ok(None);
        };
        let new_text = new_text.to_string();
        self.prefix_start = self.read_end;
        self.read_end = self.tokens.len();
        Ok(Some(new_text))
    }

    /// Returns whatever text is still held back (an incomplete character decodes to U+FFFD here) and resets the
    /// window so the next `push` starts fresh (the ids seen so far are kept in [`Self::tokens`]).
    pub fn flush(&mut self) -> Result<Option<String>> {
        if self.read_end == self.tokens.len() {
            return Ok(None);
        }
        let prefix = self.decode(self.prefix_start, self.read_end)?;
        let full = self.decode(self.prefix_start, self.tokens.len())?;
        self.prefix_start = self.tokens.len();
        self.read_end = self.tokens.len();
        Ok(suffix_after(&full, &prefix)
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    }

    /// All ids pushed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets everything (a new generation).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.prefix_start = 0;
        self.read_end = 0;
    }

    fn decode(&self, start: usize, end: usize) -> Result<String> {
        if start >= end {
            return Ok(String::new());
        }
        self.tokenizer
            .decode(&self.tokens[start..end], self.skip_special_tokens)
    }
}

/// The part of `full` after `prefix`. Decoders are prefix-stable in practice, so `full` starts with `prefix`;
/// when one is not, cut at the same byte length if that is a character boundary, else give up on this step.
fn suffix_after<'a>(full: &'a str, prefix: &str) -> Option<&'a str> {
    full.strip_prefix(prefix)
        .or_else(|| full.get(prefix.len()..))
}
