//! Every official-exporter fixture's MLX payload decodes, and the decoded graphs match facts
//! known independently: the official Python node counts recorded in each `meta.json`
//! (`mlx_node_counts`) and the models' I/O as exported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use etmlx_mlx::ir::{Graph, Op, ShapeDim, SlotKind, TidClass};
use etmlx_mlx::payload;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The delegate blobs of a `.pte`, in file order. With `extract_delegate_segments=True` each blob
/// starts a 128-aligned segment, and a blob starts with 4 zero bytes and "MLX0".
fn mlx_blobs(pte: &[u8]) -> Vec<&[u8]> {
    (0..pte.len().saturating_sub(8))
        .step_by(128)
        .filter(|&start| pte[start..start + 4] == [0; 4] && &pte[start + 4..start + 8] == b"MLX0")
        // The blob's own header bounds the FlatBuffer; the rest of the file is ignored.
        .map(|start| &pte[start..])
        .collect()
}

fn load(name: &str) -> Vec<Graph> {
    let path = fixtures_dir().join(name).join("model.pte");
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    mlx_blobs(&bytes)
        .into_iter()
        .map(|blob| payload::parse(blob).unwrap_or_else(|error| panic!("{name}: {error}")))
        .collect()
}

/// Our histogram in the official inspector's naming (`<Name>Node`).
fn node_counts(graph: &Graph) -> BTreeMap<String, u64> {
    graph
        .op_histogram()
        .into_iter()
        .map(|(name, count)| (format!("{name}Node"), count as u64))
        .collect()
}

fn json_counts(value: &serde_json::Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .expect("node counts are an object")
        .iter()
        .map(|(name, count)| (name.clone(), count.as_u64().expect("count")))
        .collect()
}

#[test]
fn every_fixture_payload_matches_the_official_node_counts() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("model.pte").is_file() && dir.join("meta.json").is_file())
        .collect();
    entries.sort();
    for dir in entries {
        let name = dir
            .file_name()
            .and_then(|name| name.to_str())
            .expect("utf-8 name")
            .to_owned();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).expect("meta"))
                .expect("meta.json is JSON");
        let graphs = load(&name);
        for graph in &graphs {
            assert_eq!(graph.version, 1, "{name}");
            assert!(graph.tensor_meta.iter().all(Option::is_some), "{name}");
        }
        let counts = &meta["mlx_node_counts"];
        if let Some(per_delegate) = counts.get("per_delegate").and_then(|list| list.as_array()) {
            let ours: Vec<_> = graphs.iter().map(node_counts).collect();
            let official: Vec<_> = per_delegate.iter().map(json_counts).collect();
            assert_eq!(ours, official, "{name}");
        } else if counts.is_object() {
            let mut total = BTreeMap::new();
            for graph in &graphs {
                for (node, count) in node_counts(graph) {
                    *total.entry(node).or_insert(0) += count;
                }
            }
            assert_eq!(total, json_counts(counts), "{name}");
        } else {
            continue;
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} fixtures had node counts");
}

#[test]
fn add_fixture_is_one_add_from_two_inputs_to_one_output() {
    let graphs = load("add");
    assert_eq!(graphs.len(), 1);
    let graph = &graphs[0];
    assert_eq!(graph.input_map.len(), 2);
    assert_eq!(graph.output_map.len(), 1);
    assert!(graph
        .input_map
        .iter()
        .chain(&graph.output_map)
        .all(|slot| slot.kind == SlotKind::Tensor));
    let main = &graph.chains[graph.main_chain];
    let [Op::Add { a, b, out }] = main.as_slice() else {
        panic!("expected one Add, got {main:?}");
    };
    assert_eq!(graph.tid_class(*a), Some(TidClass::Input));
    assert_eq!(graph.tid_class(*b), Some(TidClass::Input));
    assert_eq!(graph.tid_class(*out), Some(TidClass::Output));
    assert_eq!(Some(*out), graph.output_map[0].tid());
    // float32 [2, 3] everywhere.
    for slot in graph.input_map.iter().chain(&graph.output_map) {
        let meta = slot.tid().and_then(|tid| graph.meta(tid)).expect("meta");
        assert_eq!(meta.scalar_type, 6);
        assert_eq!(meta.static_shape(), Some(vec![2, 3]));
    }
}

#[test]
fn mutable_counter_writes_its_buffer_back() {
    let graph = &load("mutable_counter")[0];
    let [buffer] = graph.mutable_buffer_map.as_slice() else {
        panic!("one buffer expected: {:?}", graph.mutable_buffer_map);
    };
    let buffer = buffer.tid().expect("buffers are tensor slots");
    assert_eq!(graph.tid_class(buffer), Some(TidClass::MutableBuffer));
    // acc is [1, 4] float32.
    let meta = graph.meta(buffer).expect("buffer meta");
    assert_eq!(
        (meta.static_shape(), meta.scalar_type),
        (Some(vec![1, 4]), 6)
    );
    let main = &graph.chains[graph.main_chain];
    assert!(
        matches!(main.last(), Some(Op::IdCopy { out, .. }) if *out == buffer),
        "{main:?}"
    );
}

#[test]
fn dynamic_seq_input_has_a_bounded_dynamic_dim() {
    let graph = &load("dynamic_seq")[0];
    let input = graph.input_map[0].tid().expect("tensor input");
    let meta = graph.meta(input).expect("input meta");
    // Exported with seq = Dim(min=1, max=32) on axis 1 of [1, seq, 8].
    assert!(matches!(meta.shape[0], ShapeDim::Static(1)));
    assert!(
        matches!(meta.shape[1], ShapeDim::Dynamic { .. }),
        "{:?}",
        meta.shape
    );
    assert!(matches!(meta.shape[2], ShapeDim::Static(8)));
    assert_eq!(graph.output_map.len(), 2);
}

#[test]
fn q4_linear_uses_4_bit_groups_of_32() {
    let graph = &load("q4_linear")[0];
    let qmm = graph
        .chains
        .iter()
        .flatten()
        .find_map(|op| match op {
            Op::QuantizedMatmul {
                group_size, bits, ..
            } => Some((*group_size, *bits)),
            _ => None,
        })
        .expect("a QuantizedMatmul");
    assert_eq!(qmm, (32, 4));
}
