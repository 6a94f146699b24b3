//! `etmlx inspect`: what a `.pte` holds — methods and their I/O, delegates (with a summary of each
//! MLX payload), constant-getter values, and operators left outside the delegates.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use etmlx_pte::{ProgramSummary, Ptd, Pte};
use etmlx_runtime::{HostValue, Program};
use serde::Serialize;

#[derive(Serialize)]
pub struct Report {
    pub file: String,
    pub program: ProgramSummary,
    /// One entry per (method, delegate index) whose backend is MLX.
    pub mlx_payloads: Vec<MlxPayloadSummary>,
    /// Constant getter values by method name.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Per method: operators outside delegates and whether etmlx has a kernel for each.
    pub kernels: BTreeMap<String, Vec<KernelStatus>>,
    /// Problems found while inspecting (a corrupt payload, ...). Non-empty → nonzero exit.
    pub problems: Vec<String>,
}

#[derive(Serialize)]
pub struct KernelStatus {
    pub operator: String,
    pub supported: bool,
}

#[derive(Serialize)]
pub struct MlxPayloadSummary {
    pub method: String,
    pub delegate_index: usize,
    pub version: u32,
    pub chains: usize,
    pub has_init_chain: bool,
    pub inputs: usize,
    pub outputs: usize,
    pub constants: u32,
    pub constant_bytes: u64,
    pub mutable_buffers: u32,
    pub mutable_buffer_bytes: u64,
    pub temps: u32,
    pub values: u32,
    pub op_count: usize,
    pub ops: BTreeMap<&'static str, usize>,
}

