//! Training on the GPU with the engine's own weight gradients.
//!
//! Each step uploads one shuffled, randomly shifted batch, records forward,
//! loss (batch mean), backward to every weight and the optimiser update into
//! one submission. Optionally, random erasing (Zhong et al. 2017) covers a
//! random rectangle of a training digit with uniform noise, label unchanged,
//! so that the model does not read a large noisy blob as evidence for any
//! class. Shuffling, shifts and erasing come from a seeded ChaCha generator
//! on the host, and every GPU reduction has a fixed order, so a run is
//! deterministic on one adapter.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data::Digits;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel};
use crate::nn::{GpuModel, Model, Plan, PlanOptions};

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum.
    Sgd {
        /// Momentum coefficient, in [0, 1).
        momentum: f32,
    },
    /// Adam (Kingma and Ba 2015) with beta1 0.9, beta2 0.999, eps 1e-8.
    Adam,
}

/// Settings of a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Initial learning rate.
    pub lr: f32,
    /// The learning rate is multiplied by this after every epoch.
    pub lr_decay: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// The update rule.
    pub optimizer: Optimizer,
    /// Largest random shift of each training image, in pixels, along each axis.
    pub max_shift: usize,
    /// Probability, per training image and step, of random erasing: one
    /// rectangle of uniform noise in [0, 1] covering 2-40% of the image, with
    /// an aspect ratio between 1:3 and 3:1, placed inside the image. 0 turns
    /// it off (and draws nothing from the generator).
    pub erase: f64,
    /// Seed of initialisation, shuffling, shifts and erasing.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 8,
            batch: 64,
            lr: 1e-3,
            lr_decay: 0.7,
            weight_decay: 0.0,
            optimizer: Optimizer::Adam,
            max_shift: 2,
            erase: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every setting, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::param("epochs", self.epochs, "at least 1"));
        }
        if self.batch == 0 {
            return Err(Error::param("batch", self.batch, "at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::param("lr", self.lr, "a positive finite number"));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(Error::param(
                "lr_decay",
                self.lr_decay,
                "a number in (0, 1]",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::param(
                "weight_decay",
                self.weight_decay,
                "a finite number >= 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.erase) {
            return Err(Error::param("erase", self.erase, "a probability in [0, 1]"));
        }
        if let Optimizer::Sgd { momentum } = self.optimizer {
            if !(0.0..1.0).contains(&momentum) {
                return Err(Error::param("momentum", momentum, "a number in [0, 1)"));
            }
        }
        Ok(())
    }
}

/// What a progress callback is told after each step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done so far.
    pub step: usize,
    /// Steps in the whole run.
    pub total: usize,
    /// The current epoch, from 0.
    pub epoch: usize,
    /// Mean loss of the most recent batch whose loss was read back (read
    /// every few steps, to keep the GPU busy).
    pub loss: f32,
}

/// Uniform of `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct OptimParams {
    len: u32,
    _pad: u32,
    lr: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    c1: f32,
    c2: f32,
    _pad1: u32,
    _pad2: u32,
}

/// One parameter tensor's optimiser dispatch and its uniform.
struct Update {
    kernel: Kernel,
    uniform: wgpu::Buffer,
    len: u32,
    // Optimiser state, kept alive for the bind group.
    _m: GpuTensor,
    _v: GpuTensor,
}

/// How often the loss is read back for the progress figure.
const LOSS_READ_EVERY: usize = 10;

