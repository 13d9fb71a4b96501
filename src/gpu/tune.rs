//! Kernel variants and the autotuner that picks one per adapter and shape.
//!
//! The heavy kernels (convolution forward and weight gradient, the matrix
//! products of linear layers) come in two [`Variant`]s: register blocking
//! without workgroup memory, which wins on CPU-like devices such as lavapipe,
//! and workgroup-memory tiling, which wins on discrete GPUs. With
//! [`KernelChoice::Auto`] the first plan that needs an operation of a given
//! shape times every candidate on the device and keeps the fastest; the
//! choice is remembered for the process and, when a cache file is set, on
//! disk per adapter, so later runs skip the timing and pick the same kernels
//! (and therefore produce the same bits).
//!
//! The same timing also picks between two formulations of one operation
//! ([`Gpu::choose_formulation`]: the convolution's input gradient as a
//! product and a gather or as a flipped convolution); a forced variant
//! also fixes the formulation to the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel};

/// How a heavy kernel computes its tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Each invocation keeps a 4 x 4 output tile in registers; no workgroup memory.
    Register,
    /// A workgroup stages operand blocks in workgroup memory between barriers.
    Tiled,
}

impl Variant {
    /// Every variant, in the order candidates are tried.
    pub const ALL: [Variant; 2] = [Variant::Register, Variant::Tiled];

    /// The name used in settings and reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Register => "register",
            Variant::Tiled => "tiled",
        }
    }
}

/// Which variant the engine uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelChoice {
    /// Time the candidates on first use and keep the fastest.
    #[default]
    Auto,
    /// Always this variant.
    Force(Variant),
}

impl std::str::FromStr for KernelChoice {
    type Err = Error;

    /// Parses `auto`, `register` or `tiled`.
    fn from_str(s: &str) -> Result<KernelChoice> {
        match s {
            "auto" => Ok(KernelChoice::Auto),
            "register" => Ok(KernelChoice::Force(Variant::Register)),
            "tiled" => Ok(KernelChoice::Force(Variant::Tiled)),
            other => Err(Error::param("kernels", other, "auto, register or tiled")),
        }
    }
}

/// The environment variable that overrides [`KernelChoice`] (`auto`, `register`, `tiled`).
pub const KERNELS_ENV: &str = "ADVGPU_KERNELS";
/// The environment variable naming the autotune cache file.
pub const CACHE_ENV: &str = "ADVGPU_TUNE_CACHE";

/// The default cache file: `$ADVGPU_TUNE_CACHE`, else `advgpu/kernels.json` in
/// the user's cache folder (`~/.cache` on Linux), else none.
pub fn default_cache_path() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::cache_dir().map(|d| d.join("advgpu").join("kernels.json")),
    }
}

/// One way to compute an operation: its dispatches, bound to the real
/// buffers, and the bytes of scratch buffers they use.
pub struct Candidate {
    /// The variant the dispatches implement.
    pub variant: Variant,
    /// The dispatches, in order.
    pub kernels: Vec<Kernel>,
    /// Bytes of the scratch buffers only these dispatches use.
    pub scratch_bytes: u64,
}

/// One decision, as reported by [`Gpu::tuning`].
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// The operation and its shape, e.g. `conv_forward n256 c32x26x26 ...`.
    pub op: String,
    /// The choice in use: a [`Variant`]'s name (`register`, `tiled`), or
    /// for a formulation decision the formulation's (`col2im`, `flip`).
    pub variant: String,
    /// Seconds per run of each candidate, where this process timed them.
    pub timings: Vec<(String, f64)>,
    /// Whether the choice came from the cache file (or was forced).
    pub cached: bool,
}

/// The cache file: per adapter, per operation, the name of the choice.
type CacheFile = BTreeMap<String, BTreeMap<String, String>>;

/// The autotuner of one [`Gpu`].
pub(crate) struct Tuner {
    choice: KernelChoice,
    path: Option<PathBuf>,
    adapter: String,
    decisions: Mutex<BTreeMap<String, Decision>>,
}

impl Tuner {
    pub(crate) fn new(
        choice: KernelChoice,
        path: Option<PathBuf>,
        info: &wgpu::AdapterInfo,
    ) -> Tuner {
        // The crate version is part of the key: kernels change between versions.
        let adapter = format!(
            "{} | {:?} | {} {} | advgpu {}",
            info.name,
            info.backend,
            info.driver,
            info.driver_info,
            env!("CARGO_PKG_VERSION")
        );
        let decisions = Mutex::new(BTreeMap::new());
        Tuner {
            choice,
            path,
            adapter,
            decisions,
        }
    }

    pub(crate) fn choice(&self) -> KernelChoice {
        self.choice
    }

    fn remembered(&self, op: &str) -> Option<String> {
        let path = self.path.as_ref()?;
        read_cache(path).get(&self.adapter)?.get(op).cloned()
    }

    /// Writes one decision into the cache file. Failing to write only costs
    /// a re-tune next time, so it is logged, not returned.
    fn remember(&self, op: &str, choice: &str) {
        let Some(path) = &self.path else { return };
        let mut cache = read_cache(path);
        cache
            .entry(self.adapter.clone())
            .or_default()
            .insert(op.to_string(), choice.to_string());
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = serde_json::to_string_pretty(&cache).map_err(std::io::Error::other)?;
            // Write and rename, so that a concurrent reader never sees half a file.
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            log::warn!("could not write the kernel cache {}: {e}", path.display());
        }
    }
}

