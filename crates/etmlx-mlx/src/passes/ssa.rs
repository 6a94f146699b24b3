//! Single-assignment form of the main chain, the use lists the rewrites read, and the slot allocation
//! that maps the result back onto few temp slots.
//!
//! The exporter reuses a handful of temp slots for every intermediate value (a Llama step names ~10), so
//! one slot holds many values over a chain and a pattern's input may be overwritten before the pattern
//! ends. Passes therefore work on a copy where every write to a temp gets a fresh slot: a value then has
//! one defining op, can be read anywhere after it, and a rewrite may replace the last op of a pattern
//! in place and leave the ops it no longer needs to dead-code elimination. [`allocate_slots`] then
//! packs the temps back by liveness, giving an op's output the slot of an operand that dies there (so
//! in-place updates such as `out == dst` survive).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::ir::{Graph, Op, Tid, TidClass, Vid};

/// The renaming state of one graph: which temps may be renamed and the next fresh id.
pub struct Ssa {
    /// Temps that keep their id: named by the I/O maps or by another chain, or read before written.
    pinned: HashSet<Tid>,
    first_temp: u32,
}

impl Ssa {
    /// Whether `tid` is a temp the rewrites own (renamed, allocated).
    pub fn is_renamed_temp(&self, tid: Tid) -> bool {
        tid.0 >= self.first_temp && !self.pinned.contains(&tid)
    }
}

/// Gives every write to a temp of the main chain a fresh slot. Returns `None` (leave the graph alone)
/// when the main chain runs nested chains.
pub fn rename(graph: &mut Graph) -> Option<Ssa> {
    let main = graph.main_chain;
    let chain = graph.chains.get(main)?;
    if chain.iter().any(|op| !op.called_chains().is_empty()) {
        return None;
    }
    let first_temp = graph.tid_range(TidClass::Temp).start;
    let mut pinned: HashSet<Tid> = HashSet::new();
    for slot in graph
        .input_map
        .iter()
        .chain(&graph.output_map)
        .chain(&graph.mutable_buffer_map)
        .chain(graph.named_slots.iter().map(|named| &named.slot))
    {
        if let Some(tid) = slot.tid() {
            pinned.insert(tid);
        }
    }
    for (index, other) in graph.chains.iter().enumerate() {
        if index != main {
            other
                .iter()
                .for_each(|op| op.for_each_tid(|t| _ = pinned.insert(t)));
        }
    }
    // A temp read before any write holds nothing (an error at run time): keep it as it is.
    let mut written: HashSet<Tid> = HashSet::new();
    for op in chain {
        op.for_each_input_tid(|t| {
            if t.0 >= first_temp && !written.contains(&t) {
                pinned.insert(t);
            }
        });
        op.for_each_output_tid(|t| _ = written.insert(t));
    }
    let ssa = Ssa { pinned, first_temp };
    let mut next = graph.total_tensors();
    let mut current: HashMap<Tid, Tid> = HashMap::new();
    for op in graph.chains[main].iter_mut() {
        let mut fresh: HashMap<Tid, Tid> = HashMap::new();
        op.for_each_output_tid(|t| {
            if ssa.is_renamed_temp(t) && !fresh.contains_key(&t) {
                fresh.insert(t, Tid(next));
                next += 1;
            }
        });
        op.map_tids(
            |t| current.get(&t).copied().unwrap_or(t),
            |t| fresh.get(&t).copied().unwrap_or(t),
        );
        current.extend(fresh);
    }
    graph.num_temps = next - first_temp;
    Some(ssa)
}

/// Adds a temp slot to a graph in single-assignment form.
pub fn fresh_temp(graph: &mut Graph) -> Tid {
    let tid = Tid(graph.total_tensors());
    graph.num_temps += 1;
    tid
}

/// Where each value of the main chain is defined and read. Built from a chain in single-assignment
/// form (for a slot written twice, `def` keeps the last writer).
#[derive(Default)]
pub struct Uses {
    def: HashMap<Tid, usize>,
    readers: HashMap<Tid, Vec<usize>>,
}

impl Uses {
    pub fn of(chain: &[Op]) -> Uses {
        let mut uses = Uses::default();
        for (index, op) in chain.iter().enumerate() {
            op.for_each_input_tid(|t| uses.readers.entry(t).or_default().push(index));
            op.for_each_output_tid(|t| _ = uses.def.insert(t, index));
        }
        uses
    }

    /// The index of the op that writes `tid` (`None` for constants, inputs and buffers read as they are).
    pub fn def(&self, tid: Tid) -> Option<usize> {
        self.def.get(&tid).copied()
    }

    /// The ops that read `tid`, in chain order.
    pub fn readers(&self, tid: Tid) -> &[usize] {
        self.readers.get(&tid).map_or(&[], Vec::as_slice)
    }
}

