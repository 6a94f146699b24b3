//! Finds residual adds whose sum the very next op RMS-normalises (`Add` → `RMSNorm` of its output, with a
//! weight): twice per transformer layer. Analysis only: the executor may run such a pair as one kernel
//! (`exec::residual_norm`). Adjacent ops only, so it holds on any chain, before or after slot allocation.

use crate::ir::Op;

/// The main-chain indices of the adds that begin such a pair.
pub fn find(chain: &[Op]) -> Vec<usize> {
    chain
        .windows(2)
        .enumerate()
        .filter_map(|(at, pair)| match pair {
            [Op::Add { out, .. }, Op::RMSNorm {
                x, weight: Some(_), ..
            }] if x == out => Some(at),
            _ => None,
        })
        .collect()
}
