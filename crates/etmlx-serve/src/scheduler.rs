//! Slots and the request queue.
//!
//! Each slot is one [`Generator`] (a session of the shared model: own KV cache and position, weights shared)
//! driven by its own OS thread; the MLX delegate serialises graph building across threads. A request becomes a
//! [`Job`]: handed to an idle slot at once — the one whose cached tokens share the longest prefix with the
//! prompt, so a multi-turn chat lands where its history already is — or queued (bounded; beyond the bound
//! [`Scheduler::submit`] refuses). A slot that finishes takes the oldest queued job. Events (start, text, end)
//! go back over an unbounded channel whose closing (the client went away) cancels the generation at the next
//! token.
//!
//! Batching several slots into one `forward` call is not possible with these exports: `forward` takes token
//! ids of shape [1, T] (batch fixed at 1 by the exporter) and each slot's KV cache is a separate set of delegate
//! mutable buffers (or a separate off-graph cache), so one call can only ever advance one sequence.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use etmlx_llm::{GenerateOptions, Generator, StopReason};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// What a slot reports about a job.
#[derive(Debug)]
pub enum Event {
    /// A slot took the job; `cached_tokens` prompt tokens are reused from its cache.
    Started { slot: usize, cached_tokens: usize },
    /// Text the last token(s) completed (never empty).
    Text(String),
    /// The generation ended.
    Finished(Finished),
    /// The job failed or was stopped before finishing.
    Failed(JobError),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub stop_reason: StopReason,
    pub text: String,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The model refused the request (e.g. a token outside its vocabulary) or failed while generating.
    Generation(String),
    /// The request's total time ran out (waiting and generating).
    Timeout,
    /// The server is shutting down.
    ShuttingDown,
    /// Nobody listens any more (the client went away); the slot stopped.
    Abandoned,
    /// A bug: the slot caught a panic (the slot was reset and keeps serving).
    Internal,
}

/// One request for a slot.
pub struct Job {
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    pub events: mpsc::UnboundedSender<Event>,
    /// The request's total time limit.
    pub deadline: Instant,
}

impl Job {
    /// Nobody listens any more (client gone, handler timed out).
    fn abandoned(&self) -> bool {
        self.events.is_closed()
    }
}

/// Why [`Scheduler::submit`] refused a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
    ShuttingDown,
}

struct State {
    queue: VecDeque<Job>,
    /// A job handed to a slot that has not picked it up yet.
    mailbox: Vec<Option<Job>>,
    idle: Vec<bool>,
    /// Token ids in each slot's cache after its last job (to place a follow-up prompt where its prefix is).
    cached: Vec<Vec<u32>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    shutting_down: AtomicBool,
    max_queue: usize,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The slots and their queue.
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts one thread per generator. `max_queue` jobs may wait for a slot.
    pub fn start(generators: Vec<Generator>, max_queue: usize, metrics: Arc<Metrics>) -> Self {
        let n = generators.len();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                mailbox: (0..n).map(|_| None).collect(),
                idle: vec![true; n],
                cached: vec![Vec::new(); n],
            }),
            wake: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            max_queue,
            metrics,
        });
        let threads = generators
            .into_iter()
            .enumerate()
            .map(|(slot, generator)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("etmlx-slot-{slot}"))
                    .spawn(move || slot_loop(&shared, slot, generator))
                    .expect("spawning a slot thread")
            })
            .collect();
        Scheduler {
            shared,
            threads: Mutex::new(threads),
        }
    }

    pub fn slots(&self) -> usize {
        self.shared.lock().idle.len()
    }

    /// Hands `job` to the idle slot with the longest cached prefix of its prompt, or queues it.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut state = self.shared.lock();
        // Checked under the lock: `shutdown` drains the queue under it, so no job is queued after the drain.
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        match best_idle_slot(&state.idle, &state.cached, &job.prompt) {
            Some(slot) => {
                state.idle[slot] = false;
                state.mailbox[slot] = Some(job);
                self.shared.wake.notify_all();
            }
            None if state.queue.len() >= self.shared.max_queue => {
                return Err(SubmitError::QueueFull)
            }
            None => state.queue.push_back(job),
        }
        self.shared
            .metrics
            .queue_depth
            .store(state.queue.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Stops taking jobs, fails the queued ones, cancels running generations at their next token, and waits
    /// up to `grace` for the slot threads to end (a slot in the middle of a prefill chunk finishes it first).
    pub fn shutdown(&self, grace: Duration) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        {
            let mut state = self.shared.lock();
            for job in state.queue.drain(..) {
                let _ = job.events.send(Event::Failed(JobError::ShuttingDown));
            }
            self.shared.metrics.queue_depth.store(0, Ordering::Relaxed);
            self.shared.wake.notify_all();
        }
        let deadline = Instant::now() + grace;
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in threads.drain(..).filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
}

