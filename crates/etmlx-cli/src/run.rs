//! `etmlx run`: one method on tensors from `.npy` / `.bin` files, outputs to `.npy` / `.bin`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use etmlx_runtime::io::{bin, npy};
use etmlx_runtime::{EValue, HostTensor, HostValue, Method, ScalarType};

/// Reads every tensor of the input files, in order (`.npy`: one tensor; `.bin`: a list).
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<HostTensor>> {
    let mut tensors = Vec::new();
    for p in paths {
        let is_npy = p.extension().is_some_and(|e| e == "npy");
        let read = if is_npy {
            std::fs::read(p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(vec![npy::parse(&b)?]))
        } else {
            bin::read_file(p).map_err(anyhow::Error::from)
        };
        tensors.extend(read.with_context(|| format!("reading input {}", p.display()))?);
    }
    Ok(tensors)
}

/// Binds `tensors` to the method's inputs. Float data given for a float input of another width
/// (e.g. float32 `.npy` for a bfloat16 input) is converted; any other mismatch is an error.
pub fn bind_inputs(method: &mut Method, tensors: Vec<HostTensor>) -> Result<()> {
    if tensors.len() != method.num_inputs() {
        bail!(
            "{} input tensor(s) given, method '{}' takes {}",
            tensors.len(),
            method.name(),
            method.num_inputs()
        );
    }
    for (i, t) in tensors.into_iter().enumerate() {
        let declared = match method.input_meta(i)? {
            EValue::Tensor(d) => d.dtype(),
            other => bail!(
                "input {i} of '{}' is a {}, not a tensor",
                method.name(),
                other.kind()
            ),
        };
        let t = if t.dtype != declared && is_float(t.dtype) && is_float(declared) {
            crate::convert_tensor(&t, declared)?
        } else {
            t
        };
        method.set_input(i, &HostValue::Tensor(t))?;
    }
    Ok(())
}

fn is_float(t: ScalarType) -> bool {
    matches!(
        t,
        ScalarType::Float | ScalarType::Double | ScalarType::Half | ScalarType::BFloat16
    )
}

/// Writes outputs: `.bin` takes them all; `.npy` takes exactly one (bfloat16 is written as
/// float32, which NumPy can hold).
pub fn write_outputs(path: &Path, outputs: &[HostValue]) -> Result<()> {
    let tensors: Vec<HostTensor> = outputs
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            HostValue::Tensor(t) => Ok(t.clone()),
            other => bail!("output {i} is not a tensor ({other:?}); use --json to see it"),
        })
        .collect::<Result<_>>()?;
    if path.extension().is_some_and(|e| e == "npy") {
        let [t] = tensors.as_slice() else {
            bail!(
                "{} has {} outputs; a .npy file holds one (use a .bin file)",
                path.display(),
                tensors.len()
            )
        };
        let t = if t.dtype == ScalarType::BFloat16 {
            crate::convert_tensor(t, ScalarType::Float)?
        } else {
            t.clone()
        };
        std::fs::write(path, npy::serialize(&t)?)
            .with_context(|| format!("writing {}", path.display()))?;
    } else {
        bin::write_file(path, &tensors).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
