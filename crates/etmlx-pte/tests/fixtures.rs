//! Official-exporter fixtures (`tests/fixtures/*/model.pte`, written by ExecuTorch 1.5.1 with the
//! MLX partitioner). The expected facts come from each fixture's `meta.json`, which the Python
//! export script wrote from ExecuTorch's own view of the program, not from this crate.

use std::path::{Path, PathBuf};

use etmlx_pte::{NamedDataMap, Pte, ShapeDynamism, Value};
use serde_json::Value as Json;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every fixture directory holding both a `model.pte` and a `meta.json` with a `program` section.
fn fixtures() -> Vec<(String, PathBuf, Json)> {
    let Ok(entries) = std::fs::read_dir(fixtures_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf, Json)> = entries
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let pte = dir.join("model.pte");
            let meta: Json =
                serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).ok()?).ok()?;
            (pte.is_file() && meta.get("program").is_some()).then(|| {
                (
                    dir.file_name().unwrap().to_string_lossy().into_owned(),
                    pte,
                    meta,
                )
            })
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn dtype_matches(meta_name: &str, dtype: etmlx_pte::ScalarType) -> bool {
    // meta.json uses the schema's enum names (FLOAT, LONG, BFLOAT16, ...).
    meta_name.replace('_', "") == dtype.name().replace('_', "").to_uppercase()
}

fn dynamism_name(dynamism: ShapeDynamism) -> &'static str {
    match dynamism {
        ShapeDynamism::Static => "STATIC",
        ShapeDynamism::DynamicBound => "DYNAMIC_BOUND",
        ShapeDynamism::DynamicUnbound => "DYNAMIC_UNBOUND",
    }
}

fn check_io(fixture: &str, method: &str, what: &str, value: &Value, expected: &Json) {
    let ctx = format!("{fixture}/{method} {what}");
    if let Some(dtype) = expected.get("tensor") {
        let tensor = value
            .as_tensor()
            .unwrap_or_else(|| panic!("{ctx}: expected a tensor, got {value:?}"));
        assert!(
            dtype_matches(dtype.as_str().unwrap(), tensor.scalar_type),
            "{ctx}: dtype {dtype} vs {}",
            tensor.scalar_type
        );
        let sizes: Vec<i32> = serde_json::from_value(expected["sizes"].clone()).unwrap();
        assert_eq!(tensor.sizes, sizes, "{ctx}: sizes");
        assert_eq!(
            dynamism_name(tensor.dynamism),
            expected["dynamism"],
            "{ctx}: dynamism"
        );
    } else if let Some(int) = expected.get("Int") {
        assert_eq!(value, &Value::Int(int.as_i64().unwrap()), "{ctx}");
    } else if let Some(double) = expected.get("Double") {
        assert_eq!(value, &Value::Double(double.as_f64().unwrap()), "{ctx}");
    } else if let Some(boolean) = expected.get("Bool") {
        assert_eq!(value, &Value::Bool(boolean.as_bool().unwrap()), "{ctx}");
    } else {
        panic!("{ctx}: meta.json entry {expected} not understood by this test");
    }
}