/// The cache file's contents; a missing or unreadable file is an empty cache.
fn read_cache(path: &Path) -> CacheFile {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            log::warn!("ignoring the kernel cache {}: {e}", path.display());
            CacheFile::new()
        }),
        Err(_) => CacheFile::new(),
    }
}

/// Extra timed runs per candidate when the first timings are within
/// [`CLOSE_CALL`] of each other.
const EXTRA_RUNS: usize = 2;
/// Timings whose ratio is below this are a close call and get measured again.
const CLOSE_CALL: f64 = 1.25;

impl Gpu {
    /// Picks one of `candidates` (each a variant and the dispatches that
    /// compute `op` with it, bound to the real buffers) as the settings say:
    /// forced, remembered, or timed now. Timing runs the dispatches, which
    /// overwrite their outputs; plans call this while they are being built.
    pub fn choose(&self, op: &str, candidates: Vec<Candidate>) -> Result<Candidate> {
        let forced = match self.tuner.choice {
            KernelChoice::Force(v) => Some(v.name()),
            KernelChoice::Auto => None,
        };
        let named = candidates
            .into_iter()
            .map(|c| (c.variant.name(), c))
            .collect();
        self.pick(op, named, forced)
    }

    /// Picks one of several formulations of `op` (each named, each already
    /// built with the variants its own kernels chose): remembered, or timed
    /// now. With a forced variant nothing is timed and the first candidate,
    /// the default, is used, so that forced runs are reproducible across
    /// batch sizes.
    pub fn choose_formulation(
        &self,
        op: &str,
        candidates: Vec<(&'static str, Candidate)>,
    ) -> Result<Candidate> {
        let forced = match self.tuner.choice {
            KernelChoice::Force(_) => candidates.first().map(|(name, _)| *name),
            KernelChoice::Auto => None,
        };
        self.pick(op, candidates, forced)
    }

    /// The choice among named candidates: `forced`, made before in this
    /// process, read from the cache file, or timed now.
    fn pick(
        &self,
        op: &str,
        candidates: Vec<(&'static str, Candidate)>,
        forced: Option<&str>,
    ) -> Result<Candidate> {
        let tuner = &self.tuner;
        let take = |name: &str, mut candidates: Vec<(&'static str, Candidate)>| {
            let at = candidates.iter().position(|(n, _)| *n == name);
            at.map(|i| candidates.swap_remove(i).1).ok_or_else(|| {
                Error::gpu("choosing a kernel", format!("{op} has no {name} candidate"))
            })
        };
        if let Some(name) = forced {
            return take(name, candidates);
        }
        if candidates.len() == 1 {
            return Ok(candidates.into_iter().next().expect("one candidate").1);
        }
        if let Some(d) = lock(&tuner.decisions).get(op) {
            return take(&d.variant, candidates);
        }
        if let Some(name) = tuner.remembered(op) {
            // A name this build does not offer (an edited cache file) is timed again.
            if candidates.iter().any(|(n, _)| *n == name) {
                log::debug!("kernel {op}: {name} (from the cache file)");
                let decision = Decision {
                    op: op.to_string(),
                    variant: name.clone(),
                    timings: Vec::new(),
                    cached: true,
                };
                lock(&tuner.decisions).insert(op.to_string(), decision);
                return take(&name, candidates);
            }
        }

        // One warm-up run (first dispatches may compile) and one timed run
        // each; when the two are close, the best of a few more decides.
        let mut timings = Vec::new();
        for (name, c) in &candidates {
            self.time_kernels(&c.kernels)?;
            timings.push((name.to_string(), self.time_kernels(&c.kernels)?));
        }
        let fastest = timings.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        for ((_, c), t) in candidates.iter().zip(timings.iter_mut()) {
            if t.1 < CLOSE_CALL * fastest {
                for _ in 0..EXTRA_RUNS {
                    t.1 = t.1.min(self.time_kernels(&c.kernels)?);
                }
            }
        }
        let (name, _) = timings
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
            .expect("at least one candidate");
        log::debug!("kernel {op}: {name} ({timings:?})");
        tuner.remember(op, &name);
        let decision = Decision {
            op: op.to_string(),
            variant: name.clone(),
            timings,
            cached: false,
        };
        lock(&tuner.decisions).insert(op.to_string(), decision);
        take(&name, candidates)
    }

    /// Seconds for one submission of `kernels`, waited for.
    pub fn time_kernels(&self, kernels: &[Kernel]) -> Result<f64> {
        let start = Instant::now();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            kernels.iter().for_each(|k| k.record(&mut pass));
        }
        self.queue.submit([encoder.finish()]);
        self.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// Every kernel decision this device has made so far.
    pub fn tuning(&self) -> Vec<Decision> {
        lock(&self.tuner.decisions).values().cloned().collect()
    }

    /// The kernel setting this device was opened with.
    pub fn kernel_choice(&self) -> KernelChoice {
        self.tuner.choice()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
