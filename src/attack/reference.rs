//! A CPU reference of the attack skeleton, and of the random-number
//! generator the shaders use, for tests and for anyone checking the GPU.
//!
//! It follows `shaders/attack_step.wgsl` rule for rule on top of the CPU
//! reference layers in [`crate::nn::cpu`]; only the order of floating-point
//! sums differs.

use crate::attack::{Norm, Spec};
use crate::error::Result;
use crate::nn::{cpu, Model, Tensor};

/// The Philox key the shaders use for `seed`.
pub fn philox_key(seed: u64) -> u32 {
    (seed as u32) ^ ((seed >> 32) as u32).wrapping_mul(0x9E37_79B9)
}

/// Philox2x32-10 (Salmon et al. 2011), as in `shaders/rng.wgsl`.
pub fn philox2x32(key: u32, counter: [u32; 2]) -> [u32; 2] {
    let (mut key, mut ctr) = (key, counter);
    for _ in 0..10 {
        let product = 0xD256_D193u64 * u64::from(ctr[0]);
        let (hi, lo) = ((product >> 32) as u32, product as u32);
        ctr = [hi ^ key ^ ctr[1], lo];
        key = key.wrapping_add(0x9E37_79B9);
    }
    ctr
}

/// A uniform float in [0, 1) from the top 24 bits of a word, as `rng_unit`.
pub fn unit(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// The first of a Box-Muller normal pair, as `rng_normal2(..).x`.
pub fn normal(words: [u32; 2]) -> f32 {
    let u1 = 1.0 - unit(words[0]);
    let u2 = unit(words[1]);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Result of the reference attack, per sample.
#[derive(Clone, Debug)]
pub struct ReferenceOutcome {
    /// Adversarial images.
    pub images: Vec<f32>,
    /// Steps taken.
    pub steps: Vec<u32>,
    /// Whether the kept result succeeds.
    pub success: Vec<bool>,
}

/// Runs the skeleton on the CPU. `loss_labels` are true labels, or targets
/// when `targeted`.
pub fn attack(
    model: &Model,
    spec: &Spec,
    x0: &[f32],
    loss_labels: &[u32],
    targeted: bool,
    early_stop: bool,
    seed: u64,
) -> Result<ReferenceOutcome> {
    spec.validate()?;
    let n = loss_labels.len();
    let d = model.input_len();
    let key = philox_key(seed);
    let sign = if targeted { -1.0f32 } else { 1.0 };
    let labels: Vec<usize> = loss_labels.iter().map(|l| *l as usize).collect();
    let shape: Vec<usize> = std::iter::once(n).chain(model.input_shape).collect();
    let mask = spec.mask_values(model.input_shape)?;

    // Per sample: predicted class and sign * loss at `x`, and the gradient of sign * loss.
    let evaluate = |x: &[f32]| -> Result<(Vec<usize>, Vec<f32>, Vec<f32>)> {
        let g = cpu::loss_and_gradients(model, &Tensor::new(shape.clone(), x.to_vec())?, &labels)?;
        let k = model.num_classes();
        let pred = g
            .logits
            .data
            .chunks(k)
            .map(crate::nn::infer::argmax)
            .collect();
        let grad = g
            .grad_input
            .data
            .iter()
            .map(|v| sign * v * n as f32)
            .collect();
        Ok((pred, g.loss, grad))
    };
    let succeeded = |pred: usize, s: usize| {
        if targeted {
            pred == labels[s]
        } else {
            pred != labels[s]
        }
    };

    let mut best = x0.to_vec();
    let mut best_success = vec![false; n];
    let mut best_objective = vec![f32::MIN; n];
    let mut steps = vec![0u32; n];
    for restart in 0..spec.restarts as u32 {
        let mut active: Vec<bool> = (0..n).map(|s| restart == 0 || !best_success[s]).collect();
        let mut x = start(spec, mask.as_deref(), x0, n, d, key, restart);
        let mut momentum = vec![0f32; n * d];

        for _ in 0..spec.steps {
            let (pred, _, g) = evaluate(&x)?;
            for s in 0..n {
                if !active[s] {
                    continue;
                }
                if early_stop && succeeded(pred[s], s) {
                    active[s] = false;
                    continue;
                }
                steps[s] += 1;
                let r = s * d..(s + 1) * d;
                step(
                    spec,
                    mask.as_deref(),
                    &mut x[r.clone()],
                    &x0[r.clone()],
                    &g[r.clone()],
                    &mut momentum[r],
                );
            }
        }

        let (pred, loss, _) = evaluate(&x)?;
        for s in 0..n {
            let objective = sign * loss[s];
            let win = succeeded(pred[s], s);
            if !best_success[s] && (win || objective > best_objective[s]) {
                best_success[s] = win;
                best_objective[s] = objective;
                best[s * d..(s + 1) * d].copy_from_slice(&x[s * d..(s + 1) * d]);
            }
        }
    }
    Ok(ReferenceOutcome {
        images: best,
        steps,
        success: best_success,
    })
}

/// The starting point of one restart. `mask` holds one 0/1 value per input value.
fn start(
    spec: &Spec,
    mask: Option<&[f32]>,
    x0: &[f32],
    n: usize,
    d: usize,
    key: u32,
    restart: u32,
) -> Vec<f32> {
    if !spec.random_start {
        return x0.to_vec();
    }
    let words = |i: usize| philox2x32(key, [i as u32, restart]);
    if let Some(mask) = mask {
        return (0..n * d)
            .map(|i| {
                if mask[i % d] != 0.0 {
                    unit(words(i)[0])
                } else {
                    x0[i]
                }
            })
            .collect();
    }
    match spec.norm {
        Norm::Linf => (0..n * d)
            .map(|i| (x0[i] + spec.eps * (2.0 * unit(words(i)[0]) - 1.0)).clamp(0.0, 1.0))
            .collect(),
        Norm::L2 => {
            let z: Vec<f32> = (0..n * d).map(|i| normal(words(i))).collect();
            let mut x = vec![0f32; n * d];
            for s in 0..n {
                let r = s * d..(s + 1) * d;
                let norm = z[r.clone()].iter().map(|v| v * v).sum::<f32>().sqrt();
                let u = unit(philox2x32(key ^ 0x5bd1_e995, [s as u32, restart])[0]);
                let scale = spec.eps * u.powf(1.0 / d as f32) / norm.max(1e-30);
                for i in r {
                    x[i] = (x0[i] + z[i] * scale).clamp(0.0, 1.0);
                }
            }
            x
        }
    }
}

/// One sample's update, projection and clip.
fn step(spec: &Spec, mask: Option<&[f32]>, x: &mut [f32], x0: &[f32], g: &[f32], m: &mut [f32]) {
    if let Some(mask) = mask {
        for i in 0..x.len() {
            x[i] = if mask[i] != 0.0 {
                (x[i] + spec.alpha * sign(g[i])).clamp(0.0, 1.0)
            } else {
                x0[i]
            };
        }
        return;
    }
    let d = x.len() as f32;
    match (spec.norm, spec.momentum) {
        (Norm::Linf, mu) => {
            let mean_abs = g.iter().map(|v| v.abs()).sum::<f32>() / d;
            for i in 0..x.len() {
                let dir = match mu {
                    Some(mu) => {
                        m[i] = mu * m[i] + g[i] / mean_abs.max(1e-30);
                        sign(m[i])
                    }
                    None => sign(g[i]),
                };
                let v = x[i] + spec.alpha * dir;
                x[i] = v.clamp(x0[i] - spec.eps, x0[i] + spec.eps).clamp(0.0, 1.0);
            }
        }
        (Norm::L2, _) => {
            let gnorm = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-30);
            for i in 0..x.len() {
                x[i] += spec.alpha * g[i] / gnorm;
            }
            let dnorm = x
                .iter()
                .zip(x0)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt();
            for i in 0..x.len() {
                let mut delta = x[i] - x0[i];
                if dnorm > spec.eps {
                    delta *= spec.eps / dnorm;
                }
                x[i] = (x0[i] + delta).clamp(0.0, 1.0);
            }
        }
    }
}

/// WGSL's `sign`: -1, 0 or 1.
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}
