//! The autotuning cache: which GEMM / conv kernel configuration won on this adapter for each
//! shape class, as measured by `hebb tune`. Kept on disk as JSON (`hebb-tune/1`), one section
//! per adapter keyed by name, backend and driver, so a driver update invalidates its entries.
//!
//! Location: `HEBB_TUNE_CACHE` (`off` disables it), else `$XDG_CACHE_HOME/hebb/tune.json`,
//! else `$HOME/.cache/hebb/tune.json`. Without an entry the launchers use their per-device
//! defaults (`GemmTiles::for_adapter`, `GemmTiles::for_shape`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};
use crate::kernels::gemm::GemmTiles;

pub const FORMAT: &str = "hebb-tune/1";

/// The kernels the cache distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunedKernel {
    /// `kernels::gemm::gemm` (any of its variants).
    Gemm,
    /// conv.wgsl's implicit-GEMM forward U = P·Wᵀ.
    ConvForward,
    /// conv.wgsl's implicit-GEMM update ΔW = Gᵀ·P.
    ConvUpdate,
}

/// A shape class: the kernel, the operand transposes, and M, N, K rounded up to powers of two
/// (so one entry covers, say, every batch size from 33 to 64 rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShapeClass {
    pub kernel: TunedKernel,
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl ShapeClass {
    pub fn new(kernel: TunedKernel, trans: (bool, bool), m: usize, n: usize, k: usize) -> Self {
        Self {
            kernel,
            trans_a: trans.0,
            trans_b: trans.1,
            m: m.max(1).next_power_of_two(),
            n: n.max(1).next_power_of_two(),
            k: k.max(1).next_power_of_two(),
        }
    }

    pub fn label(&self) -> String {
        let op = |t: bool| if t { 'T' } else { 'N' };
        format!(
            "{:?} {}{} m<={} n<={} k<={}",
            self.kernel,
            op(self.trans_a),
            op(self.trans_b),
            self.m,
            self.n,
            self.k
        )
    }
}

/// One measured winner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TunedEntry {
    pub class: ShapeClass,
    /// The shape that was timed (M, N, K).
    pub shape: [usize; 3],
    pub tiles: GemmTiles,
    pub gflops: f64,
    /// The untuned default on the same shape, in the same run.
    pub default_tiles: GemmTiles,
    pub default_gflops: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AdapterSection {
    adapter: String,
    backend: String,
    driver: String,
    driver_info: String,
    entries: Vec<TunedEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TuneFile {
    format: String,
    adapters: BTreeMap<String, AdapterSection>,
}

/// The winners for the open adapter.
#[derive(Clone, Debug, Default)]
pub struct Tuning {
    entries: HashMap<ShapeClass, TunedEntry>,
}

impl Tuning {
    pub fn get(&self, class: &ShapeClass) -> Option<GemmTiles> {
        self.entries.get(class).map(|e| e.tiles)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, entry: TunedEntry) {
        self.entries.insert(entry.class, entry);
    }

    pub fn entries(&self) -> impl Iterator<Item = &TunedEntry> {
        self.entries.values()
    }
}

/// The section key of an adapter: name, backend and driver version.
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

/// The cache file, or None when `HEBB_TUNE_CACHE=off` or no home directory is known.
pub fn cache_path() -> Option<PathBuf> {
    match std::env::var("HEBB_TUNE_CACHE") {
        Ok(v) if v == "off" => return None,
        Ok(v) if !v.trim().is_empty() => return Some(PathBuf::from(v)),
        _ => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("hebb").join("tune.json"))
}

fn read(path: &Path) -> Result<Option<TuneFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(HebbError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let file: TuneFile = serde_json::from_str(&text).map_err(|e| HebbError::Format {
        path: path.to_path_buf(),
        message: format!("not a {FORMAT} tuning cache: {e}"),
    })?;
    if file.format != FORMAT {
        return Err(HebbError::Format {
            path: path.to_path_buf(),
            message: format!("format is {:?}, expected {FORMAT:?}", file.format),
        });
    }
    Ok(Some(file))
}

/// This adapter's winners from `path` (empty when the file or the section does not exist).
pub fn load(path: &Path, info: &wgpu::AdapterInfo) -> Result<Tuning> {
    let mut tuning = Tuning::default();
    if let Some(file) = read(path)?
        && let Some(section) = file.adapters.get(&adapter_key(info))
    {
        for e in &section.entries {
            tuning.insert(e.clone());
        }
    }
    Ok(tuning)
}

/// Writes `tuning` as this adapter's section of `path` (other adapters' sections are kept),
/// atomically: a temporary file in the same folder, then a rename.
pub fn save(path: &Path, info: &wgpu::AdapterInfo, tuning: &Tuning) -> Result<()> {
    let io = |e: std::io::Error| HebbError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    // An unreadable old cache is replaced, not merged.
    let mut file = read(path).ok().flatten().unwrap_or(TuneFile {
        format: FORMAT.into(),
        adapters: BTreeMap::new(),
    });
    let mut entries: Vec<TunedEntry> = tuning.entries().cloned().collect();
    entries.sort_by_key(|e| e.class);
    file.adapters.insert(
        adapter_key(info),
        AdapterSection {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            entries,
        },
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&file).map_err(|e| HebbError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
