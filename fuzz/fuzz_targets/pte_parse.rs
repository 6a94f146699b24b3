//! Feeds arbitrary bytes to the `.pte` and `.ptd` readers and walks everything they expose.
//! Any panic, hang or out-of-memory is a bug: malformed input must only ever produce `Err`.
//!
//! Run with `cargo +nightly fuzz run pte_parse` from this directory; seed the corpus with the
//! fixtures, e.g. `cp ../tests/fixtures/*/model.pte corpus/pte_parse/`.

#![no_main]

use etmlx_pte::{NamedDataMap, Pte, Ptd, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ptd) = Ptd::from_bytes(data.to_vec()) {
        for entry in ptd.entries() {
            let _ = ptd.get(&entry.key);
        }
    }
    let Ok(pte) = Pte::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = pte.summary();
    let _ = NamedDataMap::new(&pte, None);
    for plan in &pte.program().plans {
        let _ = plan.is_constant_getter();
        for value in &plan.values {
            if let Value::Tensor(tensor) = value {
                let _ = (tensor.numel(), tensor.nbytes(), tensor.strides(), tensor.kind());
                let _ = pte.constant_bytes(tensor);
                let _ = pte.mutable_initial_bytes(tensor);
            }
        }
        for delegate in &plan.delegates {
            // Every delegate reference was resolved at load, so this must succeed.
            assert!(pte.delegate_blob(delegate).is_ok());
        }
    }
    for entry in &pte.program().named_data {
        assert!(pte.named_data(&entry.key).is_some());
    }
});
