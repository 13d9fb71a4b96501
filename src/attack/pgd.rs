//! PGD under the L-inf norm (Madry, Makelov, Schmidt, Tsipras and Vladu 2018).

use crate::attack::{Attack, Norm, Spec};

/// BIM from a random start:
///
/// `x_0 = clip01(x0 + U(-eps, eps))`,
/// `x_{t+1} = clip01(clamp(x_t + alpha * sign(g_t), x0 - eps, x0 + eps))`
///
/// With several restarts, each sample keeps its first successful result, or
/// with none the one of highest loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Pgd {
    /// L-inf radius. Default 8/255.
    pub eps: f32,
    /// Step size. Default 2/255.
    pub alpha: f32,
    /// Steps per restart. Default 10.
    pub steps: usize,
    /// Random restarts. Default 1.
    pub restarts: usize,
}

impl Default for Pgd {
    fn default() -> Self {
        Pgd {
            eps: 8.0 / 255.0,
            alpha: 2.0 / 255.0,
            steps: 10,
            restarts: 1,
        }
    }
}

impl Attack for Pgd {
    fn name(&self) -> &'static str {
        "pgd"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::Linf,
            eps: self.eps,
            alpha: self.alpha,
            steps: self.steps,
            restarts: self.restarts,
            random_start: true,
            momentum: None,
            mask: None,
        }
    }
}