/// The idle slot whose cache shares the longest prefix with `prompt` (the lowest index among equals).
fn best_idle_slot(idle: &[bool], cached: &[Vec<u32>], prompt: &[u32]) -> Option<usize> {
    (0..idle.len())
        .filter(|&s| idle[s])
        .max_by_key(|&s| (common_prefix(&cached[s], prompt), std::cmp::Reverse(s)))
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn slot_loop(shared: &Shared, slot: usize, mut generator: Generator) {
    let mut job = None;
    loop {
        let current = match job.take() {
            Some(j) => j,
            None => {
                let mut state = shared.lock();
                loop {
                    if let Some(j) = state.mailbox[slot].take() {
                        break j;
                    }
                    if shared.shutting_down.load(Ordering::SeqCst) {
                        return;
                    }
                    state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        };
        run_job(shared, slot, &mut generator, current);
        // Take the oldest queued job that someone still waits for, or go idle.
        let mut state = shared.lock();
        state.cached[slot] = generator.cached_tokens().to_vec();
        while let Some(next) = state.queue.pop_front() {
            if !next.abandoned() {
                job = Some(next);
                break;
            }
        }
        shared
            .metrics
            .queue_depth
            .store(state.queue.len() as u64, Ordering::Relaxed);
        if job.is_none() {
            state.idle[slot] = true;
        }
    }
}

fn run_job(shared: &Shared, slot: usize, generator: &mut Generator, job: Job) {
    if job.abandoned() {
        return;
    }
    if shared.shutting_down.load(Ordering::SeqCst) {
        let _ = job.events.send(Event::Failed(JobError::ShuttingDown));
        return;
    }
    if Instant::now() >= job.deadline {
        let _ = job.events.send(Event::Failed(JobError::Timeout));
        return;
    }
    let metrics = &shared.metrics;
    // The generator reuses the cached prefix but always recomputes the prompt's last token.
    let cached_tokens =
        common_prefix(generator.cached_tokens(), &job.prompt).min(job.prompt.len() - 1);
    let _ = job.events.send(Event::Started {
        slot,
        cached_tokens,
    });
    metrics.slots_busy.fetch_add(1, Ordering::Relaxed);
    let mut stopped_by: Option<JobError> = None;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        generator
            .generate(&job.prompt, &job.options, |token| {
                if !token.text.is_empty()
                    && job.events.send(Event::Text(token.text.into())).is_err()
                {
                    return ControlFlow::Break(());
                }
                if shared.shutting_down.load(Ordering::SeqCst) {
                    stopped_by = Some(JobError::ShuttingDown);
                    return ControlFlow::Break(());
                }
                if job.events.is_closed() {
                    return ControlFlow::Break(());
                }
                if Instant::now() >= job.deadline {
                    stopped_by = Some(JobError::Timeout);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())
    }));
    metrics.slots_busy.fetch_sub(1, Ordering::Relaxed);
    let event = match result {
        Ok(Ok(output)) => {
            let s = &output.stats;
            metrics
                .prompt_tokens
                .fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
            metrics
                .cached_prompt_tokens
                .fetch_add(cached_tokens as u64, Ordering::Relaxed);
            metrics
                .completion_tokens
                .fetch_add(output.token_ids.len() as u64, Ordering::Relaxed);
            metrics.generation(s.ttft_ms, s.decode_tok_s, output.token_ids.len());
            if output.stop_reason == StopReason::Cancelled {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                Event::Failed(stopped_by.unwrap_or(JobError::Abandoned))
            } else {
                Event::Finished(Finished {
                    stop_reason: output.stop_reason,
                    prompt_tokens: job.prompt.len(),
                    cached_tokens,
                    completion_tokens: output.token_ids.len(),
                    text: output.text,
                })
            }
        }
        Ok(Err(e)) => {
            // A failure mid-prefill leaves the cache half-written: start the next job from scratch.
            let _ = generator.reset();
            Event::Failed(JobError::Generation(e))
        }
        Err(_) => {
            let _ = generator.hard_reset();
            Event::Failed(JobError::Internal)
        }
    };
    let _ = job.events.send(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_prompt_goes_to_the_idle_slot_holding_its_prefix() {
        let cached = vec![vec![1, 2, 3], vec![1, 9, 9, 9], vec![1, 9, 4]];
        let idle = vec![true, true, true];
        assert_eq!(best_idle_slot(&idle, &cached, &[1, 9, 4, 5, 6]), Some(2));
        assert_eq!(best_idle_slot(&idle, &cached, &[1, 2, 3, 7]), Some(0));
        // Ties go to the lowest index; busy slots are never chosen.
        assert_eq!(best_idle_slot(&idle, &cached, &[7]), Some(0));
        assert_eq!(
            best_idle_slot(&[false, true, false], &cached, &[1, 9, 4]),
            Some(1)
        );
        assert_eq!(best_idle_slot(&[false; 3], &cached, &[1]), None);
    }
}
