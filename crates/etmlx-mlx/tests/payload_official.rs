//! Field-by-field agreement with the official ExecuTorch reader. `payload_expected/*.json` holds,
//! for every fixture, what the official tooling (pte_inspector's generated field table and the
//! official FlatBuffer bindings) reads from each MLX delegate payload, written in the JSON shape
//! of our `ir::Graph` serialization by `payload_expected/make_expected.py`. Our decoded graph,
//! serialized, must be identical: every op, field, default, optional, slot and tensor meta.
//! `payload_expected/zoo/` adds an official export (`export_zoo.py`) that covers more node kinds
//! (convolutions, LayerNorm, Gelu, Pad, Cumsum, Where, ARange, Argmax, Var, Clip, Tril, ...).

use std::path::{Path, PathBuf};

use etmlx_mlx::ir::ALL_OP_NAMES;
use etmlx_mlx::payload;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The delegate blobs of a `.pte` in file order (each starts a 128-aligned segment with 4 zero
/// bytes and "MLX0").
fn mlx_blobs(pte: &[u8]) -> Vec<&[u8]> {
    (0..pte.len().saturating_sub(8))
        .step_by(128)
        .filter(|&start| pte[start..start + 4] == [0; 4] && &pte[start + 4..start + 8] == b"MLX0")
        .map(|start| &pte[start..])
        .collect()
}

#[test]
fn union_order_matches_the_official_inspector() {
    let official = read_json(&manifest_path("tests/payload_expected/union.json"));
    let ours: Vec<String> = ALL_OP_NAMES
        .iter()
        .map(|name| format!("{name}Node"))
        .collect();
    assert_eq!(serde_json::to_value(ours).expect("names"), official);
}

#[test]
fn decoded_fixtures_equal_the_official_reading() {
    let expected_dir = manifest_path("tests/payload_expected");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&expected_dir)
        .expect("payload_expected exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "json")
                && path.file_stem().is_some_and(|stem| stem != "union")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 13, "expected files: {files:?}");
    for file in files {
        let name = file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("name");
        // Repository fixtures, or extra exports kept next to their expectations (zoo/).
        let pte_path = [
            format!("../../tests/fixtures/{name}/model.pte"),
            format!("tests/payload_expected/{name}/model.pte"),
        ]
        .into_iter()
        .map(|relative| manifest_path(&relative))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no model.pte for {name}"));
        let pte =
            std::fs::read(&pte_path).unwrap_or_else(|e| panic!("{}: {e}", pte_path.display()));
        let ours: Vec<serde_json::Value> = mlx_blobs(&pte)
            .into_iter()
            .map(|blob| {
                let graph = payload::parse(blob).unwrap_or_else(|e| panic!("{name}: {e}"));
                serde_json::to_value(&graph).expect("graph serializes")
            })
            .collect();
        let official = read_json(&file);
        let official = official.as_array().expect("a list of delegates");
        assert_eq!(ours.len(), official.len(), "{name}: delegate count");
        for (index, (ours, official)) in ours.iter().zip(official).enumerate() {
            assert!(
                ours == official,
                "{name} delegate {index} differs:\nours:     {ours}\nofficial: {official}"
            );
        }
    }
}