/// Trains `model` on `data` and returns the trained model.
pub fn train(
    gpu: &Gpu,
    model: &Model,
    data: &Digits,
    config: &TrainConfig,
    mut progress: impl FnMut(Progress),
) -> Result<Model> {
    config.validate()?;
    let [c, h, w] = model.input_shape;
    if c != 1 || h != data.rows || w != data.cols {
        return Err(Error::Shape {
            what: "training digits".into(),
            expected: format!("{:?} (the model's input)", model.input_shape),
            got: format!("[1, {}, {}]", data.rows, data.cols),
        });
    }
    if data.len() < config.batch {
        return Err(Error::param(
            "batch",
            config.batch,
            format!("at most the {} training samples", data.len()),
        ));
    }

    let gm = GpuModel::new(gpu, model)?;
    let plan = Plan::new(
        gpu,
        &gm,
        config.batch,
        PlanOptions {
            weight_grads: true,
            ..Default::default()
        },
    )?;
    plan.set_loss(gpu, 1.0 / config.batch as f32, 1.0);
    let updates = updates(gpu, &gm, &plan, config)?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let steps_per_epoch = data.len() / config.batch;
    let total = steps_per_epoch * config.epochs;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut x = vec![0f32; config.batch * data.image_len()];
    let mut labels = vec![0u32; config.batch];
    let mut lr = config.lr;
    let mut loss = f32::NAN;
    let mut t = 0usize;

    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks_exact(config.batch) {
            for (slot, &i) in chunk.iter().enumerate() {
                let dx = rng.random_range(-(config.max_shift as i32)..=config.max_shift as i32);
                let dy = rng.random_range(-(config.max_shift as i32)..=config.max_shift as i32);
                shift_into(
                    data.image(i),
                    h,
                    w,
                    dx,
                    dy,
                    &mut x[slot * h * w..(slot + 1) * h * w],
                );
                if config.erase > 0.0 && rng.random_bool(config.erase) {
                    erase_into(&mut rng, h, w, &mut x[slot * h * w..(slot + 1) * h * w]);
                }
                labels[slot] = u32::from(data.labels[i]);
            }
            plan.write_batch(gpu, &x, &labels)?;
            t += 1;
            write_update_params(gpu, &updates, config, lr, t);

            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                plan.record_step(&mut pass);
                updates.iter().for_each(|u| u.kernel.record(&mut pass));
            }
            gpu.queue.submit([encoder.finish()]);

            if t.is_multiple_of(LOSS_READ_EVERY) || t == total {
                let per_sample: Vec<f32> = gpu.read_blocking(&plan.loss)?;
                loss = per_sample.iter().sum::<f32>() / per_sample.len() as f32;
                if !loss.is_finite() {
                    return Err(Error::gpu(
                        "training",
                        format!("the loss became {loss} at step {t}; lower the learning rate"),
                    ));
                }
            } else {
                gpu.wait()?;
            }
            progress(Progress {
                step: t,
                total,
                epoch,
                loss,
            });
        }
        lr *= config.lr_decay;
    }

    pollster::block_on(gm.download(gpu))
}

/// The optimiser dispatches, one per parameter tensor.
fn updates(gpu: &Gpu, gm: &GpuModel, plan: &Plan, config: &TrainConfig) -> Result<Vec<Update>> {
    let entry = match config.optimizer {
        Optimizer::Sgd { .. } => "sgd",
        Optimizer::Adam => "adam",
    };
    let mut out = Vec::new();
    for (params, grads) in gm.params.iter().zip(&plan.grad_params) {
        for (p, g) in params.iter().zip(grads) {
            let m = gpu.zeros("optimiser m", &p.shape)?;
            let v = gpu.zeros("optimiser v", &p.shape)?;
            let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("optimiser params"),
                size: std::mem::size_of::<OptimParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            // SGD does not use `v`, and an unused binding is not in its layout.
            let mut bindings = vec![(1, &p.buffer), (2, &g.buffer), (3, &m.buffer)];
            if entry == "adam" {
                bindings.push((4, &v.buffer));
            }
            let kernel =
                gpu.kernel_with_uniform("optim", entry, &uniform, &bindings, p.len() as u64)?;
            out.push(Update {
                kernel,
                uniform,
                len: p.len() as u32,
                _m: m,
                _v: v,
            });
        }
    }
    Ok(out)
}

