//! A CPU reference of the patch rules in `shaders/patch.wgsl` and
//! `shaders/patch_update.wgsl`, for tests and for anyone checking the GPU.
//!
//! The gradient here is computed the other way round from the GPU's: by
//! scattering each image pixel's gradient to the four patch pixels it sampled,
//! where the GPU gathers per patch pixel. Both must agree.

// Index loops mirror the formulas term by term; iterators would hide them.
#![allow(clippy::needless_range_loop)]

use crate::attack::patch::{Patch, Placement, Transform, EVAL_SALT};
use crate::attack::reference::{philox2x32, philox_key, unit};

/// The Philox key of training placements and image draws for `seed`.
pub fn training_key(seed: u64) -> u32 {
    philox_key(seed)
}

/// The Philox key of evaluation placements ([`crate::attack::patch::evaluate`]
/// and [`crate::attack::patch::apply`]) for `seed`.
pub fn evaluation_key(seed: u64) -> u32 {
    philox_key(seed) ^ EVAL_SALT
}

/// The placement `shaders/patch.wgsl` draws for counter `draw` with `key`:
/// scale, angle and centre; the image index is left 0 (see [`draw_image`]).
pub fn draw(
    key: u32,
    draw: u32,
    placement: &Placement,
    patch_hw: [usize; 2],
    image_hw: [usize; 2],
) -> Transform {
    let w0 = philox2x32(key, [draw, 0]);
    let w1 = philox2x32(key, [draw, 1]);
    let (lo, hi) = (placement.scale_min, placement.scale_max);
    let s = lo + (hi - lo) * unit(w0[0]);
    let theta = placement.rotation.to_radians() * (2.0 * unit(w0[1]) - 1.0);
    let t = Transform::new(0.0, 0.0, s, theta, 0);
    let (ph, pw) = (patch_hw[0] as f32, patch_hw[1] as f32);
    let half_x = 0.5 * s * (t.cos.abs() * pw + t.sin.abs() * ph);
    let half_y = 0.5 * s * (t.sin.abs() * pw + t.cos.abs() * ph);
    let place = |u: f32, half: f32, size: f32| {
        let room = size - 2.0 * half;
        if room <= 0.0 {
            0.5 * size
        } else if placement.subpixel {
            half + room * u
        } else {
            half + (u * (room.floor() + 1.0)).floor()
        }
    };
    Transform {
        cx: place(unit(w1[0]), half_x, image_hw[1] as f32),
        cy: place(unit(w1[1]), half_y, image_hw[0] as f32),
        ..t
    }
}

/// The training image `shaders/patch.wgsl` draws for counter `draw` out of `images`.
pub fn draw_image(key: u32, draw: u32, images: u32) -> u32 {
    philox2x32(key, [draw, 2])[0] % images
}

/// The four bilinear taps image pixel (x, y) samples: patch pixel index
/// (row-major) and weight, for taps on the patch.
pub fn taps(
    t: &Transform,
    x: usize,
    y: usize,
    patch_h: usize,
    patch_w: usize,
) -> Vec<(usize, f32)> {
    let dx = x as f32 + 0.5 - t.cx;
    let dy = y as f32 + 0.5 - t.cy;
    let u = (t.cos * dx + t.sin * dy) / t.scale + 0.5 * patch_w as f32 - 0.5;
    let v = (t.cos * dy - t.sin * dx) / t.scale + 0.5 * patch_h as f32 - 0.5;
    let (j0, i0) = (u.floor(), v.floor());
    let (ax, ay) = (u - j0, v - i0);
    let mut out = Vec::with_capacity(4);
    for (di, wy) in [(0, 1.0 - ay), (1, ay)] {
        for (dj, wx) in [(0, 1.0 - ax), (1, ax)] {
            let (ii, jj) = (i0 as i64 + di, j0 as i64 + dj);
            if ii >= 0 && jj >= 0 && (ii as usize) < patch_h && (jj as usize) < patch_w {
                out.push((ii as usize * patch_w + jj as usize, wx * wy));
            }
        }
    }
    out
}

/// One image `[C, H, W]` with `patch` pasted at `t`:
/// `image * (1 - alpha) + sum_k w_k M_k P_k`, `alpha = sum_k w_k M_k`.
pub fn paste(image: &[f32], shape: [usize; 3], patch: &Patch, t: &Transform) -> Vec<f32> {
    let [c, h, w] = shape;
    let area = patch.height * patch.width;
    let mut out = vec![0f32; c * h * w];
    for y in 0..h {
        for x in 0..w {
            let taps = taps(t, x, y, patch.height, patch.width);
            let alpha: f64 = taps
                .iter()
                .map(|&(k, wk)| f64::from(wk * patch.mask[k]))
                .sum();
            for ch in 0..c {
                let colour: f64 = taps
                    .iter()
                    .map(|&(k, wk)| {
                        f64::from(wk * patch.mask[k]) * f64::from(patch.pixels[ch * area + k])
                    })
                    .sum();
                let i = (ch * h + y) * w + x;
                out[i] = (f64::from(image[i]) * (1.0 - alpha) + colour) as f32;
            }
        }
    }
    out
}

/// The gradient with respect to the patch pixels `[C, ph, pw]` of a loss
/// whose gradient with respect to the pasted image is `grad_image`
/// (`[C, H, W]`), for placement `t`: each pixel's gradient scattered to its taps.
pub fn paste_grad(grad_image: &[f32], shape: [usize; 3], patch: &Patch, t: &Transform) -> Vec<f64> {
    let [c, h, w] = shape;
    let area = patch.height * patch.width;
    let mut out = vec![0f64; c * area];
    for y in 0..h {
        for x in 0..w {
            for (k, wk) in taps(t, x, y, patch.height, patch.width) {
                for ch in 0..c {
                    out[ch * area + k] += f64::from(grad_image[(ch * h + y) * w + x])
                        * f64::from(wk)
                        * f64::from(patch.mask[k]);
                }
            }
        }
    }
    out
}

/// The total-variation penalty `sum (P_k - P_k')^2` over left-right and
/// up-down neighbour pairs that are both inside the mask.
pub fn total_variation(patch: &Patch) -> f64 {
    let (h, w) = (patch.height, patch.width);
    let inside = |q: usize| patch.mask[q] != 0.0;
    let mut sum = 0.0;
    for ch in 0..patch.channels {
        let p = &patch.pixels[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                let q = i * w + j;
                if j + 1 < w && inside(q) && inside(q + 1) {
                    sum += f64::from(p[q] - p[q + 1]).powi(2);
                }
                if i + 1 < h && inside(q) && inside(q + w) {
                    sum += f64::from(p[q] - p[q + w]).powi(2);
                }
            }
        }
    }
    sum
}
