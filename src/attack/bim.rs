//! BIM, the basic iterative method or I-FGSM (Kurakin, Goodfellow and Bengio 2017).

use crate::attack::{Attack, Norm, Spec};

/// Repeated small signed steps, each projected back onto the L-inf ball:
///
/// `x_{t+1} = clip01(clamp(x_t + alpha * sign(g_t), x0 - eps, x0 + eps))`, `x_0 = x0`
///
/// No random start, so it is deterministic.
#[derive(Clone, Debug, PartialEq)]
pub struct Bim {
    /// L-inf radius. Default 8/255.
    pub eps: f32,
    /// Step size. Default 2/255.
    pub alpha: f32,
    /// Number of steps. Default 10.
    pub steps: usize,
}

impl Default for Bim {
    fn default() -> Self {
        Bim {
            eps: 8.0 / 255.0,
            alpha: 2.0 / 255.0,
            steps: 10,
        }
    }
}

impl Attack for Bim {
    fn name(&self) -> &'static str {
        "bim"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::Linf,
            eps: self.eps,
            alpha: self.alpha,
            steps: self.steps,
            restarts: 1,
            random_start: false,
            momentum: None,
            mask: None,
        }
    }
}
