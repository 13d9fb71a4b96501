//! SmoothGrad (Smilkov, Thorat, Kim, Viegas and Wattenberg 2017).

use crate::explain::{Finish, Input, Method, Spec};

/// SmoothGrad, "removing noise by adding noise":
///
/// `a = 1/n sum_{k=1..n} d f_c(x + sigma z_k) / d x`,  `z_k ~ N(0, I)`
///
/// the vanilla gradient averaged over `n` noisy copies of the image, which
/// washes out the gradient's pixel-to-pixel flicker. The noise is drawn on the
/// GPU from the seeded Philox generator (`shaders/rng.wgsl`), with a counter
/// per (image, value, copy), so a seed gives the same map however the copies
/// are batched. The mean is a running mean, so with `noise` 0 the map equals
/// [`crate::explain::Gradient`]'s bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct SmoothGrad {
    /// Noisy copies per image. Default 50.
    pub samples: usize,
    /// Standard deviation `sigma` of the noise, in input units (inputs span
    /// [0, 1], so this is also the fraction of the input range the paper
    /// uses; it recommends 10-20%). Default 0.15.
    pub noise: f32,
    /// Seed of the noise. Default 0.
    pub seed: u64,
}

impl Default for SmoothGrad {
    fn default() -> Self {
        SmoothGrad {
            samples: 50,
            noise: 0.15,
            seed: 0,
        }
    }
}

impl Method for SmoothGrad {
    fn name(&self) -> &'static str {
        "smoothgrad"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Noise {
                sigma: self.noise,
                samples: self.samples,
                seed: self.seed,
            },
            guided: false,
            finish: Finish::Mean,
        }
    }
}
