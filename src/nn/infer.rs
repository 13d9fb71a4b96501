//! Batched inference: class probabilities and accuracy on any number of samples.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{GpuModel, Model, Plan, PlanOptions};

/// A model ready to classify, with a forward-only plan of a fixed batch size.
pub struct Classifier {
    gpu: Gpu,
    model: GpuModel,
    plan: Plan,
}

/// Accuracy of a model on a labelled set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    /// Share of samples whose arg-max class equals the label.
    pub accuracy: f64,
    /// Number of samples.
    pub n: usize,
    /// Number classified correctly.
    pub correct: usize,
}

impl Evaluation {
    /// Accuracy of predicted classes against labels (equal lengths).
    pub fn of(pred: &[usize], labels: &[u8]) -> Result<Evaluation> {
        if pred.len() != labels.len() {
            return Err(Error::Shape {
                what: "labels".into(),
                expected: format!("{} labels, one per sample", pred.len()),
                got: format!("{}", labels.len()),
            });
        }
        let correct = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == usize::from(**l))
            .count();
        Ok(Evaluation {
            accuracy: correct as f64 / labels.len().max(1) as f64,
            n: labels.len(),
            correct,
        })
    }
}

impl Classifier {
    /// Uploads `model` and plans batches of `batch` samples.
    pub fn new(gpu: &Gpu, model: &Model, batch: usize) -> Result<Classifier> {
        let gm = GpuModel::new(gpu, model)?;
        let plan = Plan::new(gpu, &gm, batch, PlanOptions::default())?;
        Ok(Classifier {
            gpu: gpu.clone(),
            model: gm,
            plan,
        })
    }

    /// Softmax probabilities `[n, K]` for `x`, `n` samples of the model's input shape.
    pub fn probabilities(&self, x: &[f32]) -> Result<Vec<f32>> {
        let per = self.model.model.input_len();
        if per == 0 || !x.len().is_multiple_of(per) {
            return Err(Error::Shape {
                what: "classifier input".into(),
                expected: format!(
                    "a multiple of {per} values ({:?} per sample)",
                    self.model.model.input_shape
                ),
                got: format!("{} values", x.len()),
            });
        }
        let n = x.len() / per;
        let k = self.plan.classes();
        let b = self.plan.batch;
        let mut out = Vec::with_capacity(n * k);
        let mut chunk = vec![0f32; b * per];
        for start in (0..n).step_by(b) {
            let m = (n - start).min(b);
            chunk[..m * per].copy_from_slice(&x[start * per..(start + m) * per]);
            chunk[m * per..].fill(0.0);
            self.gpu.write(self.plan.input(), &chunk)?;
            self.plan.run_forward(&self.gpu)?;
            let logits: Vec<f32> = self.gpu.read_blocking(self.plan.logits())?;
            for row in logits.chunks_exact(k).take(m) {
                out.extend(softmax(row));
            }
        }
        Ok(out)
    }

    /// Arg-max classes for `x`.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<usize>> {
        let k = self.plan.classes();
        Ok(self.probabilities(x)?.chunks_exact(k).map(argmax).collect())
    }

    /// Accuracy on `x` with `labels`.
    pub fn evaluate(&self, x: &[f32], labels: &[u8]) -> Result<Evaluation> {
        Evaluation::of(&self.predict(x)?, labels)
    }

    /// The model being run.
    pub fn model(&self) -> &Model {
        &self.model.model
    }
}

/// Softmax of one row of logits.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Index of the first largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
