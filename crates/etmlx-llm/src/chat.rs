//! A multi-turn conversation over a [`Generator`]: the messages, an optional system prompt, and the KV cache
//! kept across turns (each turn re-renders the whole conversation with the chat template; the generator reuses
//! the cached prefix, so only the new turn is prefilled).

use std::ops::ControlFlow;

use crate::error::Result;
use crate::generate::{GenerateOptions, Generator, TokenEvent};
use crate::stats::GenerationOutput;
use crate::template::Message;

#[derive(Debug)]
pub struct ChatSession {
    generator: Generator,
    system: Option<String>,
    /// User and assistant turns, in order (the system prompt is kept apart so `/system` can change it).
    turns: Vec<Message>,
}

impl ChatSession {
    pub fn new(generator: Generator, system: Option<String>) -> Self {
        ChatSession {
            generator,
            system,
            turns: Vec::new(),
        }
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    /// Sets (or clears) the system prompt. Later turns are rendered with it; the cache is reused only up to
    /// where the rendering changes.
    pub fn set_system(&mut self, system: Option<String>) {
        self.system = system;
    }

    /// Starts a new conversation (the system prompt is kept).
    pub fn reset(&mut self) -> Result<()> {
        self.turns.clear();
        self.generator.reset()
    }

    /// The messages as the template sees them.
    pub fn messages(&self) -> Vec<Message> {
        let mut messages = Vec::with_capacity(self.turns.len() + 1);
        messages.extend(self.system.as_deref().map(Message::system));
        messages.extend(self.turns.iter().cloned());
        messages
    }

    /// Adds a user turn and generates the assistant's reply, streaming it to `on_token`. On error (e.g. the
    /// conversation no longer fits the context) the user turn is taken back.
    pub fn send(
        &mut self,
        user: &str,
        options: &GenerateOptions,
        on_token: impl FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<GenerationOutput> {
        self.turns.push(Message::user(user));
        let result = self
            .generator
            .encode_chat(&self.messages())
            .and_then(|ids| self.generator.generate(&ids, options, on_token));
        match result {
            Ok(out) => {
                self.turns.push(Message::assistant(out.text.clone()));
                Ok(out)
            }
            Err(e) => {
                self.turns.pop();
                Err(e)
            }
        }
    }
}
