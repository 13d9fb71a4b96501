//! The network: layers, the model file, a CPU reference, and the GPU plan
//! that runs forward and backward passes.

pub mod cpu;
pub mod infer;
pub mod layer;
pub mod model;
pub mod ops;
pub mod plan;

pub use infer::{Classifier, Evaluation};
pub use layer::Layer;
pub use model::{Model, Tensor};
pub use plan::{GpuModel, Plan, PlanOptions};
