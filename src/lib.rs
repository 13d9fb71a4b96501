//! advgpu: adversarial attacks, patches and saliency for small CNNs, computed
//! by WGSL compute shaders on any GPU that wgpu reaches (Vulkan, Metal, DX12,
//! WebGPU).
//!
//! The data flows one way: an image becomes a tensor on the GPU
//! ([`gpu::GpuTensor`]), the model runs forward and back to its input
//! ([`nn::Plan`]), and an attack step turns that gradient into a new image.
//!
//! ```no_run
//! use advgpu::{data, gpu::{Gpu, GpuOptions}, nn::{GpuModel, Plan, PlanOptions}};
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let model = data::bundled_model()?;
//! let digits = data::Digits::bundled()?.held_out();
//! let gpu_model = GpuModel::new(&gpu, &model)?;
//! let plan = Plan::new(&gpu, &gpu_model, 4, PlanOptions { input_grad: true, ..Default::default() })?;
//! plan.write_batch(&gpu, &digits.images[..4 * 784], &digits.labels_u32()[..4])?;
//! plan.run(&gpu)?;
//! let logits: Vec<f32> = gpu.read_blocking(plan.logits())?;
//! assert_eq!(logits.len(), 4 * 10);
//! # Ok::<(), advgpu::Error>(())
//! ```

pub mod attack;
pub mod data;
pub mod error;
pub mod explain;
pub mod gpu;
pub mod nn;
pub mod report;
pub mod train;

pub use error::{Error, Result};
