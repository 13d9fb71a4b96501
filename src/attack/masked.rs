//! Masked perturbations (Sharif, Bhagavatula, Bauer and Reiter 2016): an
//! attack confined to a region such as an eyeglass frame.

use crate::attack::{Attack, Norm, Spec};
use crate::error::{Error, Result};

/// The bundled 28 x 28 eyeglass-frame mask (see `assets/masks/README.md`).
pub const EYEGLASSES_PNG: &[u8] = include_bytes!("../../assets/masks/eyeglasses-28.png");

/// The bundled eyeglass frame as 784 values, 1 on the frame and 0 elsewhere.
pub fn eyeglasses() -> Result<Vec<f32>> {
    mask_from_png(EYEGLASSES_PNG, "<bundled eyeglasses-28.png>")
}

/// A greyscale mask from PNG bytes: one value in [0, 1] per pixel, row-major.
pub fn mask_from_png(bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    let img = image::load_from_memory(bytes).map_err(|source| Error::Image {
        path: name.into(),
        source,
    })?;
    Ok(img
        .to_luma8()
        .pixels()
        .map(|p| f32::from(p.0[0]) / 255.0)
        .collect())
}

/// Signed steps inside a mask, unbounded in amplitude there:
///
/// `x_0 = x0` (or, with `random_start`, uniform in [0, 1] inside the mask),
/// `x_{t+1} = clip01(x_t + alpha * sign(g_t))` where `mask >= 0.5`, `x0` elsewhere.
///
/// Pixels outside the mask are copied from `x0`, never computed, so they are
/// bit-identical to the input. It is the L-inf skeleton with `eps = 1` (no
/// bound on [0, 1] images) and the step multiplied by the mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Masked {
    /// One value per pixel (`H * W`, shared by the channels) or per input
    /// value. Default: the bundled 28 x 28 eyeglass frame.
    pub mask: Vec<f32>,
    /// Step size. Default 0.1: ten steps cross the whole [0, 1] range.
    pub alpha: f32,
    /// Number of steps. Default 40.
    pub steps: usize,
    /// Start uniformly in [0, 1] inside the mask. Default false.
    pub random_start: bool,
}

impl Masked {
    /// The default settings with another mask.
    pub fn with_mask(mask: Vec<f32>) -> Masked {
        Masked {
            mask,
            alpha: 0.1,
            steps: 40,
            random_start: false,
        }
    }
}

impl Default for Masked {
    fn default() -> Self {
        // The bundled PNG is compiled in and decoded by the tests, so it parses.
        Masked::with_mask(eyeglasses().expect("the bundled eyeglass mask decodes"))
    }
}

impl Attack for Masked {
    fn name(&self) -> &'static str {
        "masked"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::Linf,
            eps: 1.0,
            alpha: self.alpha,
            steps: self.steps,
            restarts: 1,
            random_start: self.random_start,
            momentum: None,
            mask: Some(self.mask.clone()),
        }
    }
}
