//! Prints the MLX delegate graphs of a `.pte`, one op per line (for reading what a pass sees).
//!   usage: cargo run --example graph_dump -- model.pte [--passes]
//! With `--passes`, the graph after `etmlx_mlx::passes::run` with every pass on (one-element constants are
//! taken as 1: the dump does not load weights).

struct UnitScalars;

impl etmlx_mlx::passes::ConstantValues for UnitScalars {
    fn scalar(&self, _: etmlx_mlx::ir::Tid) -> Option<f64> {
        Some(1.0)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: graph_dump model.pte")?;
    let pte = etmlx_pte::Pte::open(std::path::Path::new(&path))?;
    for plan in &pte.program().plans {
        for (index, delegate) in plan.delegates.iter().enumerate() {
            if delegate.id != etmlx_mlx::BACKEND_ID {
                continue;
            }
            let mut graph = etmlx_mlx::payload::parse(pte.delegate_blob(delegate)?)?;
            if std::env::args().any(|a| a == "--passes") {
                let options = etmlx_mlx::passes::PassOptions::default();
                let report = etmlx_mlx::passes::run(&mut graph, &options, &UnitScalars);
                println!("# passes: {report:?}");
            }
            println!(
                "# {} delegate {index}: constants {} inputs {} outputs {} buffers {} temps {} values {}",
                plan.name,
                graph.num_constants,
                graph.num_inputs,
                graph.num_outputs,
                graph.num_mutable_buffers,
                graph.num_temps,
                graph.num_values
            );
            println!(
                "# inputs {:?} outputs {:?}",
                graph.input_map, graph.output_map
            );
            for (tid, name) in graph.tensor_names() {
                println!("# name t{} = {name} {:?}", tid.0, graph.meta(tid));
            }
            for (c, chain) in graph.chains.iter().enumerate() {
                println!("## chain {c}");
                for (i, op) in chain.iter().enumerate() {
                    println!("{i:4} {}", serde_json::to_string(op)?);
                }
            }
        }
    }
    Ok(())
}
