//! PGD under the L2 norm (Madry et al. 2018).

use crate::attack::{Attack, Norm, Spec};

/// Normalised gradient steps, projected onto the L2 ball by rescaling:
///
/// `x_0 = clip01(x0 + r * z / ||z||)`, z ~ N(0, I), r = eps * u^(1/D), u ~ U(0, 1)
/// (uniform in the ball of dimension D),
/// `x' = x_t + alpha * g_t / ||g_t||_2`, `delta = (x' - x0) * min(1, eps / ||x' - x0||_2)`,
/// `x_{t+1} = clip01(x0 + delta)`
///
/// Restarts as in [`crate::attack::Pgd`].
#[derive(Clone, Debug, PartialEq)]
pub struct PgdL2 {
    /// L2 radius. Default 1.0.
    pub eps: f32,
    /// Step size. Default 0.2.
    pub alpha: f32,
    /// Steps per restart. Default 10.
    pub steps: usize,
    /// Random restarts. Default 1.
    pub restarts: usize,
}

impl Default for PgdL2 {
    fn default() -> Self {
        PgdL2 {
            eps: 1.0,
            alpha: 0.2,
            steps: 10,
            restarts: 1,
        }
    }
}

impl Attack for PgdL2 {
    fn name(&self) -> &'static str {
        "pgd-l2"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::L2,
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
