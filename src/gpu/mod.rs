//! The GPU side: adapter and device, tensors on buffers, kernels and readback.
//!
//! Everything here is independent of neural networks and attacks: it knows
//! how to allocate a buffer within the device's limits, compile a shader from
//! `shaders/`, and prepare a dispatch.

mod context;
pub mod kernels;
mod tensor;
mod timestamps;
pub mod tune;

pub use context::{list_adapters, Gpu, GpuOptions};
pub use kernels::{record_all, shader_source, Kernel, SHADERS, WORKGROUP};
pub use tensor::{checked_len, GpuTensor};
pub use timestamps::Timestamps;
pub use tune::{Candidate, KernelChoice, Variant};