#[test]
fn official_fixtures_match_their_meta() {
    let fixtures = fixtures();
    if fixtures.is_empty() {
        eprintln!("no fixtures under {}; skipping", fixtures_dir().display());
        return;
    }
    for (name, path, meta) in &fixtures {
        let pte = Pte::open(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(size) = meta.get("pte_bytes").and_then(Json::as_u64) {
            assert_eq!(pte.file_len(), size, "{name}: file size");
        }
        // The exporter writes an eh00 header only when the file has segments.
        match pte.header() {
            Some(header) => assert_eq!(header.length, 32, "{name}: header length"),
            // Without one, only the always-emitted (here empty) constant segment may be listed.
            None => assert!(
                pte.program().segments.iter().all(|s| s.is_empty()),
                "{name}: non-empty segments need a header: {:?}",
                pte.program().segments
            ),
        }

        let methods = meta["program"].as_object().unwrap();
        let mut names: Vec<&str> = pte.program().method_names().collect();
        names.sort_unstable();
        let mut expected_names: Vec<&str> = methods.keys().map(String::as_str).collect();
        expected_names.sort_unstable();
        assert_eq!(names, expected_names, "{name}: method names");

        for (method, expected) in methods {
            let plan = pte.plan(method).unwrap();
            assert_eq!(
                plan.inputs.len() as u64,
                expected["n_inputs"].as_u64().unwrap(),
                "{name}/{method}"
            );
            assert_eq!(
                plan.outputs.len() as u64,
                expected["n_outputs"].as_u64().unwrap(),
                "{name}/{method}"
            );
            for (i, (value, exp)) in plan
                .input_values()
                .zip(expected["inputs"].as_array().unwrap())
                .enumerate()
            {
                check_io(name, method, &format!("input {i}"), value, exp);
            }
            for (i, (value, exp)) in plan
                .output_values()
                .zip(expected["outputs"].as_array().unwrap())
                .enumerate()
            {
                check_io(name, method, &format!("output {i}"), value, exp);
            }
            let operators: Vec<String> = plan
                .operators
                .iter()
                .map(|op| op.qualified_name())
                .collect();
            let expected_ops: Vec<String> =
                serde_json::from_value(expected["operators"].clone()).unwrap();
            assert_eq!(operators, expected_ops, "{name}/{method}: operators");
            let delegates: Vec<&str> = plan.delegates.iter().map(|d| d.id.as_str()).collect();
            let expected_delegates: Vec<String> =
                serde_json::from_value(expected["delegates"].clone()).unwrap();
            assert_eq!(delegates, expected_delegates, "{name}/{method}: delegates");

            let summary = etmlx_pte::MethodSummary::of(plan);
            let kinds: std::collections::BTreeMap<String, usize> =
                serde_json::from_value(expected["instruction_kinds"].clone()).unwrap();
            assert_eq!(
                summary.instruction_kinds, kinds,
                "{name}/{method}: instruction kinds"
            );
            assert_eq!(
                plan.is_constant_getter(),
                plan.inputs.is_empty() && kinds.is_empty()
            );

            for delegate in &plan.delegates {
                let blob = pte.delegate_blob(delegate).unwrap();
                // The MLX payload wrapper puts its magic at bytes 4..8.
                assert_eq!(
                    blob.get(4..8),
                    Some(b"MLX0".as_slice()),
                    "{name}/{method}: MLX payload magic"
                );
            }
            for value in &plan.values {
                if let Some(tensor) = value.as_tensor() {
                    if tensor.kind() == etmlx_pte::TensorKind::Constant {
                        assert_eq!(
                            pte.constant_bytes(tensor).unwrap().len(),
                            tensor.nbytes().unwrap()
                        );
                    }
                }
            }
        }

        // MLX constants live in named data, every key resolvable through the merged map.
        let map = NamedDataMap::new(&pte, None).unwrap();
        assert_eq!(
            map.len(),
            pte.program().named_data.len(),
            "{name}: no duplicate keys"
        );
        if let Some(per_delegate) = meta
            .pointer("/mlx_node_counts/per_delegate")
            .and_then(Json::as_array)
        {
            let delegate_count: usize = pte.program().plans.iter().map(|p| p.delegates.len()).sum();
            assert_eq!(
                delegate_count,
                per_delegate.len(),
                "{name}: delegates vs mlx_node_counts"
            );
        }
    }
}

#[test]
fn add_fixture_facts() {
    let path = fixtures_dir().join("add/model.pte");
    if !path.is_file() {
        eprintln!("{} missing; skipping", path.display());
        return;
    }
    let pte = Pte::open(&path).unwrap();
    let plan = pte.plan("forward").unwrap();
    assert_eq!(plan.delegates.len(), 1);
    assert_eq!(plan.delegates[0].id, "MLXBackend");
    assert_eq!(
        plan.delegates[0].blob.location,
        etmlx_pte::DataLocation::Segment
    );
    assert!(
        plan.delegates[0].compile_specs.is_empty(),
        "MLX lowering emits no compile specs"
    );
    assert_eq!(plan.inputs.len(), 2);
    // The constant segment is always emitted first, then the delegate blob.
    let program = pte.program();
    assert_eq!(
        program.constant_segment.as_ref().map(|c| c.segment_index),
        Some(0)
    );
    assert_eq!(plan.delegates[0].blob.index, 1);
    // Segments start at multiples of the default 128-byte segment alignment.
    for segment in &program.segments {
        assert_eq!(segment.offset % 128, 0);
    }
}
