//! advgpu: adversarial attacks, patches and saliency for small CNNs, computed
//! by WGSL compute shaders on any GPU that wgpu reaches (Vulkan, Metal, DX12,
//! WebGPU).
//!
//! The data flows one way: an image becomes a tensor on the GPU
//! ([`gpu::GpuTensor`]), the model runs forward and back to its input
//! ([`nn::Plan`]), and an attack step turns that gradient into a new image
//! ([`attack`]). The whole attack loop is recorded into command buffers; the
//! host reads back only results. `docs/ARCHITECTURE.md` shows where each part
//! lives.
//!
//! # Attack a batch
//!
//! ```
//! use advgpu::attack::{self, Options, Pgd};
//! use advgpu::data::{bundled_model, Digits};
//! use advgpu::gpu::{Gpu, GpuOptions};
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let model = bundled_model()?;
//! let digits = Digits::bundled()?.held_out().slice(0..8);
//! let pgd = Pgd { eps: 0.3, alpha: 0.01, steps: 40, restarts: 1 };
//! let out = attack::run(&gpu, &model, &pgd, &digits.images, &digits.labels_u32(), &Options::default(), |_| {})?;
//!
//! let fooled = out.success.iter().filter(|s| **s).count();
//! println!("{fooled} of 8 digits misclassified");
//! // Every adversarial pixel stays within eps of its clean value.
//! assert!(out.images.iter().zip(&digits.images).all(|(a, c)| (a - c).abs() <= 0.3 + 1e-6));
//! # Ok::<(), advgpu::Error>(())
//! ```
//!
//! # Forward and backward on your own batch
//!
//! ```
//! use advgpu::{data, gpu::{Gpu, GpuOptions}, nn::{GpuModel, Plan, PlanOptions}};
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let model = data::bundled_model()?;
//! let digits = data::Digits::bundled()?.held_out();
//! let gpu_model = GpuModel::new(&gpu, &model)?;
//! let options = PlanOptions { input_grad: true, ..Default::default() };
//! let plan = Plan::new(&gpu, &gpu_model, 4, options)?;
//! plan.write_batch(&gpu, &digits.images[..4 * 784], &digits.labels_u32()[..4])?;
//! plan.run(&gpu)?;
//! let logits: Vec<f32> = gpu.read_blocking(plan.logits())?;
//! let grad: Vec<f32> = gpu.read_blocking(plan.grad_input())?;
//! assert_eq!((logits.len(), grad.len()), (4 * 10, 4 * 784));
//! # Ok::<(), advgpu::Error>(())
//! ```
//!
//! An app that already renders with wgpu hands in its own device and queue
//! with [`gpu::Gpu::from_device`] (see [`attack`] for an example that keeps
//! the adversarial batch on the GPU).

pub mod attack;
pub mod bench;
pub mod data;
pub mod error;
pub mod explain;
pub mod gpu;
pub mod nn;
pub mod report;
pub mod train;

pub use error::{Error, Result};
/// The wgpu version advgpu is built against, for apps that share their device.
pub use wgpu;