/// Ops whose result matters beyond the slots they write (or that write value slots, which this layer
/// does not track): never removed.
fn has_side_effects(op: &Op) -> bool {
    writes_values(op)
        || matches!(
            op,
            Op::Noop {}
                | Op::UpdateAndAttend { .. }
                | Op::MetalKernel { .. }
                | Op::If { .. }
                | Op::Scan { .. }
        )
}

/// The value slot an op writes (host integers), if any.
pub fn value_output(op: &Op) -> Option<Vid> {
    match op {
        Op::ItemInt { out, .. }
        | Op::SymSize { out, .. }
        | Op::AddInt { out, .. }
        | Op::SubtractInt { out, .. }
        | Op::MultiplyInt { out, .. }
        | Op::FloorDivideInt { out, .. }
        | Op::ModInt { out, .. } => Some(*out),
        _ => None,
    }
}

/// Ops that write a value slot (host integers).
pub fn writes_values(op: &Op) -> bool {
    value_output(op).is_some()
}

/// Removes ops whose every output is a renamed temp nobody reads. Returns how many were removed.
pub fn eliminate_dead_ops(graph: &mut Graph, ssa: &Ssa) -> usize {
    let chain = &mut graph.chains[graph.main_chain];
    let mut read: HashSet<Tid> = HashSet::new();
    let mut keep = vec![true; chain.len()];
    for (index, op) in chain.iter().enumerate().rev() {
        let mut dead = !has_side_effects(op);
        let mut any_output = false;
        op.for_each_output_tid(|t| {
            any_output = true;
            dead &= ssa.is_renamed_temp(t) && !read.contains(&t);
        });
        if dead && any_output {
            keep[index] = false;
        } else {
            op.for_each_input_tid(|t| _ = read.insert(t));
        }
    }
    let before = chain.len();
    let mut flags = keep.into_iter();
    chain.retain(|_| flags.next().unwrap_or(true));
    before - chain.len()
}

/// Packs the renamed temps of the main chain back onto as few slots as liveness allows (pinned temps
/// keep their ids) and shrinks `num_temps` to what is used.
pub fn allocate_slots(graph: &mut Graph, ssa: &Ssa) {
    let main = graph.main_chain;
    let chain = &graph.chains[main];
    let mut last_read: HashMap<Tid, usize> = HashMap::new();
    for (index, op) in chain.iter().enumerate() {
        op.for_each_input_tid(|t| _ = last_read.insert(t, index));
    }
    let mut free: BTreeSet<u32> = BTreeSet::new();
    let mut next_slot = ssa.first_temp;
    let mut highest_pinned = ssa.first_temp;
    for &tid in &ssa.pinned {
        highest_pinned = highest_pinned.max(tid.0 + 1);
    }
    let mut slot_of: HashMap<Tid, Tid> = HashMap::new();
    let mut new_slot = |free: &mut BTreeSet<u32>| -> Tid {
        if let Some(slot) = free.pop_first() {
            return Tid(slot);
        }
        while ssa.pinned.contains(&Tid(next_slot)) {
            next_slot += 1;
        }
        next_slot += 1;
        Tid(next_slot - 1)
    };
    let mut rewritten = Vec::with_capacity(chain.len());
    for (index, op) in chain.iter().enumerate() {
        // Slots of operands read for the last time here, in field order: outputs take them first.
        let mut dying: Vec<Tid> = Vec::new();
        op.for_each_input_tid(|t| {
            if ssa.is_renamed_temp(t) && last_read.get(&t) == Some(&index) {
                if let Some(&slot) = slot_of.get(&t) {
                    if !dying.contains(&slot) {
                        dying.push(slot);
                    }
                }
            }
        });
        let mut outputs: Vec<Tid> = Vec::new();
        op.for_each_output_tid(|t| {
            if ssa.is_renamed_temp(t) && !outputs.contains(&t) {
                outputs.push(t);
            }
        });
        let mut reuse = dying.clone().into_iter();
        for &out in &outputs {
            let slot = reuse.next().unwrap_or_else(|| new_slot(&mut free));
            slot_of.insert(out, slot);
        }
        let mut op = op.clone();
        op.map_tids(
            |t| slot_of.get(&t).copied().unwrap_or(t),
            |t| slot_of.get(&t).copied().unwrap_or(t),
        );
        rewritten.push(op);
        for slot in reuse {
            free.insert(slot.0);
        }
        // An output nobody reads frees its slot right away.
        for &out in &outputs {
            if !last_read.contains_key(&out) || last_read[&out] <= index {
                free.insert(slot_of[&out].0);
            }
        }
    }
    graph.chains[main] = rewritten;
    let end = next_slot.max(highest_pinned);
    graph.num_temps = end - ssa.first_temp;
}
