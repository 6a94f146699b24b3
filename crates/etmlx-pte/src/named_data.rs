//! The named-data map a delegate sees: the `.pte`'s `named_data` merged with an optional `.ptd`.

use std::collections::HashMap;

use serde::Serialize;

use crate::bytes::SharedBytes;
use crate::error::{PteError, Result};
use crate::ptd::{Ptd, TensorLayout};
use crate::pte::Pte;

/// Which file a named blob came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum NamedDataSource {
    /// The program file.
    Pte,
    /// The external data file.
    Ptd,
}

/// One blob of a [`NamedDataMap`].
#[derive(Clone, Debug)]
pub struct NamedBlob {
    /// The key.
    pub key: String,
    /// Where it came from.
    pub source: NamedDataSource,
    /// The bytes (zero-copy; keeps its file alive).
    pub bytes: SharedBytes,
    /// Tensor layout, when the `.ptd` recorded one.
    pub layout: Option<TensorLayout>,
}

/// Named blobs of a `.pte` merged with those of an optional `.ptd`.
///
/// Keys keep file order, `.pte` keys first. Within one file the first entry of a repeated key
/// wins (ExecuTorch's own lookup does the same). A key present in **both** files is an error
/// ([`PteError::DuplicateNamedData`]), because silently preferring one would hide a mismatched
/// `.ptd`.
#[derive(Clone, Debug, Default)]
pub struct NamedDataMap {
    blobs: Vec<NamedBlob>,
    index: HashMap<String, usize>,
}

impl NamedDataMap {
    /// Merges the named data of `pte` and, when given, `ptd`.
    pub fn new(pte: &Pte, ptd: Option<&Ptd>) -> Result<Self> {
        let mut map = Self::default();
        for entry in &pte.program().named_data {
            if map.index.contains_key(&entry.key) {
                continue;
            }
            let bytes = SharedBytes::new(pte.backing(), entry.range, || {
                format!("named data {:?}", entry.key)
            })?;
            map.push(entry.key.clone(), NamedDataSource::Pte, bytes, None);
        }
        let pte_count = map.blobs.len();
        if let Some(ptd) = ptd {
            for entry in ptd.entries() {
                if let Some(&existing) = map.index.get(&entry.key) {
                    if existing < pte_count {
                        return Err(PteError::DuplicateNamedData {
                            key: entry.key.clone(),
                        });
                    }
                    continue;
                }
                let bytes = ptd.shared(entry.range)?;
                map.push(
                    entry.key.clone(),
                    NamedDataSource::Ptd,
                    bytes,
                    entry.layout.clone(),
                );
            }
        }
        Ok(map)
    }

    fn push(
        &mut self,
        key: String,
        source: NamedDataSource,
        bytes: SharedBytes,
        layout: Option<TensorLayout>,
    ) {
        self.index.insert(key.clone(), self.blobs.len());
        self.blobs.push(NamedBlob {
            key,
            source,
            bytes,
            layout,
        });
    }

    /// The blob stored under `key`.
    pub fn get(&self, key: &str) -> Option<&NamedBlob> {
        self.index.get(key).and_then(|&i| self.blobs.get(i))
    }

    /// The bytes stored under `key`.
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        self.get(key).map(|blob| blob.bytes.as_slice())
    }

    /// `true` when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// `true` when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// All blobs, `.pte` first, each file in its own order.
    pub fn iter(&self) -> impl Iterator<Item = &NamedBlob> {
        self.blobs.iter()
    }

    /// Total bytes over all keys (shared segments counted once per key).
    pub fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(|blob| blob.bytes.len() as u64).sum()
    }
}
