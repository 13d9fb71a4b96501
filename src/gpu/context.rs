//! Choosing an adapter and owning the device.
//!
//! [`Gpu`] is the handle every other part of the crate takes: the device, its
//! queue, what the adapter is, and the cache of compiled kernels. It is built
//! either by picking an adapter ([`Gpu::new`]) or from an application's own
//! device and queue ([`Gpu::from_device`]), so that an app that already renders
//! with wgpu can run attacks on the same GPU without a second device.

use std::sync::Arc;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::gpu::kernels::KernelCache;
use crate::gpu::tune::{default_cache_path, KernelChoice, Tuner, KERNELS_ENV};

/// How to pick an adapter and its kernels.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// A case-insensitive substring of the adapter's name; `None` takes the
    /// adapter wgpu ranks best (high performance first).
    pub adapter: Option<String>,
    /// Which kernel variants to use (see [`crate::gpu::tune`]).
    pub kernels: KernelChoice,
    /// Where autotune decisions are kept between runs; `None` keeps them for
    /// this process only.
    pub tune_cache: Option<PathBuf>,
}

impl Default for GpuOptions {
    /// The best adapter, autotuned kernels, decisions kept in the default
    /// cache file ([`default_cache_path`]).
    fn default() -> Self {
        GpuOptions {
            adapter: None,
            kernels: KernelChoice::Auto,
            tune_cache: default_cache_path(),
        }
    }
}

impl GpuOptions {
    /// The defaults with `ADVGPU_KERNELS` applied, or an error naming a bad value.
    pub fn from_env() -> Result<GpuOptions> {
        let mut options = GpuOptions::default();
        if let Ok(text) = std::env::var(KERNELS_ENV) {
            options.kernels = text.parse()?;
        }
        Ok(options)
    }
}

/// A device and queue, with what the library needs to know about them.
///
/// Cloning is cheap: the device, queue and kernel cache are shared.
#[derive(Clone)]
pub struct Gpu {
    /// The logical device all buffers and pipelines are created on.
    pub device: wgpu::Device,
    /// The queue all work is submitted to.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with; buffer sizes are checked against these.
    pub limits: wgpu::Limits,
    pub(crate) kernels: Arc<KernelCache>,
    pub(crate) tuner: Arc<Tuner>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

/// The instance, with backends taken from `WGPU_BACKEND` when it is set.
fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu can see, on the backends `WGPU_BACKEND` allows.
pub async fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    instance()
        .enumerate_adapters(backends)
        .await
        .iter()
        .map(|a| a.get_info())
        .collect()
}

impl Gpu {
    /// Picks an adapter as `options` say and creates a device on it.
    ///
    /// The device is requested with the adapter's own limits, so that large
    /// batches can use all the buffer space the hardware offers.
    pub async fn new(options: &GpuOptions) -> Result<Gpu> {
        let instance = instance();
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let adapters = instance.enumerate_adapters(backends).await;
        let available: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();

        // An explicit name wins; otherwise wgpu's own ranking (discrete before
        // integrated before software) decides.
        let adapter = match &options.adapter {
            Some(wanted) => {
                let needle = wanted.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&needle))
                    .ok_or_else(|| Error::NoAdapter {
                        wanted: Some(wanted.clone()),
                        available: available.clone(),
                    })?
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                    apply_limit_buckets: false,
                })
                .await
                .map_err(|_| Error::NoAdapter {
                    wanted: None,
                    available,
                })?,
        };
        let info = adapter.get_info();
        log::info!(
            "adapter: {} ({:?}, driver {} {})",
            info.name,
            info.backend,
            info.driver,
            info.driver_info
        );

        let limits = adapter.limits();
        // Timestamps only serve per-layer timing in `bench`; take them where offered.
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("advgpu"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|source| Error::RequestDevice {
                adapter: info.name.clone(),
                source,
            })?;
        Ok(Gpu::from_device(device, queue, info, limits)
            .with_kernels(options.kernels, options.tune_cache.clone()))
    }

    /// Blocking form of [`Gpu::new`], for the command line and tests.
    pub fn new_blocking(options: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Gpu::new(options))
    }

    /// Wraps a device and queue that an application already owns.
    ///
    /// `limits` should be the limits the device was created with
    /// (`device.limits()` gives them). Kernels are autotuned, with decisions
    /// kept for this process only; [`Gpu::with_kernels`] changes that.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
    ) -> Gpu {
        let tuner = Arc::new(Tuner::new(KernelChoice::Auto, None, &info));
        Gpu {
            device,
            queue,
            info,
            limits,
            kernels: Arc::new(KernelCache::default()),
            tuner,
        }
    }

    /// The same device with another kernel setting and cache file. Plans
    /// built afterwards use it; the compiled pipelines stay shared.
    pub fn with_kernels(self, choice: KernelChoice, tune_cache: Option<PathBuf>) -> Gpu {
        let tuner = Arc::new(Tuner::new(choice, tune_cache, &self.info));
        Gpu { tuner, ..self }
    }

    /// The largest buffer, in bytes, a single storage binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Waits until all submitted work has finished.
    ///
    /// On the web this returns at once; there, use the async readbacks instead.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| Error::gpu("waiting for the queue", e))
    }
}