pub fn inspect(path: &Path, ptd: Option<&Path>) -> Result<Report> {
    let pte = Pte::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ptd_file = ptd
        .map(|p| Ptd::open(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let named = etmlx_pte::NamedDataMap::new(&pte, ptd_file.as_ref())?;
    let summary = pte.summary();
    let mut problems = Vec::new();
    let mut mlx_payloads = Vec::new();
    for plan in &pte.program().plans {
        for (index, d) in plan.delegates.iter().enumerate() {
            if d.id != etmlx_mlx::BACKEND_ID {
                problems.push(format!(
                    "method '{}': delegate {index} targets unknown backend '{}'",
                    plan.name, d.id
                ));
                continue;
            }
            let parsed = pte
                .delegate_blob(d)
                .map_err(anyhow::Error::from)
                .and_then(|blob| etmlx_mlx::payload::parse(blob).map_err(anyhow::Error::from));
            match parsed {
                Ok(graph) => {
                    mlx_payloads.push(summarize_payload(&plan.name, index, &graph, &named))
                }
                Err(e) => problems.push(format!("method '{}', delegate {index}: {e:#}", plan.name)),
            }
        }
    }
    // Getter values and kernel coverage come from the runtime (no backend needed for either).
    let program = Program::new(Pte::open(path)?, ptd.map(Ptd::open).transpose()?)?;
    let registry = etmlx_runtime::kernels::registry();
    let mut metadata = BTreeMap::new();
    let mut kernels = BTreeMap::new();
    for plan in &pte.program().plans {
        if plan.is_constant_getter() {
            match program.constant_method(&plan.name) {
                Ok(values) => {
                    metadata.insert(plan.name.clone(), getter_json(&values));
                }
                Err(e) => problems.push(format!("getter '{}': {e}", plan.name)),
            }
        } else if !plan.operators.is_empty() {
            let statuses = plan
                .operators
                .iter()
                .map(|op| KernelStatus {
                    operator: op.qualified_name(),
                    supported: etmlx_runtime::kernels::lookup(&registry, &op.name, &op.overload)
                        .is_some(),
                })
                .collect();
            kernels.insert(plan.name.clone(), statuses);
        }
    }
    Ok(Report {
        file: path.display().to_string(),
        program: summary,
        mlx_payloads,
        metadata,
        kernels,
        problems,
    })
}

fn summarize_payload(
    method: &str,
    delegate_index: usize,
    g: &etmlx_mlx::ir::Graph,
    named: &etmlx_pte::NamedDataMap,
) -> MlxPayloadSummary {
    let names = g.tensor_names();
    let constant_bytes = (0..g.num_constants)
        .filter_map(|t| names.get(&etmlx_mlx::ir::Tid(t)))
        .filter_map(|name| named.bytes(name))
        .map(|b| b.len() as u64)
        .sum();
    let mutable_buffer_bytes = g
        .mutable_buffer_map
        .iter()
        .filter_map(|slot| slot.tid())
        .filter_map(|tid| g.meta(tid))
        .filter_map(|m| {
            let numel: u64 = m.static_shape()?.iter().map(|&d| d.max(0) as u64).product();
            let size = etmlx_pte::ScalarType::from_i8(m.scalar_type)?.element_size() as u64;
            Some(numel * size)
        })
        .sum();
    let ops = g.op_histogram();
    MlxPayloadSummary {
        method: method.to_string(),
        delegate_index,
        version: g.version,
        chains: g.chains.len(),
        has_init_chain: g.init_chain.is_some(),
        inputs: g.input_map.len(),
        outputs: g.output_map.len(),
        constants: g.num_constants,
        constant_bytes,
        mutable_buffers: g.num_mutable_buffers,
        mutable_buffer_bytes,
        temps: g.num_temps,
        values: g.num_values,
        op_count: ops.values().sum(),
        ops,
    }
}

/// A getter's values as JSON: a single scalar unwrapped, small tensors as lists.
fn getter_json(values: &[HostValue]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = values.iter().map(crate::host_value_json).collect();
    match items.len() {
        1 => items.into_iter().next().unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Array(items),
    }
}

pub fn print_human(r: &Report) {
    let p = &r.program;
    println!(
        "{}: {} bytes, {} segment(s), {} named blob(s) ({} bytes)",
        r.file, p.file_len, p.segment_count, p.named_data.count, p.named_data.bytes
    );
    for m in p.methods.iter().filter(|m| !m.is_constant_getter) {
        println!(
            "\nmethod {}  ({} instructions: {})",
            m.name,
            m.instruction_count,
            fmt_counts(&m.instruction_kinds)
        );
        for (kind, list) in [("input", &m.inputs), ("output", &m.outputs)] {
            for (i, io) in list.iter().enumerate() {
                match &io.tensor {
                    Some(t) => println!("  {kind} {i}: {} {:?} {:?}", t.dtype, t.sizes, t.dynamism),
                    None => println!(
                        "  {kind} {i}: {} {}",
                        io.value_type,
                        io.scalar.as_deref().unwrap_or("")
                    ),
                }
            }
        }
        for (i, d) in m.delegates.iter().enumerate() {
            println!(
                "  delegate {i}: {} ({} bytes, {} call(s))",
                d.id, d.blob_size, d.calls
            );
            if let Some(s) = r
                .mlx_payloads
                .iter()
                .find(|s| s.method == m.name && s.delegate_index == i)
            {
                println!(
                    "    MLX payload v{}: {} ops in {} chain(s){}; slots: {} constants ({} bytes), {} inputs, {} outputs, {} mutable buffers ({} bytes), {} temps, {} values",
                    s.version, s.op_count, s.chains, if s.has_init_chain { " + init chain" } else { "" },
                    s.constants, s.constant_bytes, s.inputs, s.outputs, s.mutable_buffers, s.mutable_buffer_bytes, s.temps, s.values
                );
                println!("    ops: {}", fmt_counts(&s.ops));
            }
        }
        if let Some(ks) = r.kernels.get(&m.name) {
            let list: Vec<String> = ks
                .iter()
                .map(|k| {
                    format!(
                        "{}{}",
                        k.operator,
                        if k.supported { "" } else { " (MISSING)" }
                    )
                })
                .collect();
            println!("  non-delegated operators: {}", list.join(", "));
        }
    }
    if !r.metadata.is_empty() {
        println!("\nmetadata (constant methods):");
        for (name, v) in &r.metadata {
            println!("  {name} = {v}");
        }
    }
    for problem in &r.problems {
        println!("\nPROBLEM: {problem}");
    }
}

fn fmt_counts<K: std::fmt::Display>(m: &BTreeMap<K, usize>) -> String {
    let mut v: Vec<(&K, &usize)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}
