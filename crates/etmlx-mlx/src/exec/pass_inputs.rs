//! What the graph passes (`crate::passes`) need from the executor: the values of loaded constants, and the
//! per-execute check of the inputs a rewritten graph assumes consecutive.

use mlx::Array;

use super::state::{Layout, Location, Transient};
use crate::error::ExecError;
use crate::ir::{Graph, Tid};
use crate::passes::ConstantValues;

/// Constant values for the graph passes, read from the loaded arrays.
pub struct LoadedConstants<'a>(pub &'a [Array]);

impl ConstantValues for LoadedConstants<'_> {
    fn scalar(&self, tid: Tid) -> Option<f64> {
        let array = self.0.get(tid.0 as usize).filter(|a| a.size() == 1)?;
        array.item_f64().ok()
    }
}

/// Refuses a positions input that is not `p0, p0 + 1, ...`: the fused rope derives every position from
/// the first (see `passes::rope`).
pub fn check_consecutive(
    graph: &Graph,
    tid: Tid,
    transient: &Transient,
    layout: &Layout,
) -> Result<(), ExecError> {
    let Location::Transient(i) = layout.locate(tid)? else {
        return Ok(());
    };
    let Some(array) = transient.tensors.get(i).and_then(Option::as_ref) else {
        return Ok(());
    };
    // The host copy when there is one (a cast made on the device would wait for the device); otherwise the
    // input was copied from the host, so reading it back runs no graph.
    let read_back: Vec<i64>;
    let positions: &[i64] = match transient.facts.get(i).and_then(|f| f.host_ints.as_ref()) {
        Some(host) => &host.values,
        None => {
            read_back = match array.dtype() {
                mlx::Dtype::Int64 => array.to_vec::<i64>()?,
                mlx::Dtype::Int32 => array.to_vec::<i32>()?.into_iter().map(i64::from).collect(),
                other => {
                    return Err(ExecError::Other(format!(
                        "positions input {}: expected an integer tensor, got {other:?}",
                        tid.0
                    )))
                }
            };
            &read_back
        }
    };
    if let Some(k) = positions.windows(2).position(|pair| pair[1] != pair[0] + 1) {
        let name = graph.constant_name(tid).unwrap_or("positions");
        return Err(ExecError::Other(format!(
            "input '{name}' must hold consecutive positions (the graph was rewritten to use fused RoPE; \
             load with the MLXBackend option {}=false to pass arbitrary positions): position {} is {} after {}",
            crate::backend::option_keys::FUSE_ROPE,
            k + 1,
            positions[k + 1],
            positions[k]
        )));
    }
    Ok(())
}