/// Writes step `t`'s learning rate and Adam bias corrections.
fn write_update_params(gpu: &Gpu, updates: &[Update], config: &TrainConfig, lr: f32, t: usize) {
    let (beta1, beta2) = (0.9f32, 0.999f32);
    let momentum = match config.optimizer {
        Optimizer::Sgd { momentum } => momentum,
        Optimizer::Adam => 0.0,
    };
    for u in updates {
        let p = OptimParams {
            len: u.len,
            _pad: 0,
            lr,
            momentum,
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay: config.weight_decay,
            c1: 1.0 - beta1.powi(t as i32),
            c2: 1.0 - beta2.powi(t as i32),
            _pad1: 0,
            _pad2: 0,
        };
        gpu.queue
            .write_buffer(&u.uniform, 0, bytemuck::bytes_of(&p));
    }
}

/// Copies an `h x w` image shifted by (dx, dy) pixels into `out`, filling
/// with zeros (background) where the shift uncovers pixels.
fn shift_into(src: &[f32], h: usize, w: usize, dx: i32, dy: i32, out: &mut [f32]) {
    for y in 0..h as i32 {
        for x in 0..w as i32 {
            let (sx, sy) = (x - dx, y - dy);
            out[(y * w as i32 + x) as usize] =
                if sx >= 0 && sy >= 0 && sx < w as i32 && sy < h as i32 {
                    src[(sy * w as i32 + sx) as usize]
                } else {
                    0.0
                };
        }
    }
}

/// Random erasing: covers one rectangle of the `h x w` image with uniform
/// noise in [0, 1]. Its area is 2-40% of the image and its aspect ratio
/// (height over width) between 1/3 and 3, both drawn uniformly (the ranges
/// of Zhong et al. 2017); sides are clamped to the image.
fn erase_into(rng: &mut impl Rng, h: usize, w: usize, image: &mut [f32]) {
    let area = rng.random_range(0.02..=0.4) * (h * w) as f64;
    let aspect: f64 = rng.random_range((1.0f64 / 3.0)..=3.0);
    let eh = ((area * aspect).sqrt().round() as usize).clamp(1, h);
    let ew = ((area / aspect).sqrt().round() as usize).clamp(1, w);
    let y0 = rng.random_range(0..=h - eh);
    let x0 = rng.random_range(0..=w - ew);
    for y in y0..y0 + eh {
        for v in &mut image[y * w + x0..y * w + x0 + ew] {
            *v = rng.random::<f32>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasing_covers_one_rectangle_of_two_to_forty_percent_with_noise() {
        let (h, w) = (28, 28);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            // -1 marks untouched pixels; erasing writes values in [0, 1].
            let mut image = vec![-1.0f32; h * w];
            erase_into(&mut rng, h, w, &mut image);
            let touched: Vec<(usize, usize)> = (0..h * w)
                .filter(|&i| image[i] >= 0.0)
                .map(|i| (i / w, i % w))
                .collect();
            assert!(image.iter().all(|&v| v == -1.0 || (0.0..=1.0).contains(&v)));

            let (y0, y1) = (
                touched.iter().map(|p| p.0).min(),
                touched.iter().map(|p| p.0).max(),
            );
            let (x0, x1) = (
                touched.iter().map(|p| p.1).min(),
                touched.iter().map(|p| p.1).max(),
            );
            let (y0, y1, x0, x1) = (y0.unwrap(), y1.unwrap(), x0.unwrap(), x1.unwrap());
            let rect = (y1 - y0 + 1) * (x1 - x0 + 1);
            assert_eq!(touched.len(), rect, "the erased pixels form one rectangle");
            // Rounding the sides moves the area a little past the drawn range.
            let share = rect as f64 / (h * w) as f64;
            assert!((0.01..=0.45).contains(&share), "erased share {share}");
        }
    }

    #[test]
    fn erase_outside_zero_to_one_is_refused_by_name() {
        let config = TrainConfig {
            erase: 1.5,
            ..TrainConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("erase") && message.contains("1.5"),
            "{message}"
        );
    }
}
